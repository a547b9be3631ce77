"""Several clusters pulling from one scheduler core: what a dispatch limit costs and buys.

Called by ``benchmarks/dispatch_limits.py`` and by ``tests/sim``. Unlike
:mod:`luma_ray.sim.simulate` (one pool, dispatch straight from the queues), this replay
drives the real :class:`~luma_ray.scheduler.core.SchedulerCore` (submit, pull, heartbeat,
complete), so the limit check, the lease counter and the policy are the production ones.
Pure: no Ray, no clock; time is data.

This module is the entry point; the parts live beside it, each importing only those below it:

- :mod:`~luma_ray.sim.dispatch_cluster`: :class:`ClusterSpec` and :func:`scheduler_config`;
- :mod:`~luma_ray.sim.dispatch_replay`: the event loop and the model of a worker;
- :mod:`~luma_ray.sim.dispatch_report`: :class:`DispatchSimResult` and how a run is measured;
- :mod:`~luma_ray.sim.dispatch_metrics`: the priority-inversion count.
"""

from __future__ import annotations

from collections.abc import Sequence

from luma_ray.config import SchedulerConfig
from luma_ray.sim.dispatch_cluster import ClusterSpec, scheduler_config
from luma_ray.sim.dispatch_replay import Observer, Replay
from luma_ray.sim.dispatch_report import (
    ClusterOutcome,
    DispatchSimResult,
    TierOutcome,
    report,
)
from luma_ray.sim.traces.reader import Trace

__all__ = [
    "ClusterOutcome",
    "ClusterSpec",
    "DispatchSimResult",
    "Observer",
    "TierOutcome",
    "run_dispatch_sim",
    "scheduler_config",
]


def run_dispatch_sim(
    trace: Trace,
    clusters: Sequence[ClusterSpec],
    config: SchedulerConfig | None = None,
    prefetch_poll_s: float = 1.0,
    observer: Observer | None = None,
    prefetch_lead_s: float | None = None,
) -> DispatchSimResult:
    """Replay ``trace`` on ``clusters`` through one scheduler core; run until nothing moves.

    ``config`` carries the policy and the limits the core enforces; by default
    :func:`scheduler_config` builds it from the clusters' ``dispatch_limit`` with policy
    ``slo_guard``. The trace must be sorted by arrival (``read_trace`` checks that).
    ``observer(now_s, scheduler)`` is called after each event time is fully handled (tests
    check invariants there). ``prefetch_lead_s``: a busy worker pulls this long before its job
    ends (``WorkerLoop.prefetch_lead_s``); None pulls at the start of each job.
    """
    config = config or scheduler_config(clusters)
    replay = Replay(trace, clusters, config, prefetch_poll_s, prefetch_lead_s)
    replay.run(observer)
    return report(replay)
