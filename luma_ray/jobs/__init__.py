"""Jobs: the record, its ids, and the state machine. Pure: no Ray, torch or clock reads."""

from luma_ray.jobs.model import (
    Job,
    JobError,
    JobId,
    Lease,
    Progress,
    TenantId,
    WorkerId,
    new_job_id,
)
from luma_ray.jobs.request import INPUT_KINDS, GenerationInputs, GenerationRequest, ModelLimits
from luma_ray.jobs.states import TERMINAL, TERMINAL_VALUES, TRANSITIONS, JobState, transition

__all__ = [
    "INPUT_KINDS",
    "TERMINAL",
    "TERMINAL_VALUES",
    "TRANSITIONS",
    "GenerationInputs",
    "GenerationRequest",
    "Job",
    "JobError",
    "JobId",
    "JobState",
    "Lease",
    "ModelLimits",
    "Progress",
    "TenantId",
    "WorkerId",
    "new_job_id",
    "transition",
]
