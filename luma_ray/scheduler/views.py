"""What callers see of a job: a plain dict, safe to send over Ray or HTTP.

Leases' fencing tokens and worker ids stay inside the scheduler; clients see state, progress,
timings, results and errors.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from luma_ray.jobs import Job, JobState


def job_view(job: Job, now_s: float) -> dict[str, Any]:
    """The client's view of ``job`` at ``now_s`` (seconds since the epoch)."""
    started_at = next((t for t, s, _ in job.history if s is JobState.RUNNING), None)
    waited_until = started_at if started_at is not None else (job.finished_at_s or now_s)
    return {
        "id": job.id,
        "state": job.state.value,
        "tier": job.tier,
        "tenant": job.tenant,
        "model": job.model,
        "model_version": job.model_version,
        "params": asdict(job.params),
        "attempts": job.attempts,
        "progress": asdict(job.progress),
        "result_uris": dict(job.result_uris),
        "error": asdict(job.error) if job.error else None,
        "created_at_s": job.created_at_s,
        "started_at_s": started_at,
        "finished_at_s": job.finished_at_s,
        "wait_s": round(max(0.0, waited_until - job.enqueued_at_s), 3),
        "metadata": dict(job.metadata),
    }
