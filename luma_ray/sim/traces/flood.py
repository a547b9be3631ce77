"""A flood: one added tenant submitting many times its tier's normal volume (docs/traces.md).

:func:`add_flood` returns a copy of a trace with one new tenant in ``tier`` whose job count is
``factor`` times the tier's. Its jobs follow the tier's own shape: each arrival is one of the
tier's arrivals, drawn with replacement, plus a uniform jitter of up to ``jitter_s`` seconds
either side (so the flood rises and falls with the tier's traffic), and each job's model and
service time are those of another of the tier's jobs drawn at random. Randomness comes from a
generator seeded with ``seed``; the same arguments give the same trace.
"""

from __future__ import annotations

import numpy as np

from luma_ray.errors import TraceError
from luma_ray.sim.traces.reader import Trace


def add_flood(
    trace: Trace,
    tier: str = "free",
    factor: float = 10.0,
    tenant: str = "flood",
    seed: int = 0,
    jitter_s: float = 60.0,
) -> Trace:
    """``trace`` plus a tenant ``tenant`` in ``tier`` with ``factor`` x the tier's job count,
    sorted by arrival (ties keep the original jobs first)."""
    if not factor > 0:
        raise TraceError(f"flood factor must be > 0, got {factor!r}; try 10")
    if tenant in set(trace.tenant):
        raise TraceError(f"tenant {tenant!r} is already in the trace; name the flood otherwise")
    rows = np.flatnonzero(np.asarray(trace.tier) == tier)
    if not len(rows):
        raise TraceError(f"the trace has no job in tier {tier!r} to take the flood's shape from")
    rng = np.random.default_rng(seed)
    n = int(round(factor * len(rows)))
    arrival = np.asarray(trace.arrival_s, dtype=np.float64)
    service = np.asarray(trace.service_s, dtype=np.float64)
    at = arrival[rng.choice(rows, n)] + rng.uniform(-jitter_s, jitter_s, n)
    at = np.clip(at, arrival[0], arrival[-1])
    like = rng.choice(rows, n)
    all_arrival = np.concatenate([arrival, at])
    order = np.argsort(all_arrival, kind="stable")
    models = trace.model + [trace.model[i] for i in like.tolist()]
    services = np.concatenate([service, service[like]])
    idx = order.tolist()
    return Trace(
        arrival_s=all_arrival[order].tolist(),
        tenant=[trace.tenant[i] if i < len(trace) else tenant for i in idx],
        tier=[trace.tier[i] if i < len(trace) else tier for i in idx],
        model=[models[i] for i in idx],
        service_s=services[order].tolist(),
    )


def attainment(
    trace: Trace, start_s: list[float], tier: str, slo_s: float, skip_tenant: str = ""
) -> float:
    """The share of ``tier``'s jobs, ``skip_tenant``'s left out, that started within
    ``slo_s`` of arriving (``start_s`` per job, NaN for one that never started)."""
    met = n = 0
    for i, t in enumerate(trace.tier):
        if t != tier or trace.tenant[i] == skip_tenant:
            continue
        n += 1
        wait = start_s[i] - trace.arrival_s[i]
        met += wait <= slo_s  # False for NaN
    return met / max(n, 1)
