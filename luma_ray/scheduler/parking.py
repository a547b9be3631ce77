"""When to park a running job so that a more urgent queued one keeps its SLO (issue 13, item 4).

This is the live scheduler's own minimal trigger; the shared decision rule
(``scheduler/preemption.py``, ``PreemptionRule``) replaces :func:`park_when` once it lands, and
its ``PreemptionConfig`` replaces the constants below. The service calls :func:`mark_parks`
(after submits, parks and on its timer); the core answers each heartbeat with the mark of its
job; a worker that can park stops its model at the next step boundary and reports ``Park``
(:func:`park`).

The rule, per queue head (the oldest job of each (tier, model) queue), most urgent tier first:

- it has waited at least ``settle_s``: a worker of its model that was idle would have pulled
  it by then, so every worker of its model is busy (or its cluster is at its dispatch limit);
- it would miss its SLO: no running job of its model ends (by the pace of its steps so far)
  before the head's SLO runs out (a job with fewer than two heartbeats has no pace yet and
  counts as not ending in time);
- the victim runs the same model in a lower tier, was not parked in the last ``min_gap_s``,
  has more than ``overhead_s`` left (parking a job about to finish does not pay) and is not
  already the victim of another head; of those, the lowest tier, then the most time left.

A running job that would end in time is counted as that head's worker, so two heads do not
both count on it. Pure: time is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, JobId, JobState, Progress
from luma_ray.scheduler.tiers import TierSpec

if TYPE_CHECKING:  # the core imports this module
    from luma_ray.scheduler.core import SchedulerCore

PARK_MIN_GAP_S = 300.0
"""A parked job is not parked again for this long (it would thrash between workers)."""
PARK_SETTLE_S = 1.0
"""A queue head still queued after this long has no idle worker of its model."""
PARK_OVERHEAD_S = 5.0
"""What a park and a resume cost together (the state written and read back, a step redone at
worst); a job with less left than this runs on."""


@dataclass(frozen=True)
class Waiter:
    """A queue head as the rule sees it."""

    tier_order: int
    """0 for the highest tier."""
    model: str
    """The model's name (without ``@version``)."""
    waited_s: float
    slack_s: float
    """Its tier's SLO minus what it waited: the most it may still wait."""


@dataclass(frozen=True)
class Runner:
    """A running job as the rule sees it."""

    job_id: JobId
    tier_order: int
    model: str
    left_s: float
    """Estimated time to its last step (``inf`` while unknown)."""
    parked_at_s: float | None


def park_when(
    waiters: Iterable[Waiter],
    runners: Iterable[Runner],
    now_s: float,
    min_gap_s: float = PARK_MIN_GAP_S,
    settle_s: float = PARK_SETTLE_S,
    overhead_s: float = PARK_OVERHEAD_S,
) -> set[JobId]:
    """The running jobs to park now (see the module docstring for the rule)."""
    free = list(runners)
    victims: set[JobId] = set()
    for head in sorted(waiters, key=lambda w: (w.tier_order, -w.waited_s)):
        if head.waited_s < settle_s:
            continue
        same = [r for r in free if r.model == head.model]
        soonest = min(same, key=lambda r: r.left_s, default=None)
        if soonest is None:
            continue  # no running job of its model: parking frees nothing for it
        if soonest.left_s <= head.slack_s:
            free.remove(soonest)  # that worker will take it in time
            continue
        candidates = [
            r
            for r in same
            if r.tier_order > head.tier_order
            and r.left_s > overhead_s
            and (r.parked_at_s is None or now_s - r.parked_at_s >= min_gap_s)
        ]
        if candidates:
            victim = max(candidates, key=lambda r: (r.tier_order, r.left_s))
            free.remove(victim)
            victims.add(victim.job_id)
    return victims


class Parking:
    """The core's parking marks and each running job's pace (for :func:`park_when`)."""

    def __init__(self) -> None:
        self.marked: set[JobId] = set()
        """Running jobs asked to park: their next heartbeat says so."""
        self._since: dict[JobId, tuple[float, int]] = {}
        """Per running job: when its lease first reported a step, and that step."""

    def beat(self, job: Job, now_s: float) -> bool:
        """A heartbeat of ``job`` (its progress already recorded): should it park?"""
        if job.state is JobState.RUNNING and job.id not in self._since:
            self._since[job.id] = (now_s, job.progress.step)
        return job.id in self.marked

    def drop(self, job_id: JobId) -> None:
        """The job's lease ended (parked, finished, requeued): forget its mark and pace."""
        self.marked.discard(job_id)
        self._since.pop(job_id, None)

    def left_s(self, job: Job, now_s: float) -> float:
        """Time to the job's last step at the pace of this lease's steps so far."""
        since = self._since.get(job.id)
        if since is None or job.progress.step <= since[1]:
            return math.inf
        per_step = (now_s - since[0]) / (job.progress.step - since[1])
        return per_step * max(0, job.progress.total - job.progress.step)

    def replan(
        self,
        heads: Iterable[tuple[str, str, float]],
        held: Iterable[Job],
        tiers: Mapping[str, TierSpec],
        now_s: float,
    ) -> set[JobId]:
        """Mark the jobs to park now, from the queue heads (tier, model, wait) and the jobs
        holding a lease; returns the marks."""
        waiters = [
            Waiter(tiers[t].order, _name(m), w, tiers[t].max_wait_s - w) for t, m, w in heads
        ]
        runners = [
            Runner(j.id, tiers[j.tier].order, _name(j.queue), self.left_s(j, now_s), j.parked_at_s)
            for j in held
            if j.state is JobState.RUNNING
        ]
        self.marked = park_when(waiters, runners, now_s)
        return self.marked


def mark_parks(core: SchedulerCore, now_s: float) -> set[JobId]:
    """Ask running jobs to park where a queue head would miss its SLO otherwise
    (:func:`park_when`); their heartbeats carry the marks. O(queues + leases). The service
    calls it after submits and parks, and on its timer. Nothing is marked unless
    ``preemption.enabled`` (off by default, as in the simulator; docs/scheduling.md)."""
    if not core.config.preemption.enabled:
        core.parking.marked = set()
        return set()
    heads = [
        (tier, model, core.oldest_wait_s(tier, model, now_s))
        for (tier, model), q in core.queues.queues.items()
        if q.live
    ]
    return core.parking.replan(heads, core._held.values(), core.tiers, now_s)


def park(
    core: SchedulerCore,
    job_id: JobId,
    token: int,
    now_s: float,
    step: int,
    total: int,
    state_uri: str,
) -> Job:
    """A worker parked the job after ``step`` of ``total`` (a heartbeat asked it to), its
    sampler state at ``state_uri``: handed back like ``SchedulerCore.release`` (its place by
    age, no attempt counted: nothing failed), with its progress and the state the next lease
    resumes from."""
    if not 0 < step <= total:
        raise InvalidRequest(f"parked at step {step} of {total}; report a step in 1..total")
    job = core.release(job_id, token, now_s, f"parked at step {step} of {total}")
    job.resume_uri, job.parked_at_s, job.preemptions = state_uri, now_s, job.preemptions + 1
    job.progress = Progress("parked", step, total)
    return job


def _name(model: str) -> str:
    return model.partition("@")[0]
