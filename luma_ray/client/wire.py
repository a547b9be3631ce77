"""The HTTP client's wire layer: typed results, errors by status, ``Retry-After``, the SSE
parser and staged downloads; shared by the sync and async clients (``http``, ``http_async``)
and the operations they perform (``ops``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from luma_ray.errors import (
    BackPressure,
    Conflict,
    Forbidden,
    InvalidRequest,
    LumaError,
    NotFound,
    Unauthorized,
)
from luma_ray.jobs import TERMINAL_VALUES
from luma_ray.notify.retries import parse_retry_after

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
BUSY_RETRIES = 5
"""How often ``create(..., retry_on_busy=True)`` retries a 429 before raising it."""
MAX_BUSY_WAIT_S = 60.0
"""Longest wait between those retries, whatever Retry-After says."""
STREAM_IDLE_S = 60.0
"""``wait()`` reopens an event stream silent this long: the server only writes on change."""


@dataclass(frozen=True)
class Progress:
    """Where a running job is: ``phase`` as its worker reports it, ``step`` of ``total``."""

    phase: str
    step: int
    total: int


@dataclass(frozen=True)
class GenerationError:
    """Why a generation failed; ``retryable`` ones went back to the queue while attempts
    remained."""

    code: str
    message: str
    retryable: bool = False

    @classmethod
    def from_json(cls, data: object) -> GenerationError | None:
        if not isinstance(data, Mapping):
            return None
        code, message = str(data.get("code", "")), str(data.get("message", ""))
        return cls(code, message, bool(data.get("retryable", False)))


@dataclass(frozen=True)
class Generation:
    """One generation as the API shows it; ``raw`` keeps the whole JSON, unknown fields too.

    ``result_urls`` are API paths (``/v1/generations/<id>/content?variant=video``); fetch them
    with :meth:`LumaClient.download`, which sends the key.
    """

    id: str
    state: str
    tier: str
    model: str
    prompt: str
    queue_position: int | None
    eta_s: float | None
    slo_used: float | None
    progress: Progress
    result_urls: dict[str, str]
    error: GenerationError | None
    raw: dict[str, Any]
    """The whole JSON object as the API sent it, fields this client does not know too."""
    assets: dict[str, str] = field(default_factory=dict)
    """Signed, expiring URLs of a succeeded generation's files (``video``, ``thumbnail``):
    fetch them without the key (a ``<video src>``, a CDN); empty before it succeeds."""

    @property
    def done(self) -> bool:
        """True once the job is final: succeeded, failed or cancelled."""
        return self.state in TERMINAL_VALUES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Generation:
        """Parse the API's generation object (both clients call this on every response)."""
        p = data.get("progress") or {}
        return cls(
            id=str(data["id"]),
            state=str(data["state"]),
            tier=str(data.get("tier", "")),
            model=str(data.get("model", "")),
            prompt=str(data.get("prompt", "")),
            queue_position=data.get("queue_position"),
            eta_s=data.get("eta_s"),
            slo_used=data.get("slo_used"),
            progress=Progress(
                str(p.get("phase", "")), int(p.get("step", 0)), int(p.get("total", 0))
            ),
            result_urls=dict(data.get("result_urls") or {}),
            error=GenerationError.from_json(data.get("error")),
            raw=dict(data),
            assets=dict(data.get("assets") or {}),
        )


class ApiError(LumaError):
    """The API answered with an error (a problem+json body); ``str()`` is one line.

    ``status`` is the HTTP status, ``code`` the stable machine code from the body (for example
    ``not_found``, ``validation_error``, ``tenant_limit``), ``detail`` the server's message and
    ``retry_after_s`` the Retry-After header in seconds, when there was one.
    """

    code = "api_error"

    def __init__(
        self, status: int, code: str, detail: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {' '.join(detail.split())}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type, tuple[int, str, str, float | None]]:
        return (type(self), (self.status, self.code, self.detail, self.retry_after_s))


class BadRequestError(ApiError, InvalidRequest):
    """400, 413 or 422: the request is wrong; ``detail`` says what to fix."""


class AuthError(ApiError, Unauthorized):
    """401: no API key, or a wrong or revoked one."""


class ForbiddenError(ApiError, Forbidden):
    """403: the key lacks the scope this needs (admin)."""


class NotFoundError(ApiError, NotFound):
    """404: no such generation, or one of another tenant, or one that failed (no content)."""


class ConflictError(ApiError, Conflict):
    """409: an Idempotency-Key reused with a different body, or content asked for before the
    generation succeeded (``code`` ``not_ready``)."""


class BusyError(ApiError, BackPressure):  # type: ignore[misc]
    """429: refused for load; retry after ``retry_after_s`` seconds."""


class ServerError(ApiError):
    """5xx or any status the API does not document; usually worth a retry later."""


_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: BusyError,
}


def _api_error(response: httpx.Response) -> ApiError:
    """The error for a failed, fully read response; the clients call this on status >= 400."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text[:200] or response.reason_phrase}
    code = str(body.get("code") or f"http_{response.status_code}")
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    cls = _ERRORS.get(response.status_code, ServerError)
    wait_s = parse_retry_after(response.headers.get("retry-after"), time.time())
    return cls(response.status_code, code, detail, wait_s)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            response.status_code, "bad_response", "the server did not answer JSON; check base_url"
        ) from None


class SseParser:
    """Turns ``text/event-stream`` lines into ``(event, data)`` pairs; the clients feed it.

    Data is JSON on this API; a data line that is not JSON comes back as ``{"data": text}``.
    """

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        """One line without its newline; returns an event when a blank line ends one."""
        if not line:
            if not self._data:
                self._event = "message"
                return None
            event, text = self._event, "\n".join(self._data)
            self._event, self._data = "message", []
            try:
                data = json.loads(text)
            except ValueError:
                data = {"data": text}
            return event, data if isinstance(data, dict) else {"data": data}
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


@contextmanager
def _staged(target: Path) -> Iterator[IO[bytes]]:
    """A temp file beside ``target``, renamed onto it only when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(path: str | os.PathLike[str], generation_id: str, variant: str) -> Path:
    target = Path(path)
    if target.is_dir():
        return target / f"{generation_id}.{'mp4' if variant == 'video' else 'png'}"
    return target
