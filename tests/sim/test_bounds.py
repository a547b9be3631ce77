"""The lower bound: never above the best schedule of small instances, found by brute force."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from luma_ray.sim.bounds import fluid_lower_bound
from luma_ray.sim.simulate import fluid_lower_bound as reexported

Instance = tuple[list[float], list[float], list[float], list[tuple[float, int]]]


def slots_at(capacity: list[tuple[float, int]], t: float) -> int:
    return [s for when, s in capacity if when <= t][-1]


def earliest_start(after, arrival_j, starts, ends, capacity) -> float | None:
    """The earliest s >= after, arrival_j at which fewer jobs run than there are slots."""
    earliest = max(arrival_j, after)
    ends_after = {e for e in ends if e > earliest}
    steps = {t for t, _ in capacity if t > earliest}
    for s in sorted({earliest} | ends_after | steps):
        running = sum(1 for b, e in zip(starts, ends, strict=True) if b <= s < e)
        if running < slots_at(capacity, s):
            return s
    return None


def best_max_ratio(arrival, service, slo, capacity) -> float:
    """The least max wait/SLO over every non-preemptive schedule, by brute force.

    Every order of the jobs is tried (depth first, cutting branches already worse than the
    best found); in an order each job starts at the earliest time, no earlier than the job
    before it, when fewer jobs run than there are slots. Any schedule whose starts follow that
    order starts no job earlier than this (docs/scheduling.md), so the best over all orders
    is the optimum."""
    n = len(arrival)
    best = math.inf

    def visit(left: frozenset[int], starts: list[float], ends: list[float], worst: float) -> None:
        nonlocal best
        if worst >= best:
            return
        if not left:
            best = worst
            return
        last = starts[-1] if starts else 0.0
        for j in sorted(left):
            s = earliest_start(last, arrival[j], starts, ends, capacity)
            if s is not None:
                ratio = max(worst, (s - arrival[j]) / slo[j])
                visit(left - {j}, [*starts, s], [*ends, s + service[j]], ratio)

    visit(frozenset(range(n)), [], [], 0.0)
    return best


def instance(rng: random.Random) -> Instance:
    n = rng.randint(6, 8)
    arrival = sorted(round(rng.uniform(0, 30), 1) for _ in range(n))
    service = [round(rng.uniform(1, 25), 1) for _ in range(n)]
    slo = [rng.choice([5.0, 10.0, 40.0]) for _ in range(n)]
    a, b = rng.randint(1, 3), rng.randint(1, 3)
    capacity = [(0.0, a), (round(rng.uniform(1, 30), 1), b)]  # a step up or down
    return arrival, service, slo, capacity


def bound(inst: Instance) -> float:
    arrival, service, slo, capacity = inst
    return fluid_lower_bound(
        np.array(arrival), np.array(service), np.array(slo), capacity, buckets=20_000
    )


def test_bound_never_exceeds_the_best_schedule_and_is_tight_on_some() -> None:
    rng = random.Random(13)
    tight = positive = 0
    for _ in range(200):
        inst = instance(rng)
        best = best_max_ratio(*inst)
        lower = bound(inst)
        assert lower <= best + 1e-9, (inst, lower, best)
        positive += lower > 0
        tight += best > 0 and lower >= 0.97 * best
    assert positive >= 50 and tight >= 3, (positive, tight)


def test_a_capacity_drop_stops_no_running_job_and_the_bound_allows_for_it() -> None:
    # Three slots at 0, one from t = 1: three jobs start at 0 and all run to t = 100. A bound
    # that counted only the slots of each moment (one after t = 1) would claim the third job
    # cannot start in time; the schedule that starts all three at 0 has max wait/SLO 0.
    inst = ([0.0, 0.0, 0.0], [100.0, 100.0, 100.0], [10.0, 10.0, 10.0], [(0.0, 3), (1.0, 1)])
    assert best_max_ratio(*inst) == 0.0
    assert bound(inst) == 0.0


def test_bound_uses_the_slots_of_the_window_not_the_most_ever() -> None:
    # One slot for 1000 s, then 50 slots. Ten 50 s jobs at t = 0 (SLO 50 s): on one slot the
    # last starts at 450 s, ratio 9. The old bound let 50 jobs "still run" at any t, so it
    # found nothing.
    inst = ([0.0] * 10, [50.0] * 10, [50.0] * 10, [(0.0, 1), (1000.0, 50)])
    lower = bound(inst)
    assert 8.9 <= lower <= 9.0


def test_simulate_reexports_the_bound() -> None:
    assert reexported is fluid_lower_bound


@pytest.mark.parametrize("capacity", [[(0.0, 0)], [(0.0, 2), (5.0, 0)]])
def test_no_capacity_at_the_end_is_infinite(capacity) -> None:
    assert fluid_lower_bound(np.zeros(2), np.ones(2), np.ones(2), capacity) == math.inf


def test_capacity_that_starts_late_counts_no_slots_before_it() -> None:
    # Two 1 s jobs at 0, SLO 10; the only slot appears at t = 100: the best schedule starts
    # them at 100 and 101, max wait/SLO 10.1.
    inst = ([0.0, 0.0], [1.0, 1.0], [10.0, 10.0], [(0.0, 0), (100.0, 1)])
    assert best_max_ratio(*inst) == pytest.approx(10.1)
    lower = fluid_lower_bound(np.zeros(2), np.ones(2), np.full(2, 10.0), [(100.0, 1)])
    assert 10.0 <= lower <= 10.1
