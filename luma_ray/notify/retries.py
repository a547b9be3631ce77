"""When to try a webhook again: the backoff schedule and the receiver's ``Retry-After``.

Pure functions, no I/O and no clock of their own: the sender passes the time in.
"""

from __future__ import annotations

import email.utils
import random
from datetime import timezone


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
