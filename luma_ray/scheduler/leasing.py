"""The service's lease operations: what workers call (``lease_ops``).

Mixed into :class:`~luma_ray.scheduler.service.SchedulerService`, which provides the core,
the clock, the journal's ``_commit`` and the views. ``complete_and_pull`` and ``heartbeats``
batch a worker's calls: one actor call and one journal write where there were several.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from luma_ray.config import SchedulerConfig
from luma_ray.errors import NotFound, StaleLease
from luma_ray.jobs import Job, JobId, JobState, WorkerId
from luma_ray.jobs.stages import GENERATE
from luma_ray.scheduler.answers import (
    Assignment,
    CompletedAndPulled,
    HeartbeatReply,
    JobView,
    LeaseRefused,
)
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.counters import SchedulerCounters
from luma_ray.scheduler.decisions import Dispatch
from luma_ray.scheduler.estimates import Estimates
from luma_ray.scheduler.feed import EventLog
from luma_ray.scheduler.lease_ops import Beat
from luma_ray.scheduler.recovery import Recovery
from luma_ray.scheduler.rollouts import Rollouts
from luma_ray.scheduler.timeline import QueueHistory
from luma_ray.scheduler.views import assignment

log = logging.getLogger(__name__)

REFUSED = (StaleLease, NotFound)
"""What a report on a lease may be refused with: answered in place by the batched ops."""


class LeaseOps:
    """Pull, heartbeat and complete, alone and batched (see the module's docstring)."""

    config: SchedulerConfig
    core: SchedulerCore
    clock: Callable[[], float]
    estimates: Estimates
    rollouts: Rollouts
    counters: SchedulerCounters
    history: QueueHistory
    feed: EventLog
    recovery: Recovery

    def _commit(self) -> dict[str, JobView]:
        raise NotImplementedError

    def view(self, job: Job) -> JobView:
        raise NotImplementedError

    def pull(
        self,
        worker: str,
        cluster: str,
        models: Iterable[str],
        wait_s: float = 0.0,
        first_try: bool = True,
    ) -> Assignment | None:
        """Lease the best job for this worker, or None when nothing fits now. The service never
        waits: the actor waits up to ``wait_s`` and asks again with ``first_try`` False."""
        self.recovery.check()
        now = self.clock()
        dispatch = self._lease(worker, cluster, models, now, first_try)
        if dispatch is None:
            return None
        self._commit()
        return self._leased(dispatch, now)

    def heartbeat(
        self, job_id: str, token: int, step: int = 0, total: int = 0, phase: str = "running"
    ) -> HeartbeatReply:
        reply, moved = self._beat(Beat(job_id, token, step, total, phase))
        if moved:
            self._commit()
        return reply

    def heartbeats(self, beats: tuple[Beat, ...]) -> list[HeartbeatReply | LeaseRefused]:
        """Renew several leases, each with its own token, in one call and at most one journal
        write; one answer per beat, in order (a refused one as ``LeaseRefused``)."""
        out: list[HeartbeatReply | LeaseRefused] = []
        moved = False
        for beat in beats:
            try:
                reply, started = self._beat(beat)
            except REFUSED as err:
                out.append(LeaseRefused(err.code, str(err)))
                continue
            out.append(reply)
            moved = moved or started
        if moved:
            self._commit()
        return out

    def complete(
        self,
        job_id: str,
        token: int,
        result_uris: Mapping[str, str],
        version: str | None = None,
        caption: str | None = None,
    ) -> JobView:
        """Commit a result or a stage's (docs/pipelines.md); ``version``: the model's."""
        now = self.clock()
        done = self._complete(job_id, token, result_uris, version, caption, now)
        self._commit()
        return self._completed(done, now)

    def complete_and_pull(
        self,
        job_id: str,
        token: int,
        result_uris: Mapping[str, str],
        worker: str,
        cluster: str,
        models: Iterable[str],
        version: str | None = None,
        caption: str | None = None,
        wait_s: float = 0.0,
    ) -> CompletedAndPulled:
        """``complete`` then ``pull`` with one journal write: both are durable before the answer
        (a failed write keeps neither, and raises ``JournalUnavailable``: send it again). A
        refused result (``StaleLease``, ``NotFound``) is answered in ``refused`` and the pull
        still runs: the worker is free either way. A result that already landed (this call sent
        again after its answer was lost) is answered as committed, not refused. The service
        never waits; the actor waits up to ``wait_s`` when nothing fits now."""
        self.recovery.check()
        now = self.clock()
        done: tuple[Job, str | None] | None = None
        refused: LeaseRefused | None = None
        try:
            done = self._complete(job_id, token, result_uris, version, caption, now)
        except REFUSED as err:
            refused = LeaseRefused(err.code, str(err))
        dispatch = self._lease(worker, cluster, models, now, first_try=True)
        self._commit()
        if done is not None:
            completed: JobView | None = self._completed(done, now)
        else:
            completed = self._landed(job_id, result_uris)
            refused = None if completed is not None else refused
        return CompletedAndPulled(
            completed, refused, None if dispatch is None else self._leased(dispatch, now)
        )

    # ---- internals ---------------------------------------------------------------------

    def _lease(
        self, worker: str, cluster: str, models: Iterable[str], now: float, first_try: bool
    ) -> Dispatch | None:
        models = list(models)
        self.estimates.observe_pull(worker, models, now)
        self.rollouts.observe(worker, models, now)
        return self.core.pull(WorkerId(worker), cluster, models, now, first_try)

    def _leased(self, dispatch: Dispatch, now: float) -> Assignment:
        """The worker's assignment for a committed dispatch; counts the start."""
        job = self.core.get(dispatch.job_id)
        slo_s = self.core.tiers[job.tier].max_wait_s
        model = job.model.partition("@")[0]
        self.counters.lease(job.tier, model, dispatch.wait_s, slo_s, now)
        self.history.dispatched(job.tier, now)
        log.debug("job %s leased to %s after %.2f s", job.id, dispatch.worker, dispatch.wait_s)
        return assignment(job, dispatch, self.config.lease_ttl_s)

    def _beat(self, beat: Beat) -> tuple[HeartbeatReply, bool]:
        """Renew one lease; True when the job's state moved (it must be journaled)."""
        job = self.core.get(JobId(beat.job_id))
        before, progress = job.state, job.progress
        now = self.clock()
        reply = self.core.heartbeat(
            JobId(beat.job_id), beat.token, now, beat.step, beat.total, beat.phase
        )
        if job.state is before and job.progress != progress:
            self.feed.progress(job.id, job.tenant, job.state, job.progress, now)
        return reply, job.state is not before

    def _complete(
        self,
        job_id: str,
        token: int,
        result_uris: Mapping[str, str],
        version: str | None,
        caption: str | None,
        now: float,
    ) -> tuple[Job, str | None]:
        """Commit in memory (the caller writes the journal); the job and its stage."""
        stage = self.core.get(JobId(job_id)).stage
        return self.core.complete(JobId(job_id), token, now, result_uris, version, caption), stage

    def _completed(self, done: tuple[Job, str | None], now: float) -> JobView:
        job, stage = done
        leased = max((t for t, s, _ in job.history if s is JobState.LEASED), default=now)
        if stage in (None, GENERATE):  # what the model's service time estimates
            self.estimates.observe_service(job.model, now - leased)
        log.debug("job %s: %s done", job.id, stage or "generation")
        return self.view(job)

    def _landed(self, job_id: str, result_uris: Mapping[str, str]) -> JobView | None:
        """The job's view if it already holds exactly these results (they are stored under
        the lease's own token, so no other lease wrote them), else None."""
        job = self.core.jobs.get(JobId(job_id))
        if job is None or not result_uris:
            return None
        if any(job.result_uris.get(k) != v for k, v in result_uris.items()):
            return None
        return self.view(job)
