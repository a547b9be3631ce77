"""What the pull loop needs from the outside world, as small protocols.

The Serve deployment passes real adapters (``SchedulerLeases`` over the scheduler's handle,
the blob store); unit tests pass
in-memory fakes. Nothing here imports Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from luma_ray.models.interface import GenerationRequest, StepCallback
from luma_ray.scheduler.protocol import Assignment, CompletedAndPulled, HeartbeatReply

if TYPE_CHECKING:
    import numpy


class LeasePort(Protocol):
    """The scheduler as a worker sees it: leases to pull, renew, complete or hand back."""

    def pull(self, wait_s: float) -> Assignment | None:
        """Lease the next job for this worker, waiting up to ``wait_s`` for one."""

    def heartbeat(self, a: Assignment, step: int, total: int, phase: str) -> HeartbeatReply:
        """Renew the lease and report progress; the reply says ``cancel`` (the job was
        cancelled: stop) or ``park`` (park it at the next step boundary)."""

    def complete(
        self, a: Assignment, result_uris: dict[str, str], version: str | None = None
    ) -> None:
        """Commit the result (``version``: the model version that made it); raises
        StaleLease if this lease lost the job meanwhile."""

    def complete_and_pull(
        self,
        a: Assignment,
        result_uris: dict[str, str],
        version: str | None,
        caption: str | None,
        wait_s: float,
    ) -> CompletedAndPulled:
        """``complete`` and ``pull`` in one scheduler call: a refused result (the lease lost
        the job) is answered in ``refused``, not raised, and the next lease comes either way."""

    def finish_stage(
        self,
        a: Assignment,
        result_uris: dict[str, str],
        caption: str | None,
        rejected: tuple[str, ...] | None,
    ) -> None:
        """A pipeline stage ended: commit its outputs and caption, or its QA rejection."""

    def fail(self, a: Assignment, code: str, message: str, retryable: bool) -> None:
        """Report a failure; retryable ones go back to the queue."""

    def release(self, a: Assignment) -> None:
        """Hand back an unstarted lease; the job is queued again without counting an attempt."""

    def park(self, a: Assignment, step: int, total: int, state_uri: str) -> None:
        """The job was parked after ``step`` of ``total``, its state stored at ``state_uri``:
        it is queued again, and the next lease resumes from that state."""


class Runner(Protocol):
    """A loaded model version as the pull loop drives it: one ``generate`` per job. A model
    in the worker's process (``VideoModel``) is one; so is a gang of rank processes
    (``gang.GangModel``), which loads its version when it starts. One with ``can_park``
    also parks on ``PARK`` and takes ``generate(..., resume=state)``; a request with inputs
    comes with ``generate(..., conditioning=...)`` (a ``Conditioning``)."""

    name: str

    def generate(self, request: GenerationRequest, on_step: StepCallback) -> Any: ...


class ResultSink(Protocol):
    """Encodes frames and stores them; returns the URIs to commit (video, thumbnail)."""

    def store(self, a: Assignment, frames: numpy.ndarray) -> dict[str, str]: ...

    def discard(self, a: Assignment) -> None:
        """Delete what ``store`` wrote for this lease (its result was refused: the job was
        cancelled, deleted or moved on), so no orphaned video stays in the store."""

    def store_parked(self, a: Assignment, state: bytes, version: str | None) -> str:
        """Store a parked sampler state (private, under the job's results); its URI."""

    def load_parked(self, a: Assignment, version: str | None) -> bytes | None:
        """The state ``a.resume_uri`` names if ``version`` made it, else None; ``NotFound``
        if it is gone."""

    def load_input(self, key: str) -> bytes:
        """The bytes of a job's input blob (``GenerationInputs`` holds its key); ``NotFound``
        if it is gone."""

    def delete_parked(self, job_id: str, uri: str | None) -> None:
        """Delete a parked state of ``job_id`` (None, or not one of its states: nothing)."""


class VersionSource(Protocol):
    """Swaps the loop's model between jobs (``versions.VersionManager`` implements it)."""

    def wants_swap(self) -> bool: ...

    def swap(self) -> Runner: ...
