"""Capacity as the replays walk it: a step function of slots over time (docs/traces.md)."""

from __future__ import annotations

import math


def capacity_steps(capacity: list[tuple[float, int]]) -> tuple[list[float], list[int], int]:
    """The step times with ``inf`` appended (so ``times[k + 1]`` always exists), the slots of
    each step, and the index of the step in force at time 0. A replay keeps the index and
    moves it on while ``times[k + 1] <= now``."""
    times = [t for t, _ in capacity] + [math.inf]
    slots = [s for _, s in capacity]
    k = 0
    while times[k + 1] <= 0:
        k += 1
    return times, slots, k
