"""Idempotency keys: a retried submit with the same key and body returns the first job.

Who calls this: the scheduler service, on every submit, delete and eviction. A key is scoped to
its tenant and remembered while its job is in the scheduler's memory (``keep_finished_s`` after
it finished); the journal keeps the key with the job, so a restart remembers it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from luma_ray.errors import Conflict
from luma_ray.jobs import Job, JobId


class IdempotencyKeys:
    """(tenant, key) → the job first submitted with it."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], JobId] = {}

    def earlier(
        self, tenant: str, key: str | None, fingerprint: str | None, jobs: Mapping[JobId, Job]
    ) -> Job | None:
        """The job this key already made, if it is still in memory; ``Conflict`` if the same
        key came with a different request."""
        if not key:
            return None
        job_id = self._jobs.get((tenant, key))
        job = jobs.get(job_id) if job_id is not None else None
        if job is not None and job.request_hash != fingerprint:
            raise Conflict(
                "this Idempotency-Key was already used with a different request; "
                "use a new key for a new request"
            )
        return job

    def remember(self, job: Job) -> None:
        if job.idempotency_key:
            self._jobs[(job.tenant, job.idempotency_key)] = job.id

    def forget(self, job: Job) -> None:
        """The job left memory (deleted or evicted): its key may make a new job."""
        key = (job.tenant, job.idempotency_key or "")
        if self._jobs.get(key) == job.id:
            del self._jobs[key]
