"""When to try a webhook again: how a response is classified, the retry schedule and the
receiver's ``Retry-After``.

Pure functions and values, no I/O and no clock of their own: the sender passes the time in.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import timezone
from typing import Literal


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now_s)


@dataclass(frozen=True)
class Outcome:
    """What one attempt decided; the sender carries it out."""

    kind: Literal["delivered", "retry", "drop"]
    reason: str  # for logs: "HTTP 503", "ConnectError", ... never the URL
    retry_after_s: float | None = None  # from the receiver's Retry-After, when it sent one


def classify(status_code: int, retry_after_s: float | None) -> Outcome:
    """The outcome of a response: 2xx delivered, 429 and 5xx retry, anything else drop."""
    reason = f"HTTP {status_code}"
    if 200 <= status_code < 300:
        return Outcome("delivered", reason)
    if status_code == 429 or status_code >= 500:
        return Outcome("retry", reason, retry_after_s)
    return Outcome("drop", reason)


@dataclass(frozen=True)
class RetryPolicy:
    """When an event is tried again: ``schedule_s[n - 1]`` seconds after failed attempt ``n``;
    after the last entry the event expires. Built by the sender from
    ``WebhookConfig.retry_schedule_s``; raises ``ValueError`` for a negative wait."""

    schedule_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if any(wait_s < 0 for wait_s in self.schedule_s):
            raise ValueError(f"retry waits must be >= 0, got {list(self.schedule_s)}")

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_s) + 1

    def retries(self, outcome: Outcome, attempts: int) -> bool:
        """True when ``outcome`` asks for another try and attempt number ``attempts`` was not
        the last of the schedule."""
        return outcome.kind == "retry" and attempts < self.max_attempts

    def delay_s(self, outcome: Outcome, attempts: int) -> float:
        """Seconds from failed attempt number ``attempts`` to the next: the schedule's wait, or
        the receiver's ``Retry-After`` when that is longer (at most the schedule's longest
        wait, so a receiver cannot park an event for ever nor burn its attempts early)."""
        wait_s = self.schedule_s[attempts - 1]
        if outcome.retry_after_s is None:
            return wait_s
        return max(wait_s, min(outcome.retry_after_s, max(self.schedule_s)))
