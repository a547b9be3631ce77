"""Parking in the live scheduler: which running jobs to ask to park, their pace, and the park.

The decision is the simulator's own rule, :class:`~luma_ray.scheduler.preemption.PreemptionRule`
(``scheduler/preemption.py``), configured by ``SchedulerConfig.preemption``: this module only
builds its inputs from the live state. The service calls :func:`mark_parks` (after submits,
parks and on its timer); the core answers each heartbeat with the mark of its job; a worker
that can park stops its model at the next step boundary and reports ``Park`` (:func:`park`).

Per model, the rule sees:

- the *waiting* jobs: the head of each (tier, model) queue (its oldest job that may start now),
  most urgent tier first, once it has waited ``PARK_SETTLE_S`` (a worker of its model that was
  idle would have pulled it by then, so every worker of its model is busy or at its cluster's
  dispatch limit). A head that ran before (it was parked) has had its first start: it never
  causes a park;
- the *running* jobs of that model: each one's steps done and total from its heartbeats, its
  pace (seconds per step over this lease's steps so far; unknown, so never ending in time and
  never a victim, until two heartbeats came with different steps), when its last step ended,
  when it was last parked and how many times.

``PreemptionRule.decide_each`` then gives each head a slot (the soonest to free if in time,
else the slot of the job it parks), so two heads never count on the same job. Marks are
recomputed from scratch each time: a mark the rule no longer makes lapses. Pure: time is an
argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from luma_ray.config import PreemptionConfig
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, JobId, JobState, Progress
from luma_ray.scheduler.preemption import PreemptionRule, Running, Waiting
from luma_ray.scheduler.tiers import TierSpec

if TYPE_CHECKING:  # the core imports this module
    from luma_ray.scheduler.core import SchedulerCore

PARK_SETTLE_S = 1.0
"""A queue head still queued after this long has no idle worker of its model."""


class Parking:
    """The core's parking marks and each running job's pace (the rule's inputs)."""

    def __init__(self) -> None:
        self.marked: set[JobId] = set()
        """Running jobs asked to park: their next heartbeat says so."""
        self._first: dict[JobId, tuple[float, int]] = {}
        """Per running job: when its lease first reported a step, and that step."""
        self._last: dict[JobId, tuple[float, int]] = {}
        """Per running job: when its step last advanced, and to which step."""

    def beat(self, job: Job, now_s: float) -> bool:
        """A heartbeat of ``job`` (its progress already recorded): should it park?"""
        if job.state is JobState.RUNNING:
            step = job.progress.step
            if job.id not in self._first:
                self._first[job.id] = (now_s, step)
            last = self._last.get(job.id)
            if last is None or step != last[1]:
                self._last[job.id] = (now_s, step)
        return job.id in self.marked

    def drop(self, job_id: JobId) -> None:
        """The job's lease ended (parked, finished, requeued): forget its mark and pace."""
        self.marked.discard(job_id)
        self._first.pop(job_id, None)
        self._last.pop(job_id, None)

    def running(self, job: Job, tier: TierSpec, now_s: float) -> Running:
        """``job`` as the rule sees it, from this lease's heartbeats."""
        done, total = job.progress.step, job.progress.total
        first, last = self._first.get(job.id), self._last.get(job.id)
        if total - done <= 0:
            step_s, last_s = 0.0, now_s  # past its last step: its slot frees now
        elif first is None or last is None or last[1] <= first[1]:
            step_s, last_s = math.inf, now_s  # no pace yet
        else:
            step_s, last_s = (last[0] - first[0]) / (last[1] - first[1]), last[0]
        return Running.from_progress(
            job.id,
            tier,
            done,
            total,
            step_s,
            last_s,
            last_parked_s=job.parked_at_s,
            parks=job.preemptions,
        )

    def replan(
        self,
        config: PreemptionConfig,
        heads: Iterable[tuple[TierSpec, str, Job]],
        held: Iterable[Job],
        tiers: Mapping[str, TierSpec],
        now_s: float,
    ) -> set[JobId]:
        """Mark the jobs to park now, from the queue heads (tier, model, head job) and the
        jobs holding a lease; returns the marks."""
        rule = PreemptionRule(config)  # holds only the config
        waiting: dict[str, list[Waiting]] = {}
        for tier, model, job in sorted(heads, key=lambda h: (h[0].order, h[2].enqueued_at_s)):
            wait_s = now_s - job.enqueued_at_s
            if wait_s >= PARK_SETTLE_S:
                head = Waiting(tier, wait_s, started=job.preemptions > 0)
                waiting.setdefault(model, []).append(head)
        running: dict[str, list[Running]] = {}
        for job in held:
            model = _name(job.queue)
            if job.state is JobState.RUNNING and model in waiting:
                view = self.running(job, tiers[job.tier], now_s)
                running.setdefault(model, []).append(view)
        marks: set[JobId] = set()
        for model, heads_of_model in waiting.items():
            for decided in rule.decide_each(heads_of_model, running.get(model, ()), now_s):
                marks.add(JobId(str(decided.key)))
        self.marked = marks
        return marks


def mark_parks(core: SchedulerCore, now_s: float) -> set[JobId]:
    """Ask running jobs to park where a queue head would miss its SLO otherwise (the
    simulator's ``PreemptionRule``); their heartbeats carry the marks. O(queues + leases).
    The service calls it after submits and parks, and on its timer. Nothing is marked unless
    ``preemption.enabled`` (off by default, as in the simulator; docs/scheduling.md)."""
    config = core.config.preemption
    if not config.enabled:
        core.parking.marked = set()
        return set()
    book = core.queues
    heads = []
    for tier, model in book.queues:
        seq = book.head_seq(tier, model)
        job = None if seq is None else core._job_at.get(seq)
        if job is not None:
            heads.append((core.tiers[tier], _name(model), job))
    return core.parking.replan(config, heads, core._held.values(), core.tiers, now_s)


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
