"""When to try a webhook again: how a response is classified, the backoff schedule and the
receiver's ``Retry-After``.

Pure functions and values, no I/O and no clock of their own: the sender passes the time in.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import timezone
from typing import Literal


def compute_backoff(
    attempt: int,
    base_s: float = 0.5,
    cap_s: float = 60.0,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one.

    ``base_s`` after the first, doubling each time, at most ``cap_s``; then moved by a uniform
    random fraction in ``[-jitter, +jitter]`` (so it may pass ``cap_s`` by that fraction).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction in [0, 1], got {jitter}")
    delay_s = min(cap_s, base_s * 2.0 ** min(attempt - 1, 64))
    if jitter:
        delay_s *= 1.0 + (rng or random.Random()).uniform(-jitter, jitter)
    return delay_s


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
    """How many attempts an event gets and how long to wait between them.

    Built by the sender from its ``max_attempts``, ``base_delay_s``, ``max_delay_s`` and
    ``jitter``; raises ``ValueError`` for fewer than one attempt or for values
    :func:`compute_backoff` refuses.
    """

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    jitter: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        compute_backoff(1, self.base_delay_s, self.max_delay_s, self.jitter)  # validates the three

    def retries(self, outcome: Outcome, attempts: int) -> bool:
        """True when ``outcome`` asks for another try and ``attempts`` leaves room for one."""
        return outcome.kind == "retry" and attempts < self.max_attempts

    def delay_s(self, outcome: Outcome, attempts: int, rng: random.Random) -> float:
        """Seconds before the next try: the receiver's Retry-After (at most ``max_delay_s``)
        when it sent one, else the backoff after attempt number ``attempts``."""
        if outcome.retry_after_s is not None:
            return min(outcome.retry_after_s, self.max_delay_s)
        return compute_backoff(attempts, self.base_delay_s, self.max_delay_s, self.jitter, rng)
