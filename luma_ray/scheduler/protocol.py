"""Everything that crosses the scheduler's boundary, as frozen typed values.

A caller (the HTTP ingress, the Ray client, a worker, the command line) asks the scheduler for
something by building one :class:`Op` value and handing it to a port's ``call``:

    view = scheduler.call(GetJob(job_id, tenant))        # -> JobView

Three things implement the port: :class:`~luma_ray.scheduler.service.SchedulerService` in
process (tests, single-process tools), the Ray handles in ``luma_ray.runtime.handle`` (the only
code that calls the scheduler actor), and :class:`InProcessScheduler` (an async port over a
service, for the ingress's tests). Each op names the service method that answers it and carries
that method's keyword arguments as fields, so adding an operation means adding a method to the
service and an op here (a worker's lease ops: in ``lease_ops``); the actor, the handles and
every port stay as they are (ops that wait, ``Pull``, ``CompleteAndPull`` and ``EventFeed``, are
the actor's exceptions).

The values themselves live in ``requests`` (what a client sends), ``answers`` (what the
scheduler answers), ``reports`` (what operators read), ``operation`` (the ``Op`` base) and
``lease_ops`` (a worker's ops); this module re-exports them, so a
caller imports everything that crosses the boundary from here. Nothing here imports Ray: the
values pickle as plain dataclasses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from luma_ray.scheduler.answers import (
    Assignment,
    Backlog,
    CompletedAndPulled,
    FeedEvent,
    FeedPage,
    HeartbeatReply,
    JobEvent,
    JobView,
    JobWatch,
    JournalFile,
    LeaseRefused,
    Limits,
    StateChange,
    SubmitRefused,
    SwapVerdict,
    TierView,
)
from luma_ray.scheduler.lease_ops import (
    Beat,
    Complete,
    CompleteAndPull,
    Fail,
    Heartbeat,
    Heartbeats,
    Park,
    Pull,
    Reject,
    Release,
    WorkerLost,
)
from luma_ray.scheduler.operation import Op
from luma_ray.scheduler.reports import (
    FailureRow,
    Halt,
    MinuteRow,
    PoolRow,
    QueueReport,
    QueueRow,
    RolloutReport,
    SchedulerStats,
    SwapRecord,
    TenantTop,
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
    "CompletedAndPulled",
    "FailureRow",
    "FeedEvent",
    "FeedPage",
    "Halt",
    "HeartbeatReply",
    "JobEvent",
    "JobView",
    "JobWatch",
    "LeaseRefused",
    "JournalFile",
    "Limits",
    "MinuteRow",
    "PoolRow",
    "QueueReport",
    "QueueRow",
    "RolloutReport",
    "SchedulerStats",
    "StateChange",
    "SubmitRefused",
    "SwapRecord",
    "SwapVerdict",
    "TenantTop",
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
    "Heartbeats",
    "Beat",
    "Complete",
    "CompleteAndPull",
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


# ---- operations (a worker's lease ops: ``lease_ops``) ------------------------------------


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
    """The live queue page's data: queues by tier and model, pools and their versions, the
    last hour per minute, the top tenants per tier and the recent failures."""

    method: ClassVar[str] = "queue_view"


@dataclass(frozen=True)
class Ping(Op[str]):
    method: ClassVar[str] = "ping"


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
