"""Everything that crosses the scheduler's boundary, as frozen typed values.

A caller (the HTTP ingress, the Ray client, a worker, the command line) asks the scheduler for
something by building one :class:`Op` value and handing it to a port's ``call``:

    view = scheduler.call(GetJob(job_id, tenant))        # -> JobView

Three things implement the port: :class:`~luma_ray.scheduler.service.SchedulerService` in
process (tests, single-process tools), the Ray handles in ``luma_ray.runtime.handle`` (the only
code that calls the scheduler actor), and :class:`InProcessScheduler` (an async port over a
service, for the ingress's tests). Each op names the service method that answers it and carries
that method's keyword arguments as fields, so adding an operation means adding a method to the
service and an op here; the actor, the handles and every port stay as they are.

The values themselves live in ``requests`` (what a client sends), ``answers`` (what the
scheduler answers) and ``reports`` (what operators read); this module re-exports them, so a
caller imports everything that crosses the boundary from here. Nothing here imports Ray: the
values pickle as plain dataclasses.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from luma_ray.scheduler.answers import (
    Assignment,
    Backlog,
    FeedEvent,
    FeedPage,
    HeartbeatReply,
    JobEvent,
    JobView,
    JobWatch,
    Limits,
    StateChange,
    SubmitRefused,
    SwapVerdict,
    TierView,
)
from luma_ray.scheduler.reports import (
    Halt,
    PoolRow,
    QueueReport,
    QueueRow,
    RolloutReport,
    SchedulerStats,
    SwapRecord,
    TierQueues,
)
from luma_ray.scheduler.requests import SubmitRequest

if TYPE_CHECKING:
    from luma_ray.scheduler.in_process import InProcessScheduler

__all__ = [
    # what a client sends
    "SubmitRequest",
    # the answers (answers.py) and operators' reports (reports.py)
    "Assignment",
    "Backlog",
    "FeedEvent",
    "FeedPage",
    "Halt",
    "HeartbeatReply",
    "JobEvent",
    "JobView",
    "JobWatch",
    "Limits",
    "PoolRow",
    "QueueReport",
    "QueueRow",
    "RolloutReport",
    "SchedulerStats",
    "StateChange",
    "SubmitRefused",
    "SwapRecord",
    "SwapVerdict",
    "TierQueues",
    "TierView",
    # the operations
    "Op",
    "Submit",
    "SubmitMany",
    "GetJob",
    "ListJobs",
    "JobEvents",
    "EventFeed",
    "WatchJob",
    "CallCounts",  # fmt: skip
    "CancelJob",
    "DeleteJob",
    "DescribeLimits",
    "Stats",
    "QueuePage",
    "Ping",
    "Pull",
    "Heartbeat",
    "Complete",
    "Reject",
    "Fail",
    "Release",
    "Park",
    "WorkerLost",
    "GetBacklog",
    "RequestSwap",
    "FinishSwap",
    "HaltedVersions",
    "RolloutStatus",
    # the ports
    "SchedulerPort",
    "AsyncSchedulerPort",
    "InProcessScheduler",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


# ---- operations --------------------------------------------------------------------------


class Op(Generic[R_co]):
    """One call to the scheduler, answered by the service method named ``method`` with the
    op's fields as keyword arguments. ``R_co`` is the answer's type."""

    method: ClassVar[str]
    wakes_pulls: ClassVar[bool] = False
    """After it runs, pulls waiting for work look again (new work, or a freed limit)."""

    def arguments(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def safe_to_retry(self) -> Op[R_co]:
        """This op in a form that may be sent twice (a call may land and its answer be lost)."""
        return self


@dataclass(frozen=True)
class Submit(Op[JobView]):
    """Queue one generation; ``InvalidRequest``, ``BackPressure`` or ``Conflict`` if not."""

    request: SubmitRequest
    method: ClassVar[str] = "submit"
    wakes_pulls: ClassVar[bool] = True

    def safe_to_retry(self) -> Submit:
        if self.request.idempotency_key is not None:
            return self
        key = f"retry-{uuid.uuid4().hex}"
        return Submit(replace(self.request, idempotency_key=key))


@dataclass(frozen=True)
class SubmitMany(Op[list[JobView | SubmitRefused]]):
    """Queue several generations in one journal transaction; refusals are answered in place."""

    requests: tuple[SubmitRequest, ...]
    method: ClassVar[str] = "submit_many"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class GetJob(Op[JobView]):
    """One job; ``tenant`` None (admin) sees every tenant's, others get NotFound."""

    job_id: str
    tenant: str | None = None
    method: ClassVar[str] = "get"


@dataclass(frozen=True)
class ListJobs(Op[list[JobView]]):
    """A page of jobs by id; ``after`` is the last id of the previous page."""

    tenant: str | None = None
    state: str | None = None
    limit: int = 100
    after: str | None = None
    order: str = "desc"
    method: ClassVar[str] = "list"


@dataclass(frozen=True)
class JobEvents(Op[list[StateChange]]):
    """A job's state changes after ``after`` (a ``StateChange.seq``; 0: all), oldest first."""

    job_id: str
    tenant: str | None = None
    after: int = 0
    method: ClassVar[str] = "events"


@dataclass(frozen=True)
class EventFeed(Op[FeedPage]):
    """Every tenant's job events after ``after``; waits up to ``wait_s`` if there are none."""

    after: int
    limit: int = 1000
    wait_s: float = 0.0
    method: ClassVar[str] = "event_feed"


@dataclass(frozen=True)
class WatchJob(Op[JobWatch]):
    """A stream opens: the job and the feed's cursor now; its events since ``after`` if set."""

    job_id: str
    tenant: str | None = None
    after: int | None = None
    method: ClassVar[str] = "watch"


@dataclass(frozen=True)
class CallCounts(Op[dict[str, int]]):
    """Operations the scheduler answered since it started, by op name."""

    method: ClassVar[str] = "call_counts"


@dataclass(frozen=True)
class CancelJob(Op[JobView]):
    job_id: str
    tenant: str | None = None
    method: ClassVar[str] = "cancel"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class DeleteJob(Op[JobView]):
    """Forget a job (cancelling it first if live); answers its last view."""

    job_id: str
    tenant: str | None = None
    method: ClassVar[str] = "delete"
    wakes_pulls: ClassVar[bool] = True


@dataclass(frozen=True)
class DescribeLimits(Op[Limits]):
    method: ClassVar[str] = "describe"


@dataclass(frozen=True)
class Stats(Op[SchedulerStats]):
    """Counts by tier, state and model (admin)."""

    method: ClassVar[str] = "stats"


@dataclass(frozen=True)
class QueuePage(Op[QueueReport]):
    """The live queue page's data: queues by tier and model, pools and their versions."""

    method: ClassVar[str] = "queue_view"


@dataclass(frozen=True)
class Ping(Op[str]):
    method: ClassVar[str] = "ping"


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
class GetBacklog(Op[Backlog]):
    model: str
    method: ClassVar[str] = "backlog"


@dataclass(frozen=True)
class RequestSwap(Op[SwapVerdict]):
    """May ``worker`` stop serving to load ``target`` now?"""

    worker: str
    model: str
    target: str
    pool_size: int
    max_unavailable: str
    method: ClassVar[str] = "request_swap"


@dataclass(frozen=True)
class FinishSwap(Op[None]):
    """A worker finished a swap; ``error`` (it stayed on its old version) halts the rollout."""

    worker: str
    model: str
    target: str
    error: str | None = None
    method: ClassVar[str] = "finish_swap"


@dataclass(frozen=True)
class HaltedVersions(Op[list[str]]):
    model: str
    method: ClassVar[str] = "halted_versions"


@dataclass(frozen=True)
class RolloutStatus(Op[RolloutReport]):
    model: str
    method: ClassVar[str] = "rollout_status"


# ---- ports -------------------------------------------------------------------------------


class SchedulerPort(Protocol):
    """The scheduler, called from synchronous code (workers, the Ray client, the CLI)."""

    def call(self, op: Op[R]) -> R: ...


class AsyncSchedulerPort(Protocol):
    """The scheduler, awaited from an event loop (the HTTP ingress)."""

    async def call(self, op: Op[R]) -> R: ...


def __getattr__(name: str) -> object:  # InProcessScheduler waits on EventFeed: in_process.py
    if name == "InProcessScheduler":
        from luma_ray.scheduler.in_process import InProcessScheduler

        return InProcessScheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
