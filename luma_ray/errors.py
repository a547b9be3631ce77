"""The one error tree of luma_ray, grouped by what the caller can do about it.

Callers map these to their medium: ``InvalidRequest`` → HTTP 400, ``Unauthorized`` → 401,
``Forbidden`` → 403, ``NotFound`` → 404, ``TooLarge`` → 413,
``Conflict`` → 409, ``BackPressure`` → 429 with Retry-After, ``Unavailable`` → 503,
``ConfigError`` and
``TraceError`` → a one-line message and exit code 2 on the command line. Every error passes its
arguments to ``super().__init__`` so it survives pickling across Ray processes.
"""

from __future__ import annotations


class LumaError(Exception):
    """Base of every error luma_ray raises on purpose. ``code`` is stable across releases."""

    code = "luma_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(LumaError):
    """The caller sent something we cannot accept; the message says what to fix."""

    code = "invalid_request"


class TooLarge(InvalidRequest):
    """A request body, or one part of it, is over its size limit (HTTP 413)."""

    code = "too_large"


class Unauthorized(LumaError):
    """No API key, or one that is wrong or revoked (HTTP 401)."""

    code = "unauthorized"


class Forbidden(LumaError):
    """The key is valid but lacks the scope this needs, such as admin (HTTP 403)."""

    code = "forbidden"


class NotFound(LumaError):
    """No such job, model or version (or not one the caller may see)."""

    code = "not_found"


class Conflict(LumaError):
    """The request contradicts the current state (illegal transition, stale lease)."""

    code = "conflict"


class NotReady(Conflict):
    """The job exists but what was asked of it is not there yet (its video while it is still
    queued or running): ask again when it has finished."""

    code = "not_ready"


class IllegalTransition(Conflict):
    """A job was asked to move between states the transition table does not connect."""

    code = "illegal_transition"


class StaleLease(Conflict):
    """A worker reported on a lease it no longer holds (expired, requeued or fenced off)."""

    code = "stale_lease"


class BackPressure(LumaError):
    """Refused for now because of load; retry after ``retry_after_s`` seconds."""

    code = "back_pressure"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type, tuple[str, float]]:
        return (type(self), (self.message, self.retry_after_s))


class TenantLimited(BackPressure):
    """The tenant has as many jobs queued in this tier as its cap allows (HTTP 429)."""

    code = "tenant_limit"


class RateLimited(BackPressure):
    """The API key sent requests faster than its rate at this ingress replica (HTTP 429)."""

    code = "rate_limited"


class StreamLimited(BackPressure):
    """The tenant holds as many event streams open at this ingress replica as it may."""

    code = "stream_limit"


class Overloaded(BackPressure):
    """New jobs of this tier would wait far past its SLO; admission control sheds them."""

    code = "tier_overloaded"


class Unavailable(LumaError):
    """A part of the system we depend on cannot be reached now (HTTP 503); nothing was done,
    the same request may be sent again later."""

    code = "unavailable"


class SchedulerUnavailable(Unavailable):
    """The scheduler did not answer within the retry budget (Ray is restarting it, or the
    cluster is down)."""

    code = "scheduler_unavailable"


class JournalUnavailable(Unavailable):
    """The scheduler's journal could not be written (disk full, I/O error) or read back;
    nothing was changed, and the same request may be sent again later (HTTP 503)."""

    code = "journal_unavailable"


class ConfigError(LumaError):
    """A configuration file or value is wrong; the message names the field and the fix."""

    code = "config_error"


class JournalDamaged(ConfigError):
    """A journal file (the scheduler's jobs, the webhook outbox) cannot be read: not SQLite,
    or a damaged page or row. The message names the file, the row when known, and the fix:
    restore a backup, or move the file aside to start with an empty one."""

    code = "journal_damaged"


class TraceError(LumaError):
    """A trace or capacity file is wrong; the message names the file, row and column."""

    code = "trace_error"
