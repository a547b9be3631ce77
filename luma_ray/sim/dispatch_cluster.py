"""The clusters of the dispatch simulator, and the scheduler core's config built from them.

A cluster is a number of identical worker slots behind one dispatch limit and one pull latency;
:func:`scheduler_config` turns a list of them into the :class:`SchedulerConfig` the core
enforces during :func:`~luma_ray.sim.dispatch_sim.run_dispatch_sim`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from luma_ray.config import (
    ClusterConfig,
    PolicyConfig,
    SchedulerConfig,
    TenantLimits,
    TierConfig,
    default_tiers,
)
from luma_ray.scheduler.policies import DEFAULT_POLICY


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster of identical worker slots (gangs), each able to run any model."""

    name: str
    slots: int
    dispatch_limit: int | None
    """Most leased-but-unfinished jobs; 0 receives nothing, None is unlimited."""
    pull_latency_s: float
    """From the scheduler leasing a job to the job being ready on the worker."""


def scheduler_config(
    clusters: Sequence[ClusterSpec],
    policy: str = DEFAULT_POLICY,
    params: dict[str, float] | None = None,
    tiers: list[TierConfig] | None = None,
) -> SchedulerConfig:
    """The core's config for ``clusters`` (limit None: unlimited; 0: nothing)."""
    listed = {c.name: ClusterConfig(dispatch_limit=c.dispatch_limit) for c in clusters}
    tiers = tiers or default_tiers()
    return SchedulerConfig(
        tiers=tiers,
        policy=PolicyConfig(name=policy, params=dict(params or {})),
        clusters=listed,
        default_dispatch_limit=None,
        lease_ttl_s=3600.0,  # leases never lapse here: workers in the model never die
        # A trace replays every arrival as it happened: no tenant cap may refuse one.
        tenant_limits={t.name: TenantLimits(max_queued=None) for t in tiers},
    )
