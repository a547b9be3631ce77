"""What one dispatch-simulator run measured, from a finished :class:`Replay`.

Measured per run (see :class:`DispatchSimResult`): priority inversions (counted by
:func:`~luma_ray.sim.dispatch_metrics.inversions`), idle accelerator-seconds split by cause,
and SLO attainment and waits per tier, where wait = start on the accelerator - arrival (a job
held as a prefetch is still waiting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from luma_ray.scheduler.tiers import tier_specs
from luma_ray.sim.dispatch_metrics import inversions
from luma_ray.sim.dispatch_replay import Replay

_INF = math.inf

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TierOutcome:
    """One tier's jobs in one run."""

    n: int
    served: int
    attainment: float
    """Share of the tier's jobs that started within its SLO (unserved ones miss)."""
    wait_p50_s: float
    wait_p99_s: float


@dataclass(frozen=True)
class ClusterOutcome:
    """One cluster in one run."""

    jobs_run: int
    max_in_flight: int
    """Most leased-but-unfinished jobs seen after any event (the core's counter)."""
    idle_limit_s: float
    idle_latency_s: float


@dataclass(frozen=True)
class DispatchSimResult:
    """What one run measured. Slot-seconds are summed over every slot of every cluster."""

    jobs: int
    served: int
    end_s: float
    """Time of the last event (the last finish, or the last arrival if work never ran)."""
    inversions: int
    """Starts of a job while a job of a higher tier (api > enterprise > ...) sat in the
    scheduler's queue, having waited longer than the starting slot's pull latency."""
    passed_over: int
    """Jobs that were waiting (longer than the latency) during at least one such start."""
    inversion_wait_s: float
    """Time those jobs waited from the first start that passed them over to their own start
    (a job held as a prefetch behind a lower tier's job keeps counting)."""
    idle_limit_s: float
    """Slot idle, nothing leased to it, jobs queued, and its cluster at its dispatch limit."""
    idle_latency_s: float
    """Slot idle while the job leased to it was on its way (the pull latency)."""
    idle_no_work_s: float
    """Slot idle with nothing leased to it and an empty queue (not the limit's fault)."""
    idle_unexplained_s: float
    """Slot idle with jobs queued and its cluster under its limit: should stay 0."""
    busy_s: float
    weighted_attainment: float
    tiers: dict[str, TierOutcome]
    clusters: dict[str, ClusterOutcome]
    start_s: list[float]
    """Per trace row: when it started computing (NaN if never)."""


def report(replay: Replay) -> DispatchSimResult:
    """What ``replay`` measured, once its :meth:`~Replay.run` has returned."""
    t = replay.trace
    specs = tier_specs(replay.sched.config.tiers)
    arrival = np.asarray(t.arrival_s, dtype=np.float64)
    start = np.asarray(replay.start_s, dtype=np.float64)
    order = np.array([specs[x].order for x in t.tier], dtype=np.int64)
    step = (
        np.asarray(replay.lease_step, dtype=np.float64),
        np.asarray(replay.start_step, dtype=np.float64),
    )
    ran_on = np.asarray(replay.ran_on, dtype=np.int64)
    latency = np.array([c.pull_latency_s for c in replay.clusters], dtype=np.float64)
    inv = inversions(arrival, order, start, ran_on, step, latency, replay.now)
    wait = start - arrival
    slo = np.array([specs[x].max_wait_s for x in t.tier], dtype=np.float64)
    weight = np.array([specs[x].weight for x in t.tier], dtype=np.float64)
    met = np.nan_to_num(wait, nan=_INF) <= slo
    tiers = {
        name: _tier_outcome(wait[order == s.order], met[order == s.order])
        for name, s in specs.items()
        if (order == s.order).any()
    }
    clusters = {
        spec.name: ClusterOutcome(
            jobs_run=int((ran_on == c).sum()),
            max_in_flight=replay.max_in_flight[c],
            idle_limit_s=replay.idle_limit_s[c],
            idle_latency_s=replay.idle_latency_s[c],
        )
        for c, spec in enumerate(replay.clusters)
    }
    return DispatchSimResult(
        jobs=len(t),
        served=int((~np.isnan(start)).sum()),
        end_s=replay.now,
        inversions=inv[0],
        passed_over=inv[1],
        inversion_wait_s=inv[2],
        idle_limit_s=sum(replay.idle_limit_s),
        idle_latency_s=sum(replay.idle_latency_s),
        idle_no_work_s=replay.idle_no_work_s,
        idle_unexplained_s=replay.idle_odd_s,
        busy_s=replay.busy_s,
        weighted_attainment=float((weight * met).sum() / weight.sum()) if len(t) else 1.0,
        tiers=tiers,
        clusters=clusters,
        start_s=list(replay.start_s),
    )


def _tier_outcome(wait: FloatArray, met: npt.NDArray[np.bool_]) -> TierOutcome:
    served = wait[~np.isnan(wait)]
    p50, p99 = np.quantile(served, [0.5, 0.99]) if len(served) else (math.nan, math.nan)
    return TierOutcome(
        n=len(wait),
        served=len(served),
        attainment=float(met.mean()),
        wait_p50_s=float(p50),
        wait_p99_s=float(p99),
    )
