"""Moving a job along its pipeline of stages (docs/pipelines.md). Pure.

A job with a pipeline (``Job.stages``, from ``SchedulerConfig.pipelines`` at submit) waits in
the queue of its current stage (``Job.queue``: ``<model>:<stage>``, the model itself for
``generate``), where only that stage's pool pulls it. Completing a stage before the last one
queues the job for the next stage with its ORIGINAL enqueue time (a job half done keeps its
place by age), its tier and tenant, and the outputs so far in ``result_uris`` (they feed the
next stage through the result store). Each stage counts its own attempts: a lease lost on the
QA pool re-runs QA only. A QA stage that rejects the video sends the job back to ``generate``
with the next seed, up to ``SchedulerConfig.qa_regenerations`` times; then it fails with
``qa: <reasons>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, JobError, JobId, JobState, Progress, transition
from luma_ray.jobs.request import MAX_SEED
from luma_ray.jobs.stages import GENERATE, QA, next_stage

if TYPE_CHECKING:
    from luma_ray.scheduler.core import SchedulerCore

QA_FAILED = "qa_failed"
"""The error code of a job whose every video the QA stage rejected."""


def start(job: Job, pipelines: Mapping[str, Sequence[str]]) -> None:
    """Give a new job its model's pipeline (none: the job runs as before pipelines)."""
    stages = pipelines.get(job.model.partition("@")[0])
    if stages:
        job.stages, job.stage = tuple(stages), stages[0]


def advance(job: Job, now_s: float) -> bool:
    """The current stage of ``job`` finished (its lease already released): queue it for the
    next stage and return True; False when it was the last stage (the job succeeds)."""
    following = next_stage(job.stages, job.stage)
    if following is None:
        return False
    done = job.stage or GENERATE
    job.stage_attempts = {**job.stage_attempts, done: job.attempts}
    transition(job, JobState.QUEUED, now_s, f"{done} done; queued for {following}")
    job.stage, job.attempts = following, 1  # each stage counts its own attempts
    job.progress = Progress("queued")
    return True


def reject(
    core: SchedulerCore, job_id: JobId, token: int, now_s: float, reasons: Sequence[str]
) -> Job:
    """The QA stage rejected the video: back to ``generate`` with ``seed + 1`` (recorded in
    ``params`` and ``regenerations``) while regenerations remain, else fail with its reasons.
    A stale token is refused like any report."""
    job = core.get(job_id)
    core._check_lease(job, token)
    if job.stage != QA:
        raise InvalidRequest(f"job {job.id} is at stage {job.stage!r}; only a qa stage rejects")
    why = "; ".join(r.strip() for r in reasons if r.strip())[:400] or "rejected"
    core._release(job)
    job.stage_attempts = {**job.stage_attempts, QA: job.attempts}
    if job.regenerations >= core.config.qa_regenerations:
        job.error = JobError(QA_FAILED, f"qa: {why}", False)
        core._move(job, JobState.FAILED, now_s, f"qa rejected: {why}")
        return job
    job.regenerations += 1
    job.params = replace(job.params, seed=(job.params.seed + 1) % (MAX_SEED + 1))
    job.stage, job.result_uris = GENERATE, {}
    core.requeue_at(job, now_s, f"qa rejected: {why}; regenerating with seed {job.params.seed}")
    job.attempts = 1
    job.progress = Progress("queued")
    return job
