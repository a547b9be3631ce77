"""The dispatch simulator's priority-inversion count, from per-job arrays after a replay.

Called by :mod:`luma_ray.sim.dispatch_sim` once per run. Pure numpy, no scheduler state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_INF = np.inf
FloatArray = npt.NDArray[np.float64]


def inversions(
    arrival: FloatArray,
    order: npt.NDArray[np.int64],
    start: FloatArray,
    ran_on: npt.NDArray[np.int64],
    step: tuple[FloatArray, FloatArray],
    latency: FloatArray,
    end_s: float,
) -> tuple[int, int, float]:
    """(inversions, jobs passed over, their wait from the first pass-over to their start).

    ``step`` is (lease step, start step) per job: positions in the order the replay leased
    and started jobs (inf if never), since a lease and a start can share a time. Job Y (tier
    ``order``, 0 highest) is queued until its lease step. A start of X at ``s`` on cluster c
    is an inversion if some Y of a higher tier has ``arrival < s - latency[c]`` and is still
    queued. Per tier, a prefix maximum of lease steps over arrival order answers that with
    one bisection per start. A passed-over Y counts its wait until it starts computing
    (``end_s`` if never), which includes time held as a prefetch.
    """
    lease_step, start_step = step
    started = np.nonzero(~np.isnan(start))[0]
    started = started[np.argsort(start_step[started])]
    s, x, cl, k_s = start[started], order[started], ran_on[started], start_step[started]
    inverted = np.zeros(len(started), dtype=bool)
    passed_step = np.full(len(arrival), _INF)
    passed_at = np.full(len(arrival), _INF)
    for r in np.unique(order):
        mine = order == r  # arrival order is kept: the trace is sorted
        below = x > r
        prefix_max = np.maximum.accumulate(lease_step[mine])
        k = np.searchsorted(arrival[mine], s[below] - latency[cl[below]], side="left")
        inverted[below] |= (k > 0) & (prefix_max[np.maximum(k - 1, 0)] > k_s[below])
        for c, lat in enumerate(latency):
            on_c = below & (cl == c)
            if not on_c.any():
                continue
            at = np.searchsorted(s[on_c], arrival[mine] + lat, side="right")
            ok, at = at < on_c.sum(), np.minimum(at, on_c.sum() - 1)
            first = np.where(ok, k_s[on_c][at], _INF)
            sooner = first < passed_step[mine]
            passed_step[mine] = np.where(sooner, first, passed_step[mine])
            passed_at[mine] = np.where(sooner, s[on_c][at], passed_at[mine])
    passed = passed_step < lease_step
    suffered = np.nan_to_num(start, nan=end_s)[passed] - passed_at[passed]
    return int(inverted.sum()), int(passed.sum()), float(suffered.sum())
