"""Pauses between attempts at a call that may succeed later: a scheduler Ray is restarting,
a journal whose disk is full. Pure: no Ray, so the workers' adapters use it too."""

from __future__ import annotations

import time
from collections.abc import Iterator


def backoff(budget_s: float) -> Iterator[float]:
    """The pause before each attempt: none before the first, then doubling from 0.1 s to 2 s
    while the next attempt still starts within ``budget_s``."""
    deadline = time.monotonic() + budget_s
    yield 0.0
    delay = 0.1
    while time.monotonic() + delay <= deadline:
        yield delay
        delay = min(2.0, delay * 2)
