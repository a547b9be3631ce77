"""What callers see of a job, the limits, and the queue page's data, built from the core.

Leases' fencing tokens and worker ids stay inside the scheduler; clients see state, progress,
timings, results and errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from luma_ray.config import SchedulerConfig
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, JobState, ModelLimits
from luma_ray.scheduler.answers import Assignment, Backlog, JobView, Limits, TierView
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.counters import SchedulerCounters
from luma_ray.scheduler.decisions import Dispatch
from luma_ray.scheduler.estimates import Estimates
from luma_ray.scheduler.reports import PoolRow, QueueReport, QueueRow
from luma_ray.scheduler.rollouts import Rollouts


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
    slo_s = core.tiers[job.tier].max_wait_s
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
    core: SchedulerCore, counters: SchedulerCounters, rollouts: Rollouts, now: float
) -> QueueReport:
    """The live queue page's data: per tier and model the depth, the oldest wait against the
    SLO and the dispatch rate; per pool the workers and the versions they run."""
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
    return {"at_s": now, "queues": queues, "pools": pools}


def pool_of(worker: str, model: str) -> str:
    """The pool in a worker id ``cluster/pool/process``; other ids: the model's pool."""
    parts = worker.split("/")
    return parts[1] if len(parts) >= 3 else f"{model}-workers"


def describe(
    core: SchedulerCore, models: Mapping[str, ModelLimits], config: SchedulerConfig
) -> Limits:
    """Tiers with their SLOs and shedding, each model's limits, and the tenant caps."""
    return Limits(
        tiers=tuple(
            TierView(t.name, t.max_wait_s, t.weight, t.shed_ratio) for t in core.tiers.values()
        ),
        models=dict(models),
        tenant_limits=dict(config.tenant_limits),
    )


def check_page(state: str | None, limit: int, order: str) -> None:
    """``InvalidRequest`` naming the bad argument of a job listing, if any."""
    if state is not None and state not in {s.value for s in JobState}:
        raise InvalidRequest(f"unknown state {state!r}; use one of the job states")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'")
