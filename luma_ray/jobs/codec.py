"""Job records to and from plain JSON-able dicts: the journal's row format and the wire view.

The journal (``luma_ray.scheduler.journal``) stores ``job_to_dict`` as JSON and rebuilds jobs
with ``job_from_dict`` after a restart, so every field round-trips exactly.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from luma_ray.jobs.model import (
    Job,
    JobError,
    JobId,
    Lease,
    Progress,
    TenantId,
    WorkerId,
)
from luma_ray.jobs.request import DEFAULT_STEPS, GenerationRequest
from luma_ray.jobs.states import JobState

FORMAT_VERSION = 1


def job_to_dict(job: Job) -> dict[str, Any]:
    """Every field of ``job`` as plain types (enums as their values)."""
    data = asdict(job)
    data["state"] = job.state.value
    data["history"] = [[t, s.value, why] for t, s, why in job.history]
    data["v"] = FORMAT_VERSION
    return data


def job_from_dict(data: dict[str, Any]) -> Job:
    """The inverse of :func:`job_to_dict`."""
    lease = data.get("lease")
    error = data.get("error")
    return Job(
        id=JobId(data["id"]),
        tenant=TenantId(data["tenant"]),
        tier=data["tier"],
        model=data["model"],
        params=_params(data["params"]),
        created_at_s=data["created_at_s"],
        enqueued_at_s=data["enqueued_at_s"],
        model_version=data.get("model_version"),
        state=JobState(data["state"]),
        attempts=data["attempts"],
        lease=Lease(
            WorkerId(lease["worker"]), lease["cluster"], lease["expires_at_s"], lease["token"]
        )
        if lease
        else None,
        progress=Progress(**data["progress"]),
        result_uris=dict(data.get("result_uris") or {}),
        error=JobError(**error) if error else None,
        finished_at_s=data.get("finished_at_s"),
        cancel_requested=data.get("cancel_requested", False),
        history=[(t, JobState(s), why) for t, s, why in data.get("history", [])],
        metadata=dict(data.get("metadata") or {}),
        callback_url=data.get("callback_url"),
        idempotency_key=data.get("idempotency_key"),
        request_hash=data.get("request_hash"),
    )


def _params(data: dict[str, Any]) -> GenerationRequest:
    """A stored request; rows from before steps were resolved at intake say ``steps: null``."""
    if data.get("steps") is None:
        data = {**data, "steps": DEFAULT_STEPS}
    return GenerationRequest(**data)
