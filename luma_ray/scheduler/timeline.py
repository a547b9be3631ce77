"""The queue page's last hour: one sample per minute (60 at most) and the recent failures.

Pure: the service feeds it on its own clock (time is always an argument). A ``Snapshot`` (the
gauges: per tier the queue depth and the oldest wait against the SLO, per pool the busy and
idle workers) is taken on every lease-timer tick and every queue page read; each minute keeps
the highest depth and wait seen in it and the last worker counts. Dispatches are counted as
they happen (one per lease), failures are kept as they are journaled.

Cost: a bounded dict of 60 minutes and a deque of :data:`MAX_FAILURES`; nothing is journaled.
After a restart :func:`seed` rebuilds the dispatch counts and the failures from the jobs the
scheduler read back from its journal (its ``LEASED`` transitions and its failed jobs of the
last hour; jobs evicted from memory, after ``keep_finished_s``, are not counted); the gauges
start again from the restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from luma_ray.jobs import Job, JobError, JobState
from luma_ray.scheduler.reports import FailureRow, MinuteRow, TierPoint

MINUTE_S = 60.0
HOUR_MINUTES = 60
MAX_FAILURES = 20
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class TierGauge:
    depth: int
    oldest_wait_s: float
    slo_s: float


@dataclass(frozen=True)
class Snapshot:
    """The gauges at one instant: per tier, per pool ``(busy, idle)`` workers."""

    tiers: Mapping[str, TierGauge]
    pools: Mapping[str, tuple[int, int]]


@dataclass
class QueueHistory:
    minutes: dict[int, MinuteRow] = field(default_factory=dict)
    failures: deque[FailureRow] = field(default_factory=lambda: deque(maxlen=MAX_FAILURES))

    def sample(self, snapshot: Snapshot, now_s: float) -> None:
        row = self._minute(now_s)
        for tier, gauge in snapshot.tiers.items():
            point = _point(row, tier)
            point["depth"] = max(point["depth"], gauge.depth)
            wait = round(gauge.oldest_wait_s, 1)
            point["oldest_wait_s"] = max(point["oldest_wait_s"], wait)
            used = round(gauge.oldest_wait_s / gauge.slo_s, 3) if gauge.slo_s > 0 else 0.0
            point["slo_used"] = max(point["slo_used"], used)
        row["pools"] = {pool: {"busy": b, "idle": i} for pool, (b, i) in snapshot.pools.items()}

    def dispatched(self, tier: str, now_s: float) -> None:
        """One lease in ``tier`` at ``now_s``."""
        _point(self._minute(now_s), tier)["dispatched"] += 1

    def failed(self, job: Job, error: JobError, now_s: float) -> None:
        """``job`` failed with ``error``: ``final`` if it will not run again."""
        self.failures.appendleft(
            {
                "at_s": now_s,
                "job_id": str(job.id),
                "tier": job.tier,
                "tenant": job.tenant,
                "model": job.model,
                "code": error.code,
                "message": error.message[:MESSAGE_CHARS],
                "final": job.state is JobState.FAILED,
            }
        )

    def series(self, now_s: float) -> list[MinuteRow]:
        """The sampled minutes of the last hour (this one included), oldest first."""
        self._prune(now_s)
        return [self.minutes[m] for m in sorted(self.minutes)]

    def recent_failures(self, now_s: float) -> list[FailureRow]:
        """The failures of the last hour, newest first."""
        return [f for f in self.failures if f["at_s"] > now_s - HOUR_MINUTES * MINUTE_S]

    def _minute(self, now_s: float) -> MinuteRow:
        index = int(now_s // MINUTE_S)
        row = self.minutes.get(index)
        if row is None:
            row = self.minutes[index] = {"at_s": index * MINUTE_S, "tiers": {}, "pools": {}}
            self._prune(now_s)
        return row

    def _prune(self, now_s: float) -> None:
        first = int(now_s // MINUTE_S) - HOUR_MINUTES + 1
        for index in [m for m in self.minutes if m < first]:
            del self.minutes[index]


def _point(row: MinuteRow, tier: str) -> TierPoint:
    return row["tiers"].setdefault(
        tier, {"depth": 0, "oldest_wait_s": 0.0, "slo_used": 0.0, "dispatched": 0}
    )


def seed(history: QueueHistory, jobs: Iterable[Job], now_s: float) -> None:
    """Rebuild dispatches and failures of the last hour from jobs read back from the journal."""
    since = now_s - HOUR_MINUTES * MINUTE_S
    failed: list[tuple[float, Job]] = []
    for job in jobs:
        for at_s, state, _ in job.history:
            if state is JobState.LEASED and since < at_s <= now_s:
                history.dispatched(job.tier, at_s)
        done = job.finished_at_s
        if job.state is JobState.FAILED and job.error and done is not None and done > since:
            failed.append((done, job))
    for done, job in sorted(failed, key=lambda f: (f[0], str(f[1].id)))[-MAX_FAILURES:]:
        assert job.error is not None
        history.failed(job, job.error, done)
