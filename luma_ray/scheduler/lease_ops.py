"""The operations a worker sends about its leases: pull, renew, report, hand back.

Part of the scheduler's boundary (``protocol`` re-exports them). ``CompleteAndPull`` commits a
result and leases the next job in one call; ``Heartbeats`` renews several leases of one worker
process in one call (docs/architecture.md, "Worker calls").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from luma_ray.scheduler.answers import (
    Assignment,
    CompletedAndPulled,
    HeartbeatReply,
    JobView,
    LeaseRefused,
)
from luma_ray.scheduler.operation import Op


@dataclass(frozen=True)
class Pull(Op[Assignment | None]):
    """Lease the best job for this worker; the actor waits up to ``wait_s`` for one."""

    worker: str
    cluster: str
    models: tuple[str, ...]
    wait_s: float = 0.0
    method: ClassVar[str] = "pull"


@dataclass(frozen=True)
class Heartbeat(Op[HeartbeatReply]):
    job_id: str
    token: int
    step: int = 0
    total: int = 0
    phase: str = "running"
    method: ClassVar[str] = "heartbeat"


@dataclass(frozen=True)
class Complete(Op[JobView]):
    """Commit a result at most once; ``version`` is the model version that made it."""

    job_id: str
    token: int
    result_uris: Mapping[str, str]
    version: str | None = None
    caption: str | None = None
    """A caption stage's caption (docs/pipelines.md)."""
    method: ClassVar[str] = "complete"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class Reject(Op[JobView]):
    """A QA stage rejected the video: the job is generated again with a new seed, or fails
    with ``qa: <reasons>`` (docs/pipelines.md)."""

    job_id: str
    token: int
    reasons: tuple[str, ...]
    method: ClassVar[str] = "reject"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class Fail(Op[JobView]):
    job_id: str
    token: int
    code: str
    message: str
    retryable: bool = False
    method: ClassVar[str] = "fail"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class Release(Op[JobView]):
    """Hand back an unstarted lease (stopping, or swapping versions)."""

    job_id: str
    token: int
    method: ClassVar[str] = "release"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class Park(Op[JobView]):
    """The worker parked the job after step ``step`` of ``total`` (its heartbeat asked it
    to), its sampler state stored at ``state_uri``: the job goes back to its queue with its
    place, its progress and that state, and no attempt counted."""

    job_id: str
    token: int
    step: int
    total: int
    state_uri: str
    method: ClassVar[str] = "park"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class WorkerLost(Op[int]):
    """Requeue every lease of a worker that is gone; answers how many."""

    worker: str
    method: ClassVar[str] = "worker_lost"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class CompleteAndPull(Op[CompletedAndPulled]):
    """``Complete`` then ``Pull`` in one call and one journal write: commit the result (at most
    once, the same fencing checks) and lease this worker's next job (waiting up to ``wait_s``
    on the actor). A refused result (a stale token, a deleted job) does not stop the pull: the
    answer's ``refused`` says why, and the worker is free for its next job either way."""

    job_id: str
    token: int
    result_uris: Mapping[str, str]
    worker: str
    cluster: str
    models: tuple[str, ...]
    version: str | None = None
    caption: str | None = None
    wait_s: float = 0.0
    method: ClassVar[str] = "complete_and_pull"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class Beat:
    """One lease's heartbeat inside :class:`Heartbeats` (the fields of ``Heartbeat``)."""

    job_id: str
    token: int
    step: int = 0
    total: int = 0
    phase: str = "running"


@dataclass(frozen=True)
class Heartbeats(Op[list[HeartbeatReply | LeaseRefused]]):
    """Renew several leases in one call, each with its own token; one answer per beat, in
    order: its ``HeartbeatReply``, or ``LeaseRefused`` (``stale_lease``, ``not_found``) where
    ``Heartbeat`` would have raised."""

    beats: tuple[Beat, ...]
    method: ClassVar[str] = "heartbeats"
