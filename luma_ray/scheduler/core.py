"""The scheduler core: job table, queues, leases and limits. Pure and single-threaded.

The Ray actor (a thin shell) owns one :class:`SchedulerCore`, passes the time into every call and
writes each change to the journal. Every method is O(queues x bands x log n) or better, but the
rare requeue of a lost lease (O(queue depth))."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping

from luma_ray.config import SchedulerConfig
from luma_ray.errors import InvalidRequest, NotFound, StaleLease
from luma_ray.jobs import Job, JobError, JobId, JobState, Lease, Progress, WorkerId, transition
from luma_ray.jobs.stages import GENERATE
from luma_ray.scheduler.answers import HeartbeatReply
from luma_ray.scheduler.decisions import Dispatch, GiveUp, Requeue
from luma_ray.scheduler.job_facts import from_job_table, job_cost
from luma_ray.scheduler.parking import Parking
from luma_ray.scheduler.pipeline import advance
from luma_ray.scheduler.policies import Policy, make_policy
from luma_ray.scheduler.queues import QueueBook
from luma_ray.scheduler.reports import SchedulerStats, TierQueues
from luma_ray.scheduler.tenant_caps import TenantCaps
from luma_ray.scheduler.tiers import tier_specs

log = logging.getLogger(__name__)

_LIVE = (JobState.LEASED, JobState.RUNNING)


class SchedulerCore:
    """Decides which job each pulling worker runs; owns every job's state."""

    def __init__(self, config: SchedulerConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.tiers = tier_specs(config.tiers)
        self.policy = policy or make_policy(config.policy.name, config.policy.params)
        self.jobs: dict[JobId, Job] = {}
        self._seq_of: dict[JobId, int] = {}
        self._job_at: dict[int, Job] = {}
        self.queues = QueueBook(  # fair share reads a queued job's tenant and cost from here
            self.tiers,
            config.fair_share,
            config.tenant_weights,
            config.fair_share_lag_jobs,
            from_job_table(self._job_at),
            config.fair_share_flood_share,
        )
        self.caps = TenantCaps(config.tenant_limits, self.queues)
        self._next_seq = 0
        self._next_token = 0
        self._held: dict[JobId, Job] = {}
        """Jobs with a live lease (leased or running): what expiry and worker loss scan."""
        self.in_flight: Counter[str] = Counter()
        """Leased-but-unfinished jobs per cluster (the back-pressure counter)."""
        self.refused_pulls: Counter[str] = Counter()
        """Pulls refused because the cluster was at its dispatch limit (a pull that waits and
        is asked again counts once)."""
        self.peak_in_flight: Counter[str] = Counter()
        """Most leased-but-unfinished jobs each cluster ever held (never above its limit)."""
        self.dirty: dict[JobId, Job] = {}
        """Jobs changed since the shell last called :meth:`take_dirty` (to journal them)."""
        self.parking = Parking()  # running jobs asked to park for a more urgent one

    # ---- submit and cancel -------------------------------------------------------------

    def submit(self, job: Job, now_s: float) -> None:
        """Accept a new job into its queue, or raise without changing anything."""
        if job.tier not in self.tiers:
            raise InvalidRequest(f"unknown tier {job.tier!r}; use one of {', '.join(self.tiers)}")
        if job.id in self.jobs:
            raise InvalidRequest(f"job id {job.id} already exists; submit with a new id")
        if job.state is not JobState.QUEUED:
            raise InvalidRequest(f"job {job.id} must be queued to be submitted")
        retry_after_s = max(1.0, self.tiers[job.tier].max_wait_s / 10)
        self.caps.check_submit(job.tier, job.tenant, retry_after_s)
        self.jobs[job.id] = job
        self.dirty[job.id] = job
        self._enqueue(job)
        self.policy.on_arrival(self.tiers[job.tier], now_s)

    def restore_token(self, next_token: int) -> None:
        """The last fencing token the journal saw (actor restart): tokens never repeat, even
        when no job comes back with the restart."""
        self._next_token = max(self._next_token, next_token)

    def restore(self, job: Job, now_s: float) -> None:
        """Put a job read back from the journal into the book (actor restart).

        Live leases get at least one more lease period from ``now_s``: heartbeats renewed
        while the actor was down were not journaled, and a worker still computing must get
        the chance to report before its job is requeued.
        """
        self.jobs[job.id] = job
        if job.state is JobState.QUEUED:
            self._enqueue(job)
            self.policy.on_arrival(self.tiers[job.tier], job.enqueued_at_s)
        elif job.state in _LIVE and job.lease is not None:
            job.lease.expires_at_s = max(job.lease.expires_at_s, now_s + self.config.lease_ttl_s)
            self._count_lease(job, +1)
            self._next_token = max(self._next_token, job.lease.token)

    @property
    def next_token(self) -> int:
        """The last fencing token handed out; the journal keeps it so tokens never repeat."""
        return self._next_token

    def take_dirty(self) -> list[Job]:
        """Jobs changed since the last call, for the shell to journal before it answers."""
        changed = list(self.dirty.values())
        self.dirty.clear()
        return changed

    def cancel(self, job_id: JobId, now_s: float, reason: str = "cancelled by user") -> Job:
        """Cancel a job. A queued job never starts; a running one is told at its heartbeat."""
        job = self.get(job_id)
        if job.state.terminal:
            return job
        if job.state is JobState.QUEUED:
            self._dequeue(job)
        else:
            self._release(job)
        job.cancel_requested = True
        self._move(job, JobState.CANCELLED, now_s, reason)
        return job

    def forget(self, job_id: JobId, now_s: float) -> Job:
        """Remove a job for good (the user deleted it); a live one is cancelled first."""
        job = self.cancel(job_id, now_s, "deleted by user")
        del self.jobs[job_id]
        self._seq_of.pop(job_id, None)
        self.dirty.pop(job_id, None)
        return job

    def fail_queued(self, job_id: JobId, now_s: float, error: JobError) -> bool:
        """Fail a job that is still queued and can never run; False if it is not queued."""
        job = self.get(job_id)
        if job.state is not JobState.QUEUED:
            return False
        self._dequeue(job)
        job.error = error
        self._move(job, JobState.FAILED, now_s, error.code)
        return True

    def evict(self, job_id: JobId) -> bool:
        """Drop a finished, journaled job from memory (the shell reads it back from the
        journal); False, and nothing changes, for a live or not yet journaled job."""
        job = self.jobs.get(job_id)
        if job is None or not job.state.terminal or job_id in self.dirty:
            return False
        del self.jobs[job_id]
        self._seq_of.pop(job_id, None)
        return True

    def position(self, job: Job) -> int | None:
        """Queued jobs ahead of ``job`` in its own queue (with fair share: its tenant's own
        jobs; tombstones may count: an upper bound); None unless it is queued. Other tenants and
        tiers may still go first, per fair share and the policy."""
        seq = self._seq_of.get(job.id)
        if job.state is not JobState.QUEUED or seq is None:
            return None
        return self.queues.ahead(job.tier, job.queue, job.enqueued_at_s, seq, job.tenant)

    def queued_ahead_of_new(self, tier: str, model: str) -> int:
        """Jobs a new job of ``tier`` would likely wait behind: every queued job of the same
        model in its tier and in the tiers above it."""
        order = self.tiers[tier].order
        return sum(
            q.live
            for (t, m), q in self.queues.queues.items()
            if m == model and self.tiers[t].order <= order
        )

    def oldest_wait_s(self, tier: str, model: str, now_s: float) -> float:
        oldest = self.queues.oldest_s(tier, model)
        return 0.0 if oldest is None else now_s - oldest

    def get(self, job_id: JobId) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    # ---- pull and leases ---------------------------------------------------------------

    def dispatch_limit(self, cluster: str) -> int | None:
        known = self.config.clusters.get(cluster)
        return known.dispatch_limit if known else self.config.default_dispatch_limit

    def pull(
        self,
        worker: WorkerId,
        cluster: str,
        models: Iterable[str],
        now_s: float,
        first_try: bool = True,
    ) -> Dispatch | None:
        """Lease the best job for a worker of ``cluster`` serving ``models``, or None.
        ``first_try`` False: the same pull asked again after waiting (not counted twice)."""
        limit = self.dispatch_limit(cluster)
        if limit is not None and self.in_flight[cluster] >= limit:
            self.refused_pulls[cluster] += first_try
            return None
        pick = self.queues.pick(self.policy, models, now_s, self.caps.eligible(self._job_at))
        if pick is None:
            return None
        job = self._job_at.pop(pick.seq)
        self.caps.count_queued(job, -1)
        self._next_token += 1
        job.lease = Lease(worker, cluster, now_s + self.config.lease_ttl_s, self._next_token)
        self._move(job, JobState.LEASED, now_s, f"leased to {worker}")
        self._count_lease(job, +1)
        log.debug("job %s leased to %s (%s) after %.1f s", job.id, worker, cluster, pick.wait_s)
        lease = job.lease
        return Dispatch(job.id, worker, cluster, lease.token, lease.expires_at_s, pick.wait_s)

    def heartbeat(
        self,
        job_id: JobId,
        token: int,
        now_s: float,
        step: int = 0,
        total: int = 0,
        phase: str = "running",
    ) -> HeartbeatReply:
        """Renew a lease and record progress. The first heartbeat marks the job running,
        except one with phase ``prefetched``: a lease a worker holds while it finishes another
        job, so that its accelerator never waits for the scheduler."""
        job = self.get(job_id)
        if job.state is JobState.CANCELLED:
            return HeartbeatReply(cancel=True, lease_expires_at_s=now_s)
        lease = self._check_lease(job, token)
        if job.state is JobState.LEASED and phase != "prefetched":
            self._move(job, JobState.RUNNING, now_s, "worker started")
        lease.expires_at_s = now_s + self.config.lease_ttl_s
        job.progress = Progress(phase, step, total)
        return HeartbeatReply(False, lease.expires_at_s, park=self.parking.beat(job, now_s))

    def complete(
        self,
        job_id: JobId,
        token: int,
        now_s: float,
        result_uris: Mapping[str, str],
        version: str | None = None,
        caption: str | None = None,
    ) -> Job:
        """Commit a result, at most once: a stale token or a finished job is refused.

        ``version`` is the model version that generated it, recorded on the job. A stage
        before its pipeline's last one moves the job on (``pipeline.advance``)."""
        job = self.get(job_id)
        self._check_lease(job, token)
        self._release(job)
        job.result_uris = {**job.result_uris, **result_uris} if job.stages else dict(result_uris)
        if version is not None and job.stage in (None, GENERATE):
            job.model_version = version
        if caption is not None:
            job.caption = caption[:2000]
        if advance(job, now_s):
            self.dirty[job.id] = job
            self._enqueue(job)
            return job
        job.progress = job.progress.finished()
        self._move(job, JobState.SUCCEEDED, now_s, "result committed")
        return job

    def fail(self, job_id: JobId, token: int, now_s: float, error: JobError) -> Requeue | GiveUp:
        """A worker reports failure; retryable errors requeue until attempts run out."""
        job = self.get(job_id)
        self._check_lease(job, token)
        if error.retryable:
            return self._requeue(job, now_s, f"retryable error: {error.code}", error)
        self._release(job)
        job.error = error
        self._move(job, JobState.FAILED, now_s, error.code)
        return GiveUp(job.id, job.attempts, error.code)

    def release(self, job_id: JobId, token: int, now_s: float, why: str = "handed back") -> Job:
        """A live worker hands back a lease in good order (it is stopping, swapping its model
        version, or its node is leaving): the job goes back to its queue with its place by age
        (``enqueued_at_s`` is kept) and without counting an attempt, as nothing failed.
        Crashes do not come here: their leases expire and count an attempt."""
        job = self.get(job_id)
        self._check_lease(job, token)
        self._release(job)
        self._move(job, JobState.QUEUED, now_s, f"{why} by its worker")
        job.attempts -= 1
        self._enqueue(job)
        return job

    def expire_leases(self, now_s: float) -> list[Requeue | GiveUp]:
        """Requeue every job whose lease has lapsed. The shell calls this on a timer."""
        lapsed = [
            j for j in self._held.values() if j.lease is not None and j.lease.expires_at_s <= now_s
        ]
        return [self._requeue(j, now_s, "lease expired") for j in lapsed]

    def worker_lost(self, worker: WorkerId, now_s: float) -> list[Requeue | GiveUp]:
        """Requeue every job held by a worker known to be gone."""
        held = [j for j in self._held.values() if j.lease is not None and j.lease.worker == worker]
        return [self._requeue(j, now_s, f"worker {worker} lost") for j in held]

    # ---- views -------------------------------------------------------------------------

    def stats(self, now_s: float) -> SchedulerStats:
        """Queue depths, oldest waits and back-pressure counters, for status and metrics."""
        tiers: dict[str, TierQueues] = {}
        for (tier, model), q in self.queues.queues.items():
            entry = tiers.setdefault(tier, {"queued": 0, "oldest_wait_s": 0.0, "models": {}})
            entry["queued"] += q.live
            entry["models"][model] = q.live
            if q.live:
                oldest = self.oldest_wait_s(tier, model, now_s)
                entry["oldest_wait_s"] = max(entry["oldest_wait_s"], oldest)
        states = Counter(j.state.value for j in self.jobs.values())
        return {
            "policy": self.policy.name,
            "tiers": tiers,
            "states": dict(states),
            "in_flight": dict(self.in_flight),
            "refused_pulls": dict(self.refused_pulls),
            "peak_in_flight": dict(self.peak_in_flight),
        }

    def busy_workers(self) -> dict[str, str]:
        """Worker id → model of each live lease (the queue page's busy workers)."""
        return {j.lease.worker: j.model for j in self._held.values() if j.lease is not None}

    # ---- internals ---------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        seq = self._seq_of.get(job.id)
        if seq is None:
            seq = self._seq_of[job.id] = self._next_seq
            self._next_seq += 1
        self._job_at[seq] = job
        cost = job_cost(job)  # what fair share charges the tenant when the job is dispatched
        self.queues.push(job.tier, job.queue, job.enqueued_at_s, seq, job.tenant, cost)
        self.caps.count_queued(job, +1)

    def _dequeue(self, job: Job) -> None:
        seq = self._seq_of[job.id]
        self.queues.discard(job.tier, job.queue, job.enqueued_at_s, seq, job.tenant)
        self._job_at.pop(seq, None)
        self.caps.count_queued(job, -1)

    def _move(self, job: Job, to: JobState, now_s: float, reason: str) -> None:
        transition(job, to, now_s, reason)
        self.dirty[job.id] = job

    def _check_lease(self, job: Job, token: int) -> Lease:
        lease = job.lease
        if job.state not in _LIVE or lease is None or lease.token != token:
            raise StaleLease(
                f"job {job.id}: lease token {token} is not current (job is {job.state.value}); "
                "drop this result"
            )
        return lease

    def _count_lease(self, job: Job, delta: int) -> None:
        assert job.lease is not None
        self.in_flight[job.lease.cluster] += delta
        cluster = job.lease.cluster
        self.peak_in_flight[cluster] = max(self.peak_in_flight[cluster], self.in_flight[cluster])
        self.caps.count_lease(job, delta)
        if delta > 0:
            self._held[job.id] = job
        else:
            self._held.pop(job.id, None)

    def _release(self, job: Job) -> None:
        self.parking.drop(job.id)
        if job.state in _LIVE and job.lease is not None:
            self._count_lease(job, -1)

    def requeue_at(self, job: Job, now_s: float, reason: str) -> None:
        """Queue a job whose lease this core already released (``pipeline``'s moves) at its
        current stage, journaled, with its original enqueue time."""
        self._move(job, JobState.QUEUED, now_s, reason)
        self._enqueue(job)

    def _requeue(
        self, job: Job, now_s: float, reason: str, error: JobError | None = None
    ) -> Requeue | GiveUp:
        self._release(job)
        if job.attempts >= self.config.max_attempts:
            job.error = error or JobError(
                "attempts_exhausted", f"gave up after {job.attempts} attempts: {reason}", False
            )
            self._move(job, JobState.FAILED, now_s, reason)
            log.warning("job %s failed after %d attempts: %s", job.id, job.attempts, reason)
            return GiveUp(job.id, job.attempts, reason)
        self._move(job, JobState.QUEUED, now_s, reason)
        self._enqueue(job)
        log.info("job %s requeued (attempt %d): %s", job.id, job.attempts, reason)
        return Requeue(job.id, job.attempts, reason)
