"""Parked sampler states as the pull loop handles them: read one to resume a job, store one and
report the park, delete one nobody will resume.

A state lives in the result store under the job's results (``StoreSink.store_parked``: private,
never served, gone with the job's results when it is deleted or expires). The lease that
resumed from a state deletes it once the job succeeded, failed for good, was cancelled, or
parked again with a newer state; a crashed worker leaves it for the next lease to resume from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from luma_ray.errors import NotFound, StaleLease
from luma_ray.models.interface import GenerationParked, can_park
from luma_ray.scheduler.protocol import Assignment
from luma_ray.workers.ports import LeasePort, ResultSink

log = logging.getLogger(__name__)

ParkOutcome = Literal["parked", "stale", "unstored", "unreported"]


class ParkedStates:
    """The loop's parked states over its scheduler port and its result sink."""

    def __init__(self, scheduler: LeasePort, sink: ResultSink) -> None:
        self.scheduler = scheduler
        self.sink = sink

    def state_for(self, job: Assignment, model: object, version: str | None) -> bytes | None:
        """The state to resume ``job`` from: None without one, if ``model`` cannot resume,
        or if it cannot be read (the job then runs from its first step: the same video)."""
        if job.resume_uri is None or not can_park(model):
            return None
        try:
            return self.sink.load_parked(job, version)
        except Exception:
            log.warning("job %s: its parked state cannot be read; starting over", job.job_id)
            return None

    def park(self, job: Assignment, parked: GenerationParked, version: str | None) -> ParkOutcome:
        """Store the state and report the park: ``parked``; ``stale`` (the job moved on
        meanwhile: the state is deleted); ``unstored`` (the store failed: hand the job back);
        ``unreported`` (the scheduler is unreachable: the lease will expire)."""
        log.info("job %s parked at step %d of %d", job.job_id, parked.step, parked.total)
        try:
            uri = self.sink.store_parked(job, parked.state, version)
        except Exception:
            log.exception("job %s: storing its parked state failed", job.job_id)
            return "unstored"
        try:
            self.scheduler.park(job, parked.step, parked.total, uri)
        except (StaleLease, NotFound):
            _quietly(self.sink.delete_parked, job.job_id, uri)
            return "stale"
        except Exception:
            log.exception("job %s: could not report the park; the lease will expire", job.job_id)
            return "unreported"
        if job.resume_uri != uri:
            self.drop(job)  # the state it resumed from is superseded
        return "parked"

    def drop(self, job: Assignment) -> None:
        """Delete the state this lease resumed from (the job ended, or parked anew)."""
        if job.resume_uri is not None:
            _quietly(self.sink.delete_parked, job.job_id, job.resume_uri)


def _quietly(fn: Callable[[str, str], None], job_id: str, uri: str) -> None:
    try:
        fn(job_id, uri)
    except Exception:
        log.warning("job %s: could not delete the parked state %s", job_id, uri, exc_info=True)
