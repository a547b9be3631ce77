"""The scheduler's reports for operators: stats, the queue page, a model's rollout.

Part of the scheduler's boundary (``protocol`` re-exports them). Typed dicts, since they
travel as JSON (the admin API, ``luma-ray status``, ``rollout.yaml``).
"""

from __future__ import annotations

from typing_extensions import TypedDict


class TierQueues(TypedDict):
    queued: int
    oldest_wait_s: float
    models: dict[str, int]
    """Queued jobs per model (``name`` or ``name@version``)."""


class SchedulerStats(TypedDict):
    """Queue depths, oldest waits and back-pressure counters (``luma-ray status``, admin)."""

    policy: str
    tiers: dict[str, TierQueues]
    states: dict[str, int]
    """Jobs in memory by state (finished ones leave memory after ``keep_finished_s``)."""
    in_flight: dict[str, int]
    """Leased-but-unfinished jobs per cluster."""
    refused_pulls: dict[str, int]
    """Pulls refused per cluster because it was at its dispatch limit."""
    peak_in_flight: dict[str, int]


class QueueRow(TypedDict):
    tier: str
    model: str
    depth: int
    oldest_wait_s: float
    slo_s: float
    slo_used: float
    dispatch_per_min: float


class PoolRow(TypedDict):
    pool: str
    model: str
    workers: int
    versions: dict[str, int]
    """Workers per model version."""


class TierPoint(TypedDict):
    depth: int
    oldest_wait_s: float
    slo_used: float
    dispatched: int


class PoolPoint(TypedDict):
    busy: int
    idle: int


class MinuteRow(TypedDict):
    """One minute of the last hour: ``at_s`` is the minute's start."""

    at_s: float
    tiers: dict[str, TierPoint]
    pools: dict[str, PoolPoint]


class FailureRow(TypedDict):
    at_s: float
    job_id: str
    tier: str
    tenant: str
    model: str
    code: str
    message: str
    final: bool
    """False: the failure was retryable and the job went back to its queue."""


class TenantRow(TypedDict):
    tenant: str
    queued: int
    leased: int


class TenantTop(TypedDict):
    """A tier's tenants with the most jobs queued, and with the most leases."""

    by_queued: list[TenantRow]
    by_leased: list[TenantRow]


class QueueReport(TypedDict):
    """The live queue page's data."""

    at_s: float
    queues: list[QueueRow]
    pools: list[PoolRow]
    history: list[MinuteRow]
    """The last hour, one row per sampled minute, oldest first (``scheduler/timeline.py``)."""
    tenants: dict[str, TenantTop]
    """Per tier, the top tenants (names: the page's readers hold queues:read or admin)."""
    failures: list[FailureRow]
    """The last hour's failures, newest first (at most 20)."""


class Halt(TypedDict):
    """Why a version's rollout stopped: the worker that failed to load it, and its error."""

    worker: str
    error: str
    at_s: float


class SwapRecord(TypedDict):
    worker: str
    from_version: str | None
    to_version: str
    started_s: float
    finished_s: float | None
    error: str | None


class RolloutReport(TypedDict):
    """A model's rollout: who serves which version, open swaps, halted versions, recent
    swaps. The scheduler stores it as the model's ``rollout.yaml``."""

    model: str
    workers: dict[str, str]
    swapping: list[str]
    halted: dict[str, Halt]
    events: list[SwapRecord]
