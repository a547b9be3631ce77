"""The scheduler's housekeeping: finished jobs leave memory, stranded pinned jobs fail.

Who calls this: the scheduler service. It calls :meth:`Housekeeping.track` for every job it
restores from the journal, accepts or commits, and :meth:`sweep` from its timer (``tick``).

- A finished job stays in memory for ``keep_finished_s`` after it finished, then is evicted;
  the journal keeps it, and the service reads it back from there.
- A finished job is deleted ``retention_s`` after it finished: the service names the expired
  ones (:meth:`retention_horizon`), the actor deletes their results, then the service their
  rows, and :meth:`drop` takes any still in memory out of it.
- A job pinned to ``model@version`` that is still queued fails once no worker has named that
  version in a pull for ``pinned_grace_s`` (nor since this scheduler started) and it is not
  the active version: nothing would ever run it.

Pure: no Ray, no I/O, the time is an argument.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from luma_ray.config import SchedulerConfig
from luma_ray.jobs import Job, JobError, JobId, JobState
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.rollouts import Rollouts

log = logging.getLogger(__name__)


@dataclass
class Swept:
    """What one sweep did: jobs evicted from memory, and whether any pinned job failed."""

    evicted: list[Job] = field(default_factory=list)
    failed: int = 0


class Housekeeping:
    """Tracks finished jobs by finish time and queued pinned jobs by ``model@version``."""

    def __init__(
        self,
        core: SchedulerCore,
        rollouts: Rollouts,
        config: SchedulerConfig,
        started_s: float,
        active_version: Callable[[str], str | None] | None,
    ) -> None:
        self.core, self.rollouts, self.config = core, rollouts, config
        self.started_s = started_s
        self.active_version = active_version
        self._finished: deque[tuple[float, JobId]] = deque()
        self._pinned: dict[str, set[JobId]] = {}

    def track(self, job: Job) -> None:
        """Note a job that was restored, accepted or changed (in finish order for the
        finished ones)."""
        if job.state.terminal:
            self._finished.append((job.finished_at_s or self.started_s, job.id))
        elif job.state is JobState.QUEUED and "@" in job.queue:  # a stage task is not pinned
            self._pinned.setdefault(job.model, set()).add(job.id)

    def sweep(self, now: float) -> Swept:
        swept = Swept()
        swept.failed = self._fail_stranded(now)
        swept.evicted = self._evict_finished(now)
        return swept

    def retention_horizon(self, now: float) -> float | None:
        """Jobs that finished before this are past ``retention_s`` (None: kept for ever)."""
        retention_s = self.config.retention_s
        return None if retention_s is None else now - retention_s

    def drop(self, job_ids: Iterable[str]) -> list[Job]:
        """Take purged jobs out of memory (those still there: ``retention_s`` is below
        ``keep_finished_s``); returns them."""
        jobs = [self.core.jobs.get(JobId(job_id)) for job_id in job_ids]
        return [job for job in jobs if job is not None and self.core.evict(job.id)]

    def _evict_finished(self, now: float) -> list[Job]:
        horizon, finished, evicted = now - self.config.keep_finished_s, self._finished, []
        while finished and finished[0][0] <= horizon:
            _, job_id = finished.popleft()
            job = self.core.jobs.get(job_id)
            if job is not None and self.core.evict(job_id):
                evicted.append(job)
        return evicted

    def _fail_stranded(self, now: float) -> int:
        grace, failed = self.config.pinned_grace_s, 0
        for pinned, ids in list(self._pinned.items()):
            queued = {i for i in ids if self._is_queued(i)}
            if not queued:
                del self._pinned[pinned]
                continue
            self._pinned[pinned] = queued
            if not self._gone(pinned, now):
                continue
            model, _, version = pinned.partition("@")
            error = JobError(
                "version_unavailable",
                f"no worker has run {pinned} for {grace:g} s and it is not the active version; "
                f"submit again without '@{version}', or pin a version that workers run",
                False,
            )
            failed += sum(self.core.fail_queued(job_id, now, error) for job_id in sorted(queued))
            log.warning("%d jobs pinned to %s failed: the version is gone", len(queued), pinned)
        return failed

    def _gone(self, pinned: str, now: float) -> bool:
        """No worker ran ``pinned`` for the grace period, and it is not the active version."""
        model, _, version = pinned.partition("@")
        seen = self.rollouts.last_seen(model, version)
        since = max(seen if seen is not None else -math.inf, self.started_s)
        if now - since < self.config.pinned_grace_s:
            return False
        if version in self.rollouts.served_versions(model, now):
            return False
        return self.active_version is None or self.active_version(model) != version

    def _is_queued(self, job_id: JobId) -> bool:
        job = self.core.jobs.get(job_id)
        return job is not None and job.state is JobState.QUEUED
