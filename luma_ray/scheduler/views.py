"""What callers see of a job, the limits, and the queue page's data, built from the core.

Leases' fencing tokens and worker ids stay inside the scheduler; clients see state, progress,
timings, results and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from luma_ray.config import SchedulerConfig
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, JobState, ModelLimits
from luma_ray.scheduler.answers import (
    Assignment,
    Backlog,
    JobView,
    JournalFile,
    Limits,
    TierView,
)
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.counters import SchedulerCounters
from luma_ray.scheduler.decisions import Dispatch
from luma_ray.scheduler.estimates import Estimates
from luma_ray.scheduler.reports import PoolRow, QueueReport, QueueRow, TenantRow, TenantTop
from luma_ray.scheduler.rollouts import Rollouts
from luma_ray.scheduler.timeline import QueueHistory, Snapshot, TierGauge

TOP_TENANTS = 5


def job_view(job: Job, now_s: float) -> JobView:
    """The client's view of ``job`` at ``now_s`` (seconds since the epoch), without the queue
    figures that need the live scheduler (``SchedulerService.view`` adds those)."""
    started_at = next((t for t, s, _ in job.history if s is JobState.RUNNING), None)
    waited_until = started_at if started_at is not None else (job.finished_at_s or now_s)
    return JobView(
        id=job.id,
        state=job.state,
        tier=job.tier,
        tenant=job.tenant,
        model=job.model,
        model_version=job.model_version,
        params=job.params,
        attempts=job.attempts,
        progress=job.progress,
        result_uris=dict(job.result_uris),
        error=job.error,
        created_at_s=job.created_at_s,
        started_at_s=started_at,
        finished_at_s=job.finished_at_s,
        wait_s=round(max(0.0, waited_until - job.enqueued_at_s), 3),
        metadata=dict(job.metadata),
        preemptions=job.preemptions,
        api=job.api,
        api_request=job.api_request,
        stage=job.stage,
        caption=job.caption,
        regenerations=job.regenerations,
    )


def assignment(job: Job, dispatch: Dispatch, lease_ttl_s: float) -> Assignment:
    """What the pulling worker gets: the lease and everything needed to run the job's stage."""
    return Assignment(
        job.id,
        dispatch.token,
        dispatch.lease_expires_at_s,
        job.model,
        job.params,
        job.attempts,
        dispatch.wait_s,
        lease_ttl_s,
        job.resume_uri,
        job.stage,
        dict(job.result_uris) if job.stage is not None else {},
        job.stages,
    )


def live_view(core: SchedulerCore, estimates: Estimates, job: Job, now: float) -> JobView:
    """The client's view with queue position, ETA and the share of the SLO used."""
    base = job_view(job, now)
    position = core.position(job)
    eta_s = None
    if position is not None:
        eta_s = round(estimates.wait_for(job.model, position, now), 1)
    elif job.state is JobState.RUNNING and job.progress.step:
        per_step = (now - (base.started_at_s or now)) / job.progress.step
        eta_s = round(per_step * (job.progress.total - job.progress.step), 1)
    return _slo_used(base, core.tiers[job.tier].max_wait_s, position, eta_s)


def finished_view(job: Job, slo_s: float) -> JobView:
    """The view of a job in a final state, as :func:`live_view` gives it (no queue position or
    ETA is left to add), from the job and its tier's SLO alone: what an ingress builds from
    the journal's file (``api/finished_reads.py``)."""
    if not job.state.terminal:
        raise ValueError(f"job {job.id} is {job.state.value}, not finished")
    return _slo_used(job_view(job, job.finished_at_s or 0.0), slo_s, None, None)


def _slo_used(base: JobView, slo_s: float, position: int | None, eta_s: float | None) -> JobView:
    return replace(
        base, queue_position=position, eta_s=eta_s, slo_used=round(base.wait_s / slo_s, 4)
    )


def model_backlog(core: SchedulerCore, estimates: Estimates, model: str) -> Backlog:
    """Queued jobs of ``model`` (any version) and its mean service time."""
    queued = sum(
        q.live
        for (_, queue_model), q in core.queues.queues.items()
        if queue_model.partition("@")[0] == model
    )
    return Backlog(queued, estimates.mean_service_s(model))


def queue_view(
    core: SchedulerCore,
    counters: SchedulerCounters,
    rollouts: Rollouts,
    history: QueueHistory,
    now: float,
) -> QueueReport:
    """The live queue page's data: per tier and model the depth, the oldest wait against the
    SLO and the dispatch rate; per pool the workers and the versions they run; the last hour
    from ``history``; the top tenants per tier; the recent failures."""
    rates = counters.dispatch_per_min(now)
    keys = {(t, m) for (t, m), q in core.queues.queues.items() if q.live} | set(rates)
    order = {name: i for i, name in enumerate(core.tiers)}
    queues: list[QueueRow] = []
    for tier, model in sorted(keys, key=lambda k: (order.get(k[0], 99), k[1])):
        q = core.queues.queues.get((tier, model))
        depth = q.live if q is not None else 0
        oldest = core.oldest_wait_s(tier, model, now)
        slo = core.tiers[tier].max_wait_s
        queues.append(
            {
                "tier": tier,
                "model": model,
                "depth": depth,
                "oldest_wait_s": round(oldest, 1),
                "slo_s": slo,
                "slo_used": round(oldest / slo, 3),
                "dispatch_per_min": round(rates.get((tier, model), 0.0), 1),
            }
        )
    by_pool: dict[tuple[str, str], dict[str, int]] = {}
    for model in rollouts.models():
        for worker, version in rollouts.serving(model, now).items():
            versions = by_pool.setdefault((pool_of(worker, model), model), {})
            versions[version] = versions.get(version, 0) + 1
    pools: list[PoolRow] = [
        {"pool": pool, "model": model, "workers": sum(v.values()), "versions": v}
        for (pool, model), v in sorted(by_pool.items())
    ]
    return {
        "at_s": now,
        "queues": queues,
        "pools": pools,
        "history": history.series(now),
        "tenants": top_tenants(core),
        "failures": history.recent_failures(now),
    }


def snapshot(core: SchedulerCore, rollouts: Rollouts, now: float) -> Snapshot:
    """The gauges the queue page charts: per tier the depth and the oldest wait (every tier,
    empty ones too), per pool the workers holding a lease and the live ones without one."""
    depth: dict[str, int] = dict.fromkeys(core.tiers, 0)
    oldest: dict[str, float] = dict.fromkeys(core.tiers, 0.0)
    for (tier, model), q in core.queues.queues.items():
        if q.live and tier in depth:
            depth[tier] += q.live
            oldest[tier] = max(oldest[tier], core.oldest_wait_s(tier, model, now))
    tiers = {t: TierGauge(depth[t], oldest[t], spec.max_wait_s) for t, spec in core.tiers.items()}
    busy = core.busy_workers()
    pools: dict[str, tuple[int, int]] = {}
    for worker, model in busy.items():
        b, i = pools.get(pool := pool_of(worker, model.partition("@")[0]), (0, 0))
        pools[pool] = (b + 1, i)
    for model in rollouts.models():
        for worker in rollouts.serving(model, now):
            if worker not in busy:
                b, i = pools.get(pool := pool_of(worker, model), (0, 0))
                pools[pool] = (b, i + 1)
    return Snapshot(tiers, pools)


def top_tenants(core: SchedulerCore, n: int = TOP_TENANTS) -> dict[str, TenantTop]:
    """Per tier (in tier order), the ``n`` tenants with the most queued jobs and the ``n``
    with the most leases (ties by name)."""
    queued, leased = core.caps.queued, core.caps.leased
    out: dict[str, TenantTop] = {}
    for tier in core.tiers:
        names = {t for (k, t), c in queued.items() if k == tier and c > 0}
        names |= {t for (k, t), c in leased.items() if k == tier and c > 0}
        rows: list[TenantRow] = [
            {"tenant": t, "queued": queued[(tier, t)], "leased": leased[(tier, t)]}
            for t in sorted(names)
        ]
        if rows:
            out[tier] = {
                "by_queued": _top(rows, "queued", n),
                "by_leased": _top(rows, "leased", n),
            }
    return out


def _top(rows: list[TenantRow], by: Literal["queued", "leased"], n: int) -> list[TenantRow]:
    return sorted((r for r in rows if r[by] > 0), key=lambda r: -r[by])[:n]


def pool_of(worker: str, model: str) -> str:
    """The pool in a worker id ``cluster/pool/process``; other ids: the model's pool."""
    parts = worker.split("/")
    return parts[1] if len(parts) >= 3 else f"{model}-workers"


def describe(
    core: SchedulerCore,
    models: Mapping[str, ModelLimits],
    config: SchedulerConfig,
    journal: JournalFile | None = None,
) -> Limits:
    """Tiers with their SLOs and shedding, each model's limits, the tenant caps, and where
    the journal is."""
    return Limits(
        tiers=tuple(
            TierView(t.name, t.max_wait_s, t.weight, t.shed_ratio) for t in core.tiers.values()
        ),
        models=dict(models),
        tenant_limits=dict(config.tenant_limits),
        journal=journal,
    )


def check_page(state: str | None, limit: int, order: str) -> None:
    """``InvalidRequest`` naming the bad argument of a job listing, if any."""
    if state is not None and state not in {s.value for s in JobState}:
        raise InvalidRequest(f"unknown state {state!r}; use one of the job states")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'")
