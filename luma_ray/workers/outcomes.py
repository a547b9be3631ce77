"""What the pull loop measured and how it words a failure for the tenant.

``LoopStats`` is read by the worker's metrics and the idle-gap benchmark; ``error_reference``
and ``tenant_message`` name a failed attempt without showing the tenant the exception's text;
``commit`` reports a stored result to the scheduler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from luma_ray.errors import NotFound, StaleLease
from luma_ray.scheduler.protocol import Assignment
from luma_ray.workers.ports import LeasePort
from luma_ray.workers.stages import StageResult


@dataclass
class LoopStats:
    """What the loop measured; the idle-gap benchmark reads ``gaps_s``."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    stale: int = 0
    gaps_s: list[float] = field(default_factory=list)
    """Idle time of the model between the end of one generate and the start of the next."""
    generated: dict[str, int] = field(default_factory=dict)
    """How many times the model ran each job to its last step (1 unless a lease was lost)."""
    stopped_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Cancelled jobs and the (step, total) at which the model stopped."""
    handed_back: list[str] = field(default_factory=list)
    """Jobs stopped and returned to the queue because this worker had to leave in time."""
    parked: dict[str, list[int]] = field(default_factory=dict)
    """Jobs this worker parked for a more urgent one, and the steps it parked them at."""
    resumed: dict[str, int] = field(default_factory=dict)
    """Jobs this worker resumed from a parked state, and the first step it ran."""
    current: str | None = None
    """The job the model is running now."""
    busy_s: float = 0.0
    """Time the model spent generating, in total (its step callbacks included)."""
    step_calls_s: float = 0.0
    """Of ``busy_s``, the time spent in the step callbacks (heartbeats, the prefetch's start):
    the model waits for them, so they are the system's, not the model's."""


def error_reference(job: Assignment) -> str:
    """A short reference to one failed attempt (the job and its lease's token): the worker logs
    the exception with it and the tenant sees it, so an operator finds the one from the other."""
    return hashlib.sha256(f"{job.job_id}/{job.token}".encode()).hexdigest()[:8]


def tenant_message(what: str, ref: str) -> str:
    """What a tenant reads of an internal failure: never the exception's text, which names
    buckets, hosts and paths (boto, the file system, the model's own code)."""
    return f"{what} (ref {ref}); the operator's logs have the details"


def commit(
    scheduler: LeasePort,
    job: Assignment,
    uris: dict[str, str],
    frames: object,
    version: str | None,
    pull_wait_s: float | None,
) -> tuple[str | None, Assignment | None]:
    """Report a stored result (a video, or a stage's outputs, caption or QA rejection): the
    code of its refusal (None: it landed) and, with ``pull_wait_s``, the next lease, leased in
    the same call (``CompleteAndPull``; never for a QA rejection)."""
    stage = frames if isinstance(frames, StageResult) else None
    try:
        if pull_wait_s is not None and (stage is None or stage.rejected is None):
            made_by, caption = (version, None) if stage is None else (None, stage.caption)
            answer = scheduler.complete_and_pull(job, uris, made_by, caption, pull_wait_s)
            return (answer.refused.code if answer.refused else None), answer.assignment
        if stage is not None:  # a stage: a caption, or a QA rejection
            scheduler.finish_stage(job, uris, stage.caption, stage.rejected)
        else:
            scheduler.complete(job, uris, version)
    except (StaleLease, NotFound) as refused:
        return refused.code, None
    return None, None
