"""The scheduler service: the core plus validation, ids, clock and journal. No Ray here.

It answers every operation of ``protocol`` (``call`` runs an op by the method it names). The
Ray actor (``luma_ray.runtime.actor``) wraps one :class:`SchedulerService` and adds only what
needs Ray and asyncio (waiting pulls, the lease timer, group commit). Every method that changes
jobs writes them to the journal before it returns (in the journal's group mode it queues them,
and the actor answers once the group commit that carries them is durable), so an answer a
caller has seen survives a crash; job events are published once their change is durable. Tests
build the service with a fake clock and a temporary journal file.
"""

from __future__ import annotations

import builtins
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from luma_ray.config import SchedulerConfig
from luma_ray.errors import BackPressure, LumaError, NotFound
from luma_ray.jobs import Job, JobError, JobId, JobState, ModelLimits, WorkerId
from luma_ray.jobs.states import state_moved
from luma_ray.scheduler import pipeline
from luma_ray.scheduler.admission import check_pin, shed
from luma_ray.scheduler.counters import SchedulerCounters
from luma_ray.scheduler.estimates import Estimates
from luma_ray.scheduler.feed import EventLog, EventOps
from luma_ray.scheduler.intake import make_job
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.leasing import LeaseOps
from luma_ray.scheduler.parking import mark_parks, park
from luma_ray.scheduler.protocol import (
    Backlog,
    JobEvent,
    JobView,
    JournalFile,
    Limits,
    Op,
    QueueReport,
    RolloutReport,
    SchedulerStats,
    StateChange,
    SubmitRefused,
    SubmitRequest,
    SwapVerdict,
)
from luma_ray.scheduler.recovery import Memory, Recovery
from luma_ray.scheduler.rollouts import Rollouts
from luma_ray.scheduler.timeline import QueueHistory, seed
from luma_ray.scheduler.views import (
    check_page,
    describe,
    live_view,
    model_backlog,
    queue_view,
    snapshot,
)

log = logging.getLogger(__name__)

R = TypeVar("R")


class SchedulerService(EventOps, LeaseOps):
    """Owns the scheduler core and its journal; single-threaded (the actor's event loop).
    Publishes job events to ``feed`` (``scheduler/feed.py``, which answers the event ops);
    a worker's lease ops are answered by ``LeaseOps`` (``scheduler/leasing.py``)."""

    def __init__(
        self,
        config: SchedulerConfig,
        journal: Journal,
        models: Mapping[str, ModelLimits],
        clock: Callable[[], float],
        active_version: Callable[[str], str | None] | None = None,
        stored_rollout: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.models = dict(models)
        self.clock = clock
        self.active_version = active_version
        """The repository's active version of a model (None: not from the repository);
        without it, requests cannot pin ``model@version``."""
        self.estimates = Estimates()
        self.rollouts = Rollouts(stored_rollout)
        self.counters, self.history = SchedulerCounters(), QueueHistory()
        self.feed, self.calls = EventLog(int(clock() * 1_000_000)), Counter[str]()
        self.on_change: Callable[[JobEvent], None] | None = None
        """Called after each journaled change (the actor sends webhooks from it)."""
        self.on_rollout: Callable[[str], None] | None = None
        """Called with a model's name when its rollout moved (the actor stores the status)."""
        self.recovery = Recovery(
            config, journal, self.rollouts, clock, active_version, self._install
        )
        """Reads memory from the journal (the core with jobs, queues and leases, the
        Idempotency-Keys, housekeeping) now, and again after a failed write."""
        seed(self.history, self.core.jobs.values(), clock())  # the page's hour, after a restart

    def call(self, op: Op[R]) -> R:
        """Answer one operation of the protocol: the method it names, with its fields."""
        self.recovery.check()
        self.calls[type(op).__name__] += 1
        return cast(R, getattr(self, op.method)(**op.arguments()))

    # ---- clients -----------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> JobView:
        """Validate and queue one job; raises InvalidRequest or BackPressure, queues nothing.

        With an idempotency key, a retry of the same request returns the first job, and the
        same key with a different request raises ``Conflict``.
        """
        job = self._accept(request)
        views = self._commit()
        mark_parks(self.core, self.clock())  # marks running jobs only: the view stands
        return views.get(job.id) or self.view(job)

    def submit_many(self, requests: Iterable[SubmitRequest]) -> list[JobView | SubmitRefused]:
        """Queue several jobs in one journal transaction; a bad one is answered in place."""
        out: list[Job | SubmitRefused] = []
        for request in requests:
            try:
                out.append(self._accept(request))
            except LumaError as err:
                out.append(SubmitRefused(err.code, str(err)))
        views = self._commit()
        mark_parks(self.core, self.clock())
        return [a if isinstance(a, SubmitRefused) else views.get(a.id) or self.view(a) for a in out]

    def _accept(self, request: SubmitRequest) -> Job:
        key = request.idempotency_key
        # Only an Idempotency-Key needs the hash: without one, a job keeps no 64-byte copy.
        fingerprint = request.fingerprint() if key else None
        earlier = self.idempotency.earlier(request.tenant, key, fingerprint, self.core.jobs)
        if earlier is not None:
            return earlier
        check_pin = self._check_pin if self.active_version is not None else None
        job = make_job(request, self.core.tiers, self.models, self.clock(), check_pin)
        job.idempotency_key, job.request_hash = request.idempotency_key, fingerprint
        pipeline.start(job, self.config.pipelines)
        try:
            shed(self.core, self.estimates, job, self.clock())
            self.core.submit(job, job.created_at_s)
        except BackPressure as err:
            self.counters.refused[(job.tier, err.code)] += 1
            raise
        self.idempotency.remember(job)
        self.housekeeping.track(job)
        log.debug("job %s submitted (tier %s, tenant %s)", job.id, job.tier, job.tenant)
        return job

    def _check_pin(self, model: str, version: str) -> None:
        assert self.active_version is not None
        check_pin(self.rollouts, self.active_version, model, version, self.clock())

    def view(self, job: Job) -> JobView:
        """The client's view, with queue position, ETA and the share of the SLO used."""
        return live_view(self.core, self.estimates, job, self.clock())

    def delete(self, job_id: str, tenant: str | None = None) -> JobView:
        """Forget a job (cancelling it first if live); returns its last view."""
        job = self._visible(job_id, tenant)
        view = self.view(job)
        if job.id in self.core.jobs:
            self.core.forget(job.id, self.clock())
        self.recovery.write(lambda: self.journal.forget([job.id]))
        self.idempotency.forget(job)
        now = self.clock()
        self.journal.when_durable(lambda: self.feed.deleted(view, now))
        return view

    def cancel(self, job_id: str, tenant: str | None = None) -> JobView:
        job = self._visible(job_id, tenant)
        if job.id not in self.core.jobs:  # finished long ago: nothing to cancel
            return self.view(job)
        self.core.cancel(job.id, self.clock())
        self._commit()
        return self.view(job)

    def get(self, job_id: str, tenant: str | None = None) -> JobView:
        return self.view(self._visible(job_id, tenant))

    def list(
        self,
        tenant: str | None = None,
        state: str | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "desc",
    ) -> builtins.list[JobView]:
        """Jobs by id (= creation time), newest first unless ``order='asc'``; ``after`` is
        the cursor: the last id of the previous page. ``tenant`` None lists every tenant
        (admin and tests only). Read from the journal's indexes (every state change is
        journaled before a call returns), with the live progress of jobs in memory."""
        check_page(state, limit, order)
        jobs = self.journal.page(tenant, state, limit, after, desc=order == "desc")
        return [self.view(self.core.jobs.get(j.id, j)) for j in jobs]

    def events(
        self, job_id: str, tenant: str | None = None, after: int = 0
    ) -> builtins.list[StateChange]:
        """The job's state changes after ``after``, from its history (journaled with it)."""
        job = self._visible(job_id, tenant)
        history = enumerate(job.history, start=1)
        return [StateChange(seq, s, at_s, why) for seq, (at_s, s, why) in history if seq > after]

    def describe(self) -> Limits:
        """Tiers with their SLOs and shedding, and each model's limits (for the API)."""
        journal = JournalFile(str(self.journal.path.resolve()), self.journal.identity)
        return describe(self.core, self.models, self.config, journal)

    def stats(self) -> SchedulerStats:
        return self.core.stats(self.clock())

    def ping(self) -> str:
        return "ok"

    # ---- workers -----------------------------------------------------------------------

    def reject(self, job_id: str, token: int, reasons: tuple[str, ...]) -> JobView:
        """QA rejected the video: a new seed, or ``qa: <reasons>`` (``pipeline.reject``)."""
        job = pipeline.reject(self.core, JobId(job_id), token, self.clock(), reasons)
        self._commit()
        return self.view(job)

    def fail(
        self, job_id: str, token: int, code: str, message: str, retryable: bool = False
    ) -> JobView:
        decision = self.core.fail(
            JobId(job_id), token, self.clock(), JobError(code, message[:500], retryable)
        )
        self._commit()
        self.counters.lost([decision], "failure")
        job = self.core.get(JobId(job_id))
        if job.state is not JobState.FAILED:  # retried: a final failure is kept by _commit
            self.history.failed(job, JobError(code, message, retryable), self.clock())
        log.warning("job %s failed (%s, retryable=%s): %s", job_id, code, retryable, decision)
        return self.view(job)

    def release(self, job_id: str, token: int) -> JobView:
        """A worker hands back an unstarted lease (stopping, or swapping versions)."""
        job = self.core.release(JobId(job_id), token, self.clock())
        self._commit()
        self.counters.requeued["handed_back"] += 1
        log.info("job %s handed back by its worker (attempt %d)", job_id, job.attempts)
        return self.view(job)

    def park(self, job_id: str, token: int, step: int, total: int, state_uri: str) -> JobView:
        """A worker parked the job at a step boundary (its heartbeat asked it to): queued
        again with its place, progress and state (``parking.park``); no attempt counted."""
        job = park(self.core, JobId(job_id), token, self.clock(), step, total, state_uri)
        self._commit()
        self.counters.requeued["parked"] += 1
        log.info("job %s parked at step %d of %d (%d times)", job_id, step, total, job.preemptions)
        mark_parks(self.core, self.clock())
        return self.view(job)

    # ---- rollouts ----------------------------------------------------------------------

    def request_swap(
        self, worker: str, model: str, target: str, pool_size: int, max_unavailable: str
    ) -> SwapVerdict:
        """May ``worker`` stop serving to load ``target`` now? ``go``, ``wait`` or ``halted``."""
        verdict = self.rollouts.request_swap(
            worker, model, target, pool_size, max_unavailable, self.clock()
        )
        log.info("worker %s: swap %s to %s: %s", worker, model, target, verdict)
        if verdict == "go" and self.on_rollout is not None:
            self.on_rollout(model)
        return cast(SwapVerdict, verdict)

    def finish_swap(self, worker: str, model: str, target: str, error: str | None) -> None:
        """A worker finished a swap; ``error`` (it stayed on its old version) halts it."""
        self.rollouts.finish_swap(worker, model, target, error, self.clock())
        if error is None:
            log.info("worker %s now serves %s@%s", worker, model, target)
        else:
            log.warning("rollout of %s@%s halted: worker %s: %s", model, target, worker, error)
        if self.on_rollout is not None:
            self.on_rollout(model)

    def backlog(self, model: str) -> Backlog:
        """Queued jobs of ``model`` (any version) and its mean service time: what the pools'
        autoscaling policy scales on."""
        return model_backlog(self.core, self.estimates, model)

    def queue_view(self) -> QueueReport:
        """The live queue page's data (``views.queue_view``); samples the gauges first."""
        now = self.clock()
        self.history.sample(snapshot(self.core, self.rollouts, now), now)
        return queue_view(self.core, self.counters, self.rollouts, self.history, now)

    def halted_versions(self, model: str) -> builtins.list[str]:
        return sorted(self.rollouts.status(model, self.clock())["halted"])

    def rollout_status(self, model: str) -> RolloutReport:
        return self.rollouts.status(model, self.clock())

    def tick(self) -> int:
        """Requeue lapsed leases (returns how many) and evict finished jobs older than
        ``keep_finished_s`` from memory. The actor calls this on a timer."""
        self.recovery.check()
        swept = self.housekeeping.sweep(self.clock())
        if swept.failed:
            self._commit()
        for job in swept.evicted:  # its Idempotency-Key goes with it
            self.idempotency.forget(job)
        decisions = self.core.expire_leases(self.clock())
        mark_parks(self.core, self.clock())
        self.history.sample(snapshot(self.core, self.rollouts, self.clock()), self.clock())
        if decisions:
            self._commit()
            self.counters.lost(decisions, "lease_expired")
            for d in decisions:
                log.warning("job %s: %s (attempt %d)", d.job_id, d.reason, d.attempts)
        return len(decisions)

    def expired(self, limit: int = 100) -> builtins.list[str]:
        """Up to ``limit`` finished jobs past ``retention_s``, oldest first: the actor deletes
        their results from the store, then calls :meth:`purge` with them."""
        horizon = self.housekeeping.retention_horizon(self.clock())
        return [] if horizon is None else self.journal.finished_before(horizon, limit)

    def purge(self, job_ids: Iterable[str]) -> None:
        """Delete expired jobs (their results are gone) from the journal and from memory."""
        job_ids = list(job_ids)
        self.recovery.write(lambda: self.journal.forget(job_ids))
        for job in self.housekeeping.drop(job_ids):
            self.idempotency.forget(job)

    def worker_lost(self, worker: str) -> int:
        decisions = self.core.worker_lost(WorkerId(worker), self.clock())
        self._commit()
        self.counters.lost(decisions, "worker_lost")
        return len(decisions)

    # ---- internals ---------------------------------------------------------------------

    def _commit(self) -> dict[str, JobView]:
        """Journal every changed job, then publish one event per change once durable; the
        events' views by job (a caller that answers with a changed job's view reuses it)."""
        changed = self.core.take_dirty()
        self.recovery.write(lambda: self.journal.record(changed, self.core.next_token))
        for job in changed:
            if job.state.terminal:
                self.counters.finished[(job.tier, job.state.value)] += 1
                if job.state is JobState.FAILED:
                    error = job.error or JobError("failed", job.history[-1][2])
                    self.history.failed(job, error, job.finished_at_s or self.clock())
                self.housekeeping.track(job)
        events = []  # one view per change, as it is now: the event streams' and the webhooks'
        for job in changed:
            at_s = job.history[-1][0] if job.history else job.created_at_s
            event = JobEvent(len(job.history), self.view(job), at_s, job.callback_url)
            events.append((event, state_moved(job)))
        if events:  # published once durable: at once, or after the actor's group commit
            self.journal.when_durable(lambda: self._publish(events))
        return {event.view.id: event.view for event, _ in events}

    def _publish(self, events: builtins.list[tuple[JobEvent, bool]]) -> None:
        for event, moved in events:
            if moved:
                self.feed.state(event.view, event.at_s)
            if self.on_change is not None:
                self.on_change(event)

    def _install(self, memory: Memory) -> None:
        """Take the memory read from the journal (at start, and after a failed write)."""
        self.core, self.idempotency, self.housekeeping = memory

    def _visible(self, job_id: str, tenant: str | None) -> Job:
        """The job from memory, or from the journal once evicted; never another tenant's."""
        job = self.core.jobs.get(JobId(job_id)) or self.journal.get(job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise NotFound(f"no generation {job_id!r}")
        return job
