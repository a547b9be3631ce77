"""Job states and the one table of legal moves between them.

``transition`` is the only function that changes a job's state: it checks the table, bumps
attempts on a requeue, keeps the original enqueue time, and records when and why.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from luma_ray.errors import IllegalTransition

if TYPE_CHECKING:
    from luma_ray.jobs.model import Job


class JobState(str, Enum):
    QUEUED = "queued"
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TERMINAL_VALUES = frozenset(state.value for state in TERMINAL)
"""The final states as the strings the API and the journal carry."""

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.LEASED, JobState.CANCELLED, JobState.FAILED}),
    # leased → queued and running → queued are requeues: worker lost or lease expired.
    JobState.LEASED: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def transition(job: Job, to: JobState, now_s: float, reason: str = "") -> None:
    """Move ``job`` to ``to`` at time ``now_s``, or raise :class:`IllegalTransition`.

    A move back to ``queued`` is a requeue: it counts an attempt and drops the lease but keeps
    ``enqueued_at_s``, so the job keeps its place in line by age.
    """
    if to not in TRANSITIONS[job.state]:
        raise IllegalTransition(
            f"job {job.id}: cannot go from {job.state.value} to {to.value}"
            + (" (terminal states are final)" if job.state.terminal else "")
        )
    if to is JobState.QUEUED:
        job.attempts += 1
        job.lease = None
    if to.terminal:
        job.lease = None
        job.finished_at_s = now_s
    job.state = to
    job.history = (*job.history, (now_s, to, reason))


def state_moved(job: Job) -> bool:
    """Whether the last journaled change of ``job`` moved its state: a new job's (no history
    yet) did; otherwise its last history entry's state differs from the one before it (from
    ``queued``, the state every job starts in, for the first entry). Every change but a submit
    adds an entry, so this is what the event feed publishes on, with no per-job memory."""
    history = job.history
    if not history:
        return True
    before = history[-2][1] if len(history) > 1 else JobState.QUEUED
    return history[-1][1] is not before
