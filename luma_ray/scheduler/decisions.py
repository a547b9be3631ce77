"""Decisions of the scheduler core, as values the shell (actor, simulator) carries out."""

from __future__ import annotations

from dataclasses import dataclass

from luma_ray.jobs import JobId, WorkerId


@dataclass(frozen=True)
class Dispatch:
    """Run this job: the pulling worker now holds a lease on it."""

    job_id: JobId
    worker: WorkerId
    cluster: str
    token: int
    """Fencing token: every later report on this lease must carry it."""
    lease_expires_at_s: float
    """The lease lapses unless a heartbeat renews it before this time."""
    wait_s: float
    """How long the job waited since it was first enqueued."""


@dataclass(frozen=True)
class Requeue:
    """A lease was lost (expired, worker gone); the job went back to its queue by age."""

    job_id: JobId
    attempts: int
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """A lease was lost once too often; the job failed instead of going back to the queue."""

    job_id: JobId
    attempts: int
    reason: str
