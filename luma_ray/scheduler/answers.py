"""What the scheduler answers: frozen values that pickle across Ray as plain dataclasses.

Part of the scheduler's boundary (``protocol`` re-exports them). ``JobView`` is what every
presenter renders; ``Assignment``, ``HeartbeatReply`` and ``CompletedAndPulled`` are what a
worker gets; ``JobEvent`` and ``StateChange`` are a job's journaled state changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from luma_ray.config import TenantLimits
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import GenerationRequest, JobError, JobState, ModelLimits, Progress

SwapVerdict = Literal["go", "wait", "halted"]
"""A worker's answer to "may I swap versions now": go, wait and ask again, or never (halted)."""


@dataclass(frozen=True, slots=True)
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
    preemptions: int = 0
    """How many times it was parked at a step boundary for a more urgent job (each time it
    went back to its queue with its place and its progress, and resumed where it stopped)."""
    api: str = "native"
    """The API it was submitted through; presenters of webhooks take its shape."""
    api_request: str | None = None
    """The request as that API received it (JSON), for APIs that echo it."""
    stage: str | None = None
    """The pipeline stage it is queued for or running (``generate``, ``qa``, ``caption``,
    ``thumbnail``; docs/pipelines.md), the last one once it finished; None: no pipeline."""
    caption: str | None = None
    """What its caption stage wrote."""
    regenerations: int = 0
    """Videos its QA stage rejected (each generated again with ``seed + 1``)."""

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
    resume_uri: str | None = None
    """The sampler state of the job's last park (the result store): resume from it. None:
    start from the first step."""
    stage: str | None = None
    """The pipeline stage to run (None: the model alone, no pipeline)."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """The outputs of the job's earlier stages by name (``video``, ``thumbnail``…), the
    stage's inputs in the result store."""
    stages: tuple[str, ...] = ()
    """The job's whole pipeline (a generate stage followed by ``thumbnail`` leaves the
    thumbnail to it)."""


@dataclass(frozen=True)
class HeartbeatReply:
    """What a worker learns from a heartbeat: keep going, stop (the job was cancelled), or
    park it at the next step boundary (a more urgent job needs the worker)."""

    cancel: bool
    lease_expires_at_s: float
    park: bool = False


@dataclass(frozen=True)
class LeaseRefused:
    """A report or heartbeat on a lease that the scheduler refused, answered in place (in a
    ``CompletedAndPulled`` or among ``Heartbeats``' answers) instead of raised: ``code`` is
    the error's (``stale_lease``: the lease lapsed or the job finished; ``not_found``: the
    job was deleted), ``message`` says why."""

    code: str
    message: str


@dataclass(frozen=True)
class CompletedAndPulled:
    """What ``CompleteAndPull`` answers: the committed job (None when refused), why it was
    refused (None when committed), and the worker's next lease (None: nothing fits now)."""

    completed: JobView | None
    refused: LeaseRefused | None
    assignment: Assignment | None


@dataclass(frozen=True)
class TierView:
    name: str
    max_wait_s: float
    weight: float
    shed_ratio: float | None


@dataclass(frozen=True)
class JournalFile:
    """Where the scheduler's journal is, and the identity written into it at its creation: an
    ingress that finds a file of that identity at that path (it runs on the scheduler's node)
    reads finished jobs from it without asking the scheduler (``api/finished_reads.py``)."""

    path: str
    identity: int


@dataclass(frozen=True)
class Limits:
    """Tiers with their SLOs and shedding, each model's request limits, tenant caps per tier,
    and the journal's file (None: the scheduler has none an ingress may read)."""

    tiers: tuple[TierView, ...]
    models: Mapping[str, ModelLimits]
    tenant_limits: Mapping[str, TenantLimits]
    journal: JournalFile | None = None

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


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One job event as the scheduler publishes it once for every event stream: a state
    change (``kind`` "state", with the whole ``view``), a step of progress ("progress") or the
    job's deletion ("deleted"). ``cursor`` orders all jobs' events; it is the stream's ``id:``.
    Pipeline stages may add ``kind`` "stage" with ``stage`` set; readers skip kinds they do not
    know."""

    cursor: int
    job_id: str
    tenant: str
    kind: str
    state: JobState
    progress: Progress
    at_s: float
    view: JobView | None = None
    stage: str | None = None


@dataclass(frozen=True)
class FeedPage:
    """Events after a cursor, oldest first. ``cursor``: ask again after it. ``gap``: the
    cursor asked after is older than the buffer (or from before a restart): events were lost,
    so re-read the state of each job followed."""

    events: tuple[FeedEvent, ...]
    cursor: int
    gap: bool = False


@dataclass(frozen=True)
class JobWatch:
    """A stream opening on one job: the job now, the feed's cursor at that moment (events
    after it are new) and, to resume after ``after``, the job's events since then still in
    the buffer (``gap``: ``after`` is older than the buffer; the view stands in for them)."""

    view: JobView
    cursor: int
    replay: tuple[FeedEvent, ...] = ()
    gap: bool = False
