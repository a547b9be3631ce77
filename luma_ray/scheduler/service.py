"""The scheduler service: the core plus validation, ids, clock and journal. No Ray here.

The Ray actor (``actor.py``) wraps one :class:`SchedulerService` and adds only what needs Ray
and asyncio (waiting pulls, the lease timer). Every method that changes jobs writes them to
the journal before it returns, so an answer a caller has seen survives a crash. Tests build
the service with a fake clock and a temporary journal file.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from luma_ray.config import SchedulerConfig
from luma_ray.errors import InvalidRequest, LumaError, NotFound
from luma_ray.jobs import (
    GenerationParams,
    Job,
    JobError,
    JobId,
    JobState,
    TenantId,
    WorkerId,
    new_job_id,
)
from luma_ray.models.interface import MAX_SEED, GenerationRequest, ModelLimits, validate_request
from luma_ray.scheduler.core import Scheduler
from luma_ray.scheduler.decisions import HeartbeatReply
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.views import job_view

log = logging.getLogger(__name__)

_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@:")


@dataclass(frozen=True)
class SubmitRequest:
    """One generation request as a client sends it (before validation)."""

    prompt: str
    model: str = "luma-tiny"
    tier: str = "free"
    tenant: str = "default"
    negative_prompt: str = ""
    frames: int = 16
    width: int = 64
    height: int = 64
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class Assignment:
    """What a worker gets from a pull: the lease and everything needed to run the job."""

    job_id: JobId
    token: int
    lease_expires_at_s: float
    model: str
    request: GenerationRequest
    attempts: int
    wait_s: float
    lease_ttl_s: float = 60.0
    """A lease lapses this long after its last heartbeat; workers beat well within it."""


class SchedulerService:
    """Owns the scheduler core and its journal; single-threaded (the actor's event loop)."""

    def __init__(
        self,
        config: SchedulerConfig,
        journal: Journal,
        models: Mapping[str, ModelLimits],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.journal = journal
        self.models = dict(models)
        self.clock = clock
        self.core = Scheduler(config)
        jobs, next_token = journal.load()
        now = clock()
        live = sorted(
            (j for j in jobs if not j.state.terminal), key=lambda j: (j.enqueued_at_s, j.id)
        )
        for job in [j for j in jobs if j.state.terminal] + live:
            self.core.restore(job, now, next_token)
        if live:
            log.info("scheduler restored %d unfinished jobs from %s", len(live), journal.path)

    # ---- clients -----------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> dict[str, Any]:
        """Validate and queue one job; raises InvalidRequest or BackPressure, queues nothing."""
        job = self._make_job(request)
        self.core.submit(job, job.created_at_s)
        self._commit()
        log.info("job %s submitted (tier %s, tenant %s)", job.id, job.tier, job.tenant)
        return job_view(job, self.clock())

    def submit_many(self, requests: Iterable[SubmitRequest]) -> list[dict[str, Any]]:
        """Queue several jobs in one journal transaction; a bad one gets an error entry."""
        out: list[dict[str, Any]] = []
        for request in requests:
            try:
                job = self._make_job(request)
                self.core.submit(job, job.created_at_s)
                out.append(job_view(job, job.created_at_s))
            except LumaError as err:
                out.append({"error": {"code": err.code, "message": str(err)}})
        self._commit()
        return out

    def cancel(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        job = self._visible(job_id, tenant)
        self.core.cancel(job.id, self.clock())
        self._commit()
        return job_view(job, self.clock())

    def get(self, job_id: str, tenant: str | None = None) -> dict[str, Any]:
        return job_view(self._visible(job_id, tenant), self.clock())

    def list(
        self, tenant: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first. ``tenant`` None lists every tenant (admin and tests only)."""
        if state is not None and state not in {s.value for s in JobState}:
            raise InvalidRequest(f"unknown state {state!r}; use one of the job states")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        now = self.clock()
        out = []
        for job in reversed(list(self.core.jobs.values())):
            if (tenant is None or job.tenant == tenant) and (state is None or job.state == state):
                out.append(job_view(job, now))
                if len(out) >= limit:
                    break
        return out

    def stats(self) -> dict[str, Any]:
        return self.core.stats(self.clock())

    # ---- workers -----------------------------------------------------------------------

    def pull(self, worker: str, cluster: str, models: Iterable[str]) -> Assignment | None:
        """Lease the best job for this worker, or None when nothing fits now."""
        now = self.clock()
        dispatch = self.core.pull(WorkerId(worker), cluster, list(models), now)
        if dispatch is None:
            return None
        self._commit()
        job = self.core.get(dispatch.job_id)
        limits = self.models.get(job.model)
        default_steps = limits.default_steps if limits else 8
        request = GenerationRequest(
            **{**asdict(job.params), "steps": job.params.steps or default_steps}
        )
        log.info("job %s leased to %s after %.2f s", job.id, worker, dispatch.wait_s)
        return Assignment(
            job.id,
            dispatch.token,
            dispatch.lease_expires_at_s,
            job.model,
            request,
            job.attempts,
            dispatch.wait_s,
            self.config.lease_ttl_s,
        )

    def heartbeat(
        self, job_id: str, token: int, step: int = 0, total: int = 0, phase: str = "running"
    ) -> HeartbeatReply:
        before = self.core.get(JobId(job_id)).state
        reply = self.core.heartbeat(JobId(job_id), token, self.clock(), step, total, phase)
        if self.core.get(JobId(job_id)).state is not before:
            self._commit()
        return reply

    def complete(self, job_id: str, token: int, result_uris: Mapping[str, str]) -> dict[str, Any]:
        job = self.core.complete(JobId(job_id), token, self.clock(), result_uris)
        self._commit()
        log.info("job %s succeeded", job.id)
        return job_view(job, self.clock())

    def fail(
        self, job_id: str, token: int, code: str, message: str, retryable: bool = False
    ) -> dict[str, Any]:
        decision = self.core.fail(
            JobId(job_id), token, self.clock(), JobError(code, message[:500], retryable)
        )
        self._commit()
        log.warning("job %s failed (%s, retryable=%s): %s", job_id, code, retryable, decision)
        return job_view(self.core.get(JobId(job_id)), self.clock())

    def acknowledge_cancel(self, job_id: str, token: int) -> None:
        """A worker stopped a cancelled job; nothing to change, the job is already final."""
        log.info("job %s: worker stopped after cancel (token %d)", job_id, token)

    def tick(self) -> int:
        """Requeue lapsed leases; returns how many. The actor calls this on a timer."""
        decisions = self.core.expire_leases(self.clock())
        if decisions:
            self._commit()
            for d in decisions:
                log.warning("job %s: %s (attempt %d)", d.job_id, d.reason, d.attempts)
        return len(decisions)

    def worker_lost(self, worker: str) -> int:
        decisions = self.core.worker_lost(WorkerId(worker), self.clock())
        self._commit()
        return len(decisions)

    # ---- internals ---------------------------------------------------------------------

    def _commit(self) -> None:
        self.journal.record(self.core.take_dirty(), self.core.next_token)

    def _visible(self, job_id: str, tenant: str | None) -> Job:
        try:
            job = self.core.get(JobId(job_id))
        except NotFound:
            raise NotFound(f"no generation {job_id!r}") from None
        if tenant is not None and job.tenant != tenant:
            raise NotFound(f"no generation {job_id!r}")  # never reveal another tenant's job
        return job

    def _make_job(self, request: SubmitRequest) -> Job:
        if request.tier not in self.core.tiers:
            raise InvalidRequest(
                f"unknown tier {request.tier!r}; use one of {', '.join(self.core.tiers)}"
            )
        if (
            not request.tenant
            or len(request.tenant) > 128
            or not set(request.tenant) <= (_TENANT_CHARS)
        ):
            raise InvalidRequest("tenant must be 1-128 characters of letters, digits, -_.@:")
        limits = self.models.get(request.model)
        if limits is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise InvalidRequest(f"unknown model {request.model!r}; available: {known}")
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        if not 0 <= seed <= MAX_SEED:
            raise InvalidRequest(f"seed must be between 0 and {MAX_SEED}")
        gen = GenerationRequest(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            frames=request.frames,
            height=request.height,
            width=request.width,
            fps=request.fps or limits.default_fps,
            seed=seed,
            steps=request.steps or limits.default_steps,
        )
        validate_request(gen, limits)
        now = self.clock()
        params = GenerationParams(**asdict(gen))
        return Job(
            id=new_job_id(now),
            tenant=TenantId(request.tenant),
            tier=request.tier,
            model=request.model,
            params=params,
            created_at_s=now,
            enqueued_at_s=now,
        )


def with_defaults(request: SubmitRequest, **changes: Any) -> SubmitRequest:
    """A copy of ``request`` with some fields changed (clients build requests this way)."""
    return replace(request, **changes)
