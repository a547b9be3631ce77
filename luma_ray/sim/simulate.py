"""Discrete-event replay of a trace through a policy (docs/traces.md; results: the README).

The simulator uses the scheduler's own :class:`~luma_ray.scheduler.queues.QueueBook` and
policy objects, so what it measures is what the actor runs. Slots are identical and serve any
model; a slot runs one job at a time without preemption. Dispatch happens at every arrival,
completion and capacity step, while a slot is free. The run ends when every job has started
or been rejected. With fair share (the default, as in the scheduler) each job is queued under
its trace tenant and charges that tenant its ``service_s`` when it starts.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from luma_ray.config import TierConfig, default_tiers
from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.tiers import TierSpec, tier_specs
from luma_ray.sim.traces.reader import Trace

_INF = math.inf


def simulate(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    tiers: list[TierConfig] | None = None,
    fair_share: bool = True,
) -> dict[str, Any]:
    """Replay ``trace`` on ``capacity`` with ``policy``; return the result mapping.
    ``fair_share`` False queues first come, first served across the tenants of a tier."""
    specs = tier_specs(tiers or default_tiers())
    start = _replay(trace, capacity, policy, specs, fair_share)
    return {**summarize(trace, capacity, policy, specs, start), "fair_share": fair_share}


def _replay(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    specs: dict[str, TierSpec],
    fair_share: bool = True,
) -> list[float]:
    """Start time of every job (NaN for a rejected one)."""
    arrival, service, tier_of, tenant_of = (
        trace.arrival_s,
        trace.service_s,
        trace.tier,
        trace.tenant,
    )
    n = len(arrival)
    start = [math.nan] * n
    book = QueueBook(specs, fair_share)
    # Every slot serves every model, so one queue per tier picks exactly what per-model queues
    # would (the pick is an argmax over the union), with half the candidates. Fair share is
    # then per tier, over everything a tenant runs in it.
    models = ["*"]
    queue_of = {t: book.queue(t, "*") for t in sorted(set(tier_of))}
    book_push = book.push

    def head_of(tier: str) -> float:
        return book.oldest_s(tier, "*") or 0.0

    shed = {name: s.shed_ratio * s.max_wait_s for name, s in specs.items() if s.shed_ratio}
    pick, on_dispatch = book.pick, policy.on_dispatch
    finish: list[float] = []  # heap of finish times of running jobs
    push, pop = heapq.heappush, heapq.heappop
    cap_times = [t for t, _ in capacity] + [_INF]
    cap_slots = [s for _, s in capacity]
    c = 0
    while cap_times[c + 1] <= 0:
        c += 1
    slots = cap_slots[c]
    busy = 0
    queued = 0
    i = 0
    while i < n or queued:
        next_arrival = arrival[i] if i < n else _INF
        next_finish = finish[0] if finish else _INF
        next_cap = cap_times[c + 1]
        now = min(next_arrival, next_finish, next_cap)
        if now == _INF:
            break  # jobs queued but no capacity will ever come; they never start
        while finish and finish[0] <= now:
            pop(finish)
            busy -= 1
        while cap_times[c + 1] <= now:
            c += 1
            slots = cap_slots[c]
        while i < n and arrival[i] <= now:
            tier = tier_of[i]
            if busy < slots and not queued:
                # Nothing waits, so the job starts at once; tell stateful policies (fair share
                # charges only jobs that queued: a tenant is not behind anyone it never waited
                # with).
                start[i] = now
                push(finish, now + service[i])
                busy += 1
                on_dispatch(specs[tier], 0, 0.0)
            elif tier in shed and queue_of[tier].live and now - head_of(tier) > shed[tier]:
                pass  # admission control: the tier's head is far past its SLO; reject
            else:
                book_push(tier, "*", arrival[i], i, tenant_of[i], service[i])
                queued += 1
            i += 1
        while busy < slots and queued:
            p = pick(policy, models, now)
            assert p is not None
            start[p.seq] = now
            push(finish, now + service[p.seq])
            busy += 1
            queued -= 1
    return start


def summarize(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    specs: Mapping[str, TierSpec],
    start: list[float],
) -> dict[str, Any]:
    """The result JSON (its fields: the README's simulate section) from per-job start times."""
    arrival = np.asarray(trace.arrival_s, dtype=np.float64)
    service = np.asarray(trace.service_s, dtype=np.float64)
    started = np.asarray(start, dtype=np.float64)
    names = list(specs)
    code_of = {name: k for k, name in enumerate(names)}
    tier_code = np.fromiter((code_of[t] for t in trace.tier), dtype=np.int16, count=len(arrival))
    slo = np.array([specs[t].max_wait_s for t in names])[tier_code] if len(arrival) else arrival
    weight = np.array([specs[t].weight for t in names])[tier_code] if len(arrival) else arrival
    wait = started - arrival
    ratio = wait / slo if len(arrival) else wait
    met = np.nan_to_num(ratio, nan=_INF) <= 1.0

    result: dict[str, Any] = {
        "policy": policy.name,
        "params": dict(policy.params),
        "jobs": int(len(arrival)),
        "lower_bound_ratio_max": fluid_lower_bound(arrival, service, slo, capacity),
    }
    overall = _group_stats(wait, ratio, met)
    total_weight = float(weight.sum())
    overall["weighted_attainment"] = (
        float((weight * met).sum() / total_weight) if total_weight else 1.0
    )
    overall["utilization"] = _utilization(started, service, arrival, capacity)
    result["overall"] = overall
    result["tiers"] = {
        name: _group_stats(wait[tier_code == k], ratio[tier_code == k], met[tier_code == k])
        for k, name in enumerate(names)
        if (tier_code == k).any()
    }
    return result


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if len(x) else 0.0


def _group_stats(wait: np.ndarray, ratio: np.ndarray, met: np.ndarray) -> dict[str, Any]:
    served = ~np.isnan(wait)
    w, r = wait[served], ratio[served]
    return {
        "n": int(len(wait)),
        "served": int(served.sum()),
        "rejected": int(len(wait) - served.sum()),
        "wait_p50_s": round(_q(w, 0.5), 3),
        "wait_p99_s": round(_q(w, 0.99), 3),
        "wait_max_s": round(float(w.max()) if len(w) else 0.0, 3),
        "attainment": round(float(met.mean()) if len(met) else 1.0, 6),
        "ratio_max": round(float(r.max()) if len(r) else 0.0, 4),
        "ratio_p999": round(_q(r, 0.999), 4),
    }


def _capacity_integral(capacity: list[tuple[float, int]], t: np.ndarray) -> np.ndarray:
    """Slot-seconds available in [0, t], for each t (capacity is a step function)."""
    times = np.array([c[0] for c in capacity], dtype=np.float64)
    slots = np.array([c[1] for c in capacity], dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(slots[:-1] * np.diff(times))])
    k = np.searchsorted(times, t, side="right") - 1
    k = np.clip(k, 0, len(times) - 1)
    return np.where(t < times[0], 0.0, cum[k] + slots[k] * (t - times[k]))


def _utilization(
    started: np.ndarray,
    service: np.ndarray,
    arrival: np.ndarray,
    capacity: list[tuple[float, int]],
) -> float:
    if not len(arrival):
        return 0.0
    horizon = float(arrival[-1])
    available = float(_capacity_integral(capacity, np.array([horizon]))[0])
    ok = ~np.isnan(started)
    s, e = started[ok], started[ok] + service[ok]
    busy = float(np.clip(np.minimum(e, horizon) - s, 0.0, None).sum())
    return round(busy / available, 6) if available > 0 else 0.0


def fluid_lower_bound(
    arrival: np.ndarray,
    service: np.ndarray,
    slo: np.ndarray,
    capacity: list[tuple[float, int]],
    buckets: int = 2000,
    windows: int = 400,
    tol: float = 1e-3,
) -> float:
    """A lower bound on the max wait/SLO of any non-preemptive policy that serves every job.

    For a max ratio ``r`` every job j must start by ``d_j = a_j + r * slo_j``. Over a window
    ``[t1, t]``, the jobs arriving at or after ``t1`` with ``d_j <= t`` must all start inside
    it: the work they bring is at most what the slots deliver in the window plus what can still
    be running at ``t`` (no more than the K largest services, K = the most slots ever).

    To stay fast at millions of jobs the check runs on a relaxation that can only lower the
    bound: time is cut into ``buckets`` equal buckets, the jobs of one (bucket, SLO) are one
    lump of work that arrives at the bucket's end (later deadlines are easier), and ``t1``
    runs over up to ``windows`` bucket starts (where membership ``a >= t1`` is exact). The
    smallest ``r`` for which every window passes is found by bisection to relative ``tol``.
    """
    n = len(arrival)
    if n == 0:
        return 0.0
    max_slots = max(s for _, s in capacity)
    if max_slots == 0:
        return _INF
    slack = float(np.sort(service)[-max_slots:].sum())
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
    t1s = starts * width
    cap_t1 = _capacity_integral(capacity, t1s)

    def feasible(r: float) -> bool:
        deadline = lump_arrival + r * lump_slo
        order = np.argsort(deadline, kind="stable")
        b, w = lump_bucket[order], work[order]
        room = _capacity_integral(capacity, deadline[order]) + slack
        for start, c1 in zip(starts, cap_t1, strict=True):
            inside = b >= start
            total = np.cumsum(np.where(inside, w, 0.0))
            if np.any(inside & (total > room - c1)):
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
    return round(hi, 4)
