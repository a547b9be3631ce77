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
from pathlib import Path
from typing import Any

import numpy as np

from luma_ray.config import PreemptionConfig, TierConfig, default_tiers
from luma_ray.scheduler.job_facts import LookedUpFacts
from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.preemption import PreemptionRule
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.shares import DEFAULT_LAG_JOBS
from luma_ray.scheduler.tiers import TierSpec, tier_specs
from luma_ray.sim.bounds import capacity_integral, fluid_lower_bound
from luma_ray.sim.capacity import capacity_steps
from luma_ray.sim.jobs_out import write_jobs
from luma_ray.sim.preemptive import DEFAULT_STEPS, replay_preemptive
from luma_ray.sim.traces.reader import Trace

__all__ = ["fluid_lower_bound", "simulate", "summarize"]

_INF = math.inf


def simulate(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    tiers: list[TierConfig] | None = None,
    preemption: PreemptionConfig | None = None,
    default_steps: int = DEFAULT_STEPS,
    jobs_out: str | Path | None = None,
    fair_share: bool = True,
    lag_jobs: float = DEFAULT_LAG_JOBS,
) -> dict[str, Any]:
    """Replay ``trace`` on ``capacity`` with ``policy``; return the result mapping.

    ``jobs_out``: also write one row per job there (:func:`luma_ray.sim.jobs_out.write_jobs`).
    With ``preemption``, jobs are divided into steps and may be parked at step boundaries
    (:mod:`luma_ray.sim.preemptive`, first come first served inside a tier); the result gains
    a ``preemption`` section. ``fair_share`` False queues first come, first served across the
    tenants of a tier; ``lag_jobs`` is fair share's lag (docs/scheduling.md)."""
    specs = tier_specs(tiers or default_tiers())
    if preemption is None:
        start = _replay(trace, capacity, policy, specs, fair_share, lag_jobs)
        if jobs_out is not None:
            write_jobs(jobs_out, trace, start)
        return {**summarize(trace, capacity, policy, specs, start), "fair_share": fair_share}
    run = replay_preemptive(
        trace, capacity, policy, specs, PreemptionRule(preemption), default_steps
    )
    if jobs_out is not None:
        write_jobs(jobs_out, trace, run.start, run.end, run.preemptions)
    result = {**summarize(trace, capacity, policy, specs, run.start), "fair_share": False}
    parks = np.asarray(run.preemptions, dtype=np.int64)
    tier = np.asarray(trace.tier)
    # What parking cost the parked jobs: how much later they ended than an uninterrupted run.
    late = (np.asarray(run.end) - np.asarray(run.start) - np.asarray(trace.service_s))[parks > 0]
    late = np.maximum(late[~np.isnan(late)], 0.0)  # float noise: never a negative delay
    result["preemption"] = {
        **preemption.model_dump(),
        "default_steps": default_steps if trace.steps is None else None,
        "parks": int(parks.sum()),
        "jobs_parked": int((parks > 0).sum()),
        "max_parks_per_job": int(parks.max()) if len(parks) else 0,
        "parks_by_tier": {
            name: int(parks[tier == name].sum()) for name in specs if (tier == name).any()
        },
        "parked_delay_p50_s": round(_q(late, 0.5), 3),
        "parked_delay_max_s": round(float(late.max()) if len(late) else 0.0, 3),
    }
    return result


def _replay(
    trace: Trace,
    capacity: list[tuple[float, int]],
    policy: Policy,
    specs: dict[str, TierSpec],
    fair_share: bool = True,
    lag_jobs: float = DEFAULT_LAG_JOBS,
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
    # fair share reads a job's tenant and cost (its service time) from the trace, by index
    facts = LookedUpFacts(tenant_of.__getitem__, service.__getitem__)
    book = QueueBook(specs, fair_share, lag_jobs=lag_jobs, facts=facts)
    # Every slot serves every model, so one queue per tier picks exactly what per-model queues
    # would (the pick is an argmax over the union), with half the candidates. Fair share is
    # then per tier, over everything a tenant runs in it.
    models = ["*"]
    queue_of = {t: book.queue(t, "*") for t in sorted(set(tier_of))}
    book_push = book.push

    def head_of(tier: str) -> float:
        return book.oldest_s(tier, "*") or 0.0

    shed = {name: s.shed_ratio * s.max_wait_s for name, s in specs.items() if s.shed_ratio}
    pick, on_dispatch, on_arrival = book.pick, policy.on_dispatch, policy.on_arrival
    finish: list[float] = []  # heap of finish times of running jobs
    push, pop = heapq.heappush, heapq.heappop
    cap_times, cap_slots, c = capacity_steps(capacity)
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
                on_arrival(specs[tier], now)
                # Nothing waits, so the job starts at once; tell stateful policies (fair share
                # charges only jobs that queued: a tenant is not behind anyone it never waited
                # with).
                start[i] = now
                push(finish, now + service[i])
                busy += 1
                on_dispatch(specs[tier], 0, 0.0, now)
            elif tier in shed and queue_of[tier].live and now - head_of(tier) > shed[tier]:
                pass  # admission control: the tier's head is far past its SLO; reject
            else:
                on_arrival(specs[tier], now)
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


def _utilization(
    started: np.ndarray,
    service: np.ndarray,
    arrival: np.ndarray,
    capacity: list[tuple[float, int]],
) -> float:
    if not len(arrival):
        return 0.0
    horizon = float(arrival[-1])
    available = float(capacity_integral(capacity, np.array([horizon]))[0])
    ok = ~np.isnan(started)
    s, e = started[ok], started[ok] + service[ok]
    busy = float(np.clip(np.minimum(e, horizon) - s, 0.0, None).sum())
    return round(busy / available, 6) if available > 0 else 0.0
