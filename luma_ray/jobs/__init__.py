"""Jobs: the record, its ids, and the state machine. Pure: no Ray, torch or clock reads."""

from luma_ray.jobs.model import (
    GenerationParams,
    Job,
    JobError,
    JobId,
    Lease,
    Progress,
    TenantId,
    WorkerId,
    new_job_id,
)
from luma_ray.jobs.states import TERMINAL, TRANSITIONS, JobState, transition

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "GenerationParams",
    "Job",
    "JobError",
    "JobId",
    "JobState",
    "Lease",
    "Progress",
    "TenantId",
    "WorkerId",
    "new_job_id",
    "transition",
]
