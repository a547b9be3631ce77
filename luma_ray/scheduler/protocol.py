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

Nothing here imports Ray: the values pickle as plain dataclasses.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from typing_extensions import TypedDict

from luma_ray.config import TenantLimits
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import GenerationRequest, JobError, JobState, ModelLimits, Progress

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

SwapVerdict = Literal["go", "wait", "halted"]
"""A worker's answer to "may I swap versions now": go, wait and ask again, or never (halted)."""


# ---- requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitRequest:
    """One generation as a client asks for it, before intake resolves its defaults.

    ``frames``, ``size``, ``fps``, ``steps`` and ``seed`` left as None take the model's defaults
    (a random seed); ``seconds`` is the alternative to ``frames``: frames = round(seconds x fps).
    Intake
    (``luma_ray.scheduler.intake``) validates it once and turns it into the job's
    :class:`~luma_ray.jobs.GenerationRequest`.
    """

    prompt: str
    model: str = "luma-tiny"
    """A model name, or ``name@version`` to pin a repository version."""
    tier: str = "free"
    tenant: str = "default"
    negative_prompt: str = ""
    frames: int | None = None
    size: str | None = None
    """``WIDTHxHEIGHT``; a size past the model's limits keeps its aspect ratio, scaled down."""
    aspect_ratio: str | None = None
    """``16:9``: the largest such size near the model's default area (instead of ``size``)."""
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None
    seconds: float | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    """The caller's labels as sorted (key, value) pairs, returned as given."""
    callback_url: str | None = None
    """Webhook target for state changes, validated at the ingress."""
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """A hash of everything but the idempotency key: what "the same request" means."""
        body = {k: v for k, v in asdict(self).items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# ---- answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """What a client sees of one job: every presenter (native API, OpenAI-compatible API,
    webhooks, the Ray client) renders this one value. Leases' fencing tokens and worker ids
    stay inside the scheduler."""

    id: str
    state: JobState
    tier: str
    tenant: str
    model: str
    """As submitted: a name, or ``name@version`` when pinned."""
    model_version: str | None
    """The version that ran it (or the pinned one)."""
    params: GenerationRequest
    attempts: int
    progress: Progress
    result_uris: Mapping[str, str]
    """Storage URIs by variant (``video``, ``thumbnail``); presenters turn them into URLs."""
    error: JobError | None
    created_at_s: float
    started_at_s: float | None
    finished_at_s: float | None
    wait_s: float
    """Queue wait so far (until it started running, or finished without running)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    queue_position: int | None = None
    """Jobs ahead of it in its queue (an upper bound); None once it left the queue."""
    eta_s: float | None = None
    """Estimated seconds until it starts (queued) or finishes (running)."""
    slo_used: float = 0.0
    """``wait_s`` as a share of its tier's maximum wait."""

    @property
    def done(self) -> bool:
        return self.state.terminal

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types, for payloads and notebooks."""
        out = asdict(self)
        out["state"] = self.state.value
        out["result_uris"] = dict(self.result_uris)
        out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True)
class SubmitRefused:
    """One request of a :class:`SubmitMany` that was not queued, and why."""

    code: str
    message: str


@dataclass(frozen=True)
class Assignment:
    """What a worker gets from a pull: the lease and everything needed to run the job."""

    job_id: str
    token: int
    """Fencing token: every report on this lease carries it."""
    lease_expires_at_s: float
    model: str
    request: GenerationRequest
    attempts: int
    wait_s: float
    lease_ttl_s: float = 60.0
    """A lease lapses this long after its last heartbeat; workers beat well within it."""


@dataclass(frozen=True)
class HeartbeatReply:
    """What a worker learns from a heartbeat: keep going, or stop (the job was cancelled)."""

    cancel: bool
    lease_expires_at_s: float


@dataclass(frozen=True)
class TierView:
    name: str
    max_wait_s: float
    weight: float
    shed_ratio: float | None


@dataclass(frozen=True)
class Limits:
    """Tiers with their SLOs and shedding, each model's request limits, tenant caps per tier."""

    tiers: tuple[TierView, ...]
    models: Mapping[str, ModelLimits]
    tenant_limits: Mapping[str, TenantLimits]

    def tier(self, name: str) -> TierView:
        found = next((t for t in self.tiers if t.name == name), None)
        if found is None:
            raise InvalidRequest(f"unknown tier {name!r}")
        return found

    def model(self, ref: str) -> ModelLimits:
        """The limits of ``name`` or ``name@version``; ``InvalidRequest`` listing the models."""
        name = ref.partition("@")[0]
        limits = self.models.get(name)
        if limits is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise InvalidRequest(f"unknown model {name!r}; available: {known}")
        return limits


@dataclass(frozen=True)
class Backlog:
    """Queued jobs of a model (any version) and its mean service time: what the pools'
    autoscaling policy scales on."""

    queued: int
    service_s: float


class TierQueues(TypedDict):
    queued: int
    oldest_wait_s: float
    models: dict[str, int]
    """Queued jobs per model (``name`` or ``name@version``)."""


class SchedulerStats(TypedDict):
    """Queue depths, oldest waits and back-pressure counters (``luma-ray status``, admin)."""

    policy: str
    tiers: dict[str, TierQueues]
    states: dict[str, int]
    """Jobs in memory by state (finished ones leave memory after ``keep_finished_s``)."""
    in_flight: dict[str, int]
    """Leased-but-unfinished jobs per cluster."""
    refused_pulls: dict[str, int]
    """Pulls refused per cluster because it was at its dispatch limit."""
    peak_in_flight: dict[str, int]


class QueueRow(TypedDict):
    tier: str
    model: str
    depth: int
    oldest_wait_s: float
    slo_s: float
    slo_used: float
    dispatch_per_min: float


class PoolRow(TypedDict):
    pool: str
    model: str
    workers: int
    versions: dict[str, int]
    """Workers per model version."""


class QueueReport(TypedDict):
    """The live queue page's data."""

    at_s: float
    queues: list[QueueRow]
    pools: list[PoolRow]


class Halt(TypedDict):
    """Why a version's rollout stopped: the worker that failed to load it, and its error."""

    worker: str
    error: str
    at_s: float


class SwapRecord(TypedDict):
    worker: str
    from_version: str | None
    to_version: str
    started_s: float
    finished_s: float | None
    error: str | None


class RolloutReport(TypedDict):
    """A model's rollout: who serves which version, open swaps, halted versions, recent
    swaps. The scheduler stores it as the model's ``rollout.yaml``."""

    model: str
    workers: dict[str, str]
    swapping: list[str]
    halted: dict[str, Halt]
    events: list[SwapRecord]


@dataclass(frozen=True)
class JobEvent:
    """A journaled state change of one job; webhooks carry it to ``callback_url``."""

    seq: int
    """The change's number in the job's history: ``(job id, seq)`` names it once."""
    view: JobView
    at_s: float
    callback_url: str | None

    @property
    def event_id(self) -> str:
        return f"{self.view.id}.{self.seq}"


@dataclass(frozen=True)
class StateChange:
    """One journaled state change of a job, as an event stream replays it."""

    seq: int
    """Its number in the job's history, from 1: a stream resumes after the last one it saw
    (``JobEvent.seq`` names the same change)."""
    state: JobState
    at_s: float
    reason: str


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
    method: ClassVar[str] = "complete"
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


class InProcessScheduler:
    """An async port over an in-process port (a :class:`SchedulerService`), one call at a time
    as on the actor's event loop. Tests and single-process tools give it to the ingress."""

    def __init__(self, inner: SchedulerPort) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    async def call(self, op: Op[R]) -> R:
        with self._lock:  # apps under test may serve from several threads
            return self.inner.call(op)
