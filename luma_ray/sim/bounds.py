"""A proven lower bound on the max wait/SLO of any non-preemptive policy (docs/scheduling.md).

``simulate`` reports it as ``lower_bound_ratio_max``: no policy that starts every job, one job
per slot, without preemption, on the same capacity, can have a smaller max wait/SLO. The
argument is in docs/scheduling.md, "The lower bound"; ``tests/sim/test_bounds.py`` checks it
against every schedule of small instances.

Model (the simulator's): a job starts at ``s_j >= a_j`` on a free slot and runs ``p_j``
without a break; at any start ``s``, the jobs running (itself included) are at most the slots
of that moment, ``slots(s)``. A capacity drop stops no running job.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Capacity = list[tuple[float, int]]

_INF = math.inf


def capacity_integral(capacity: Capacity, t: FloatArray) -> FloatArray:
    """Slot-seconds available in [0, t], for each t (capacity is a step function)."""
    times = np.array([c[0] for c in capacity], dtype=np.float64)
    slots = np.array([c[1] for c in capacity], dtype=np.float64)
    return _integral(times, slots, t)


def _integral(times: FloatArray, slots: FloatArray, t: FloatArray) -> FloatArray:
    cum = np.concatenate([[0.0], np.cumsum(slots[:-1] * np.diff(times))])
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    return np.asarray(np.where(t < times[0], 0.0, cum[k] + slots[k] * (t - times[k])))


class _Window:
    """Capacity seen from a window start ``t1``: the running max of slots from ``t1`` on.

    ``room(t)`` is ``M(t1, t)``-slot-seconds over [t1, t] plus the ``K`` largest service times,
    ``K = max slots over [t1, t]``: all the work that jobs starting in [t1, t] can have done by
    ``t`` or still hold at ``t`` (docs/scheduling.md, "The lower bound")."""

    def __init__(self, t1: float, times: FloatArray, slots: FloatArray, top: FloatArray):
        k = int(np.searchsorted(times, t1, side="right")) - 1
        after_t = np.concatenate([[t1], times[k + 1 :]])
        after_s = np.maximum.accumulate(slots[max(k, 0) :])
        self.times, self.slots, self.top = after_t, after_s, top

    def room(self, t: FloatArray) -> FloatArray:
        k = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 1)
        kmax = self.slots[k].astype(np.int64)
        held = self.top[np.minimum(kmax, len(self.top) - 1)]
        return np.asarray(_integral(self.times, self.slots, t) + held)


def fluid_lower_bound(
    arrival: FloatArray,
    service: FloatArray,
    slo: FloatArray,
    capacity: Capacity,
    buckets: int = 2000,
    windows: int = 400,
    tol: float = 1e-3,
) -> float:
    """A lower bound on the max wait/SLO of any non-preemptive policy that serves every job.

    For a max ratio ``r`` every job j must start by ``d_j = a_j + r * slo_j``. Take a window
    ``[t1, t]`` and the set S of jobs with ``a_j >= t1`` and ``d_j <= t``: each starts inside
    it. At any moment u of the window at most ``M(u) = max slots over [t1, u]`` of them run
    (look at the last one of them to start), and at ``t`` at most ``M(t)`` still run, each for
    no longer than its service time. So S's work is at most the integral of ``M`` over the
    window plus the ``M(t)`` largest service times. ``r`` is infeasible if some window breaks
    that; the bound is the smallest ``r`` no window breaks.

    To stay fast at millions of jobs the check runs on a relaxation that can only lower the
    bound: time is cut into ``buckets`` equal buckets, the jobs of one (bucket, SLO) are one
    lump of work that arrives at the bucket's end (later deadlines are easier), and ``t1``
    runs over the first arrivals of up to ``windows`` buckets (where membership ``a >= t1``
    is exact). The smallest ``r`` for which every window passes is found by bisection to
    relative ``tol``.
    """
    n = len(arrival)
    if n == 0:
        return 0.0
    max_slots = max(s for _, s in capacity)
    if max_slots == 0 or capacity[-1][1] == 0:
        return _INF  # jobs arriving after the last step could never start
    if capacity[0][0] > arrival[0]:  # no slots before the first step
        capacity = [(float(arrival[0]), 0), *capacity]
    times = np.array([c[0] for c in capacity], dtype=np.float64)
    slots = np.array([c[1] for c in capacity], dtype=np.float64)
    # top[k]: the sum of the k largest service times (the most that k running jobs hold).
    largest = np.sort(np.asarray(service, dtype=np.float64))[::-1][:max_slots]
    top = np.concatenate([[0.0], np.cumsum(largest)])
    width = max(float(arrival[-1]) / buckets, 1e-9)
    bucket = np.minimum((arrival / width).astype(np.int64), buckets - 1)
    slos, slo_code = np.unique(slo, return_inverse=True)
    lump = bucket * len(slos) + slo_code
    work = np.bincount(lump, weights=service, minlength=buckets * len(slos))
    keep = work > 0
    lump_ids = np.nonzero(keep)[0]
    work = work[keep]
    lump_bucket = lump_ids // len(slos)
    lump_slo = slos[lump_ids % len(slos)]
    lump_arrival = (lump_bucket + 1) * width  # the bucket's end: only later, never earlier
    starts = np.unique(np.linspace(0, buckets - 1, min(windows, buckets)).astype(np.int64))
    # t1 of a window: the first arrival in a bucket >= start; every job of S arrives no earlier.
    # Windows whose first arrival is the same job hold the same jobs: keep one of each.
    first, keep_start = np.unique(np.searchsorted(bucket, starts, side="left"), return_index=True)
    starts = starts[keep_start][first < n]
    first = first[first < n]
    frames = [_Window(float(arrival[f]), times, slots, top) for f in first]

    def feasible(r: float) -> bool:
        deadline = lump_arrival + r * lump_slo
        order = np.argsort(deadline, kind="stable")
        b, w, d = lump_bucket[order], work[order], deadline[order]
        for start, frame in zip(starts, frames, strict=True):
            inside = b >= start
            total = np.cumsum(np.where(inside, w, 0.0))
            if np.any(inside & (total > frame.room(d))):
                return False
        return True

    if feasible(0.0):
        return 0.0
    hi = 1.0
    while not feasible(hi):
        hi *= 2.0
        if hi > 1e7:
            return _INF
    lo = hi / 2.0 if hi > 1.0 else 0.0
    while hi - lo > tol * max(hi, 1.0):
        mid = (lo + hi) / 2.0
        if feasible(mid):
            hi = mid
        else:
            lo = mid
    # lo fails a necessary condition, so every r <= lo is impossible: lo is the proven bound
    # (hi, within tol above it, may not be).
    return math.floor(lo * 1e4) / 1e4
