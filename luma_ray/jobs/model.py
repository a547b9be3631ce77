"""The job record: what was asked, by whom, and where it stands (docs/architecture.md)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType, NoReturn

from luma_ray.jobs.request import GenerationRequest
from luma_ray.jobs.stages import stage_queue
from luma_ray.jobs.states import JobState

JobId = NewType("JobId", str)
TenantId = NewType("TenantId", str)
WorkerId = NewType("WorkerId", str)

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_job_id(now_s: float, random_bytes: bytes | None = None) -> JobId:
    """A sortable, unguessable id: 48 bits of milliseconds, then 80 random bits, base32.

    Ids sort by creation time (``now_s``, seconds since the epoch, passed in by the caller);
    the random part makes them impossible to guess. Tests pass ``random_bytes`` to make ids
    deterministic.
    """
    ms = int(now_s * 1000)
    rnd = random_bytes if random_bytes is not None else secrets.token_bytes(10)
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(rnd[:10], "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return JobId("gen_" + "".join(reversed(chars)))


class _SharedEmpty(dict[str, Any]):
    """The one empty mapping that every job's unset ``result_uris``, ``metadata`` and
    ``stage_attempts`` share (a queued job would otherwise hold three empty dicts, 192 bytes).
    It refuses writes: code that changes a job's mapping assigns a new one."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a job's shared empty mapping is read-only; assign a new dict")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _refuse


EMPTY: Mapping[str, Any] = _SharedEmpty()


def _empty() -> Mapping[str, Any]:
    return EMPTY


@dataclass(slots=True)
class Lease:
    """A worker's claim on a job. ``token`` fences off late reports from older leases."""

    worker: WorkerId
    cluster: str
    expires_at_s: float
    token: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a job stands: ``phase`` (queued, running, done…) and sampler step of total.
    Immutable, so every queued job shares ``QUEUED`` (a queued job costs no Progress)."""

    phase: str = "queued"
    step: int = 0
    total: int = 0

    def finished(self) -> Progress:
        """Done with all of its steps, whichever step the last heartbeat reported (beats come
        between steps, and a short stage can end before it reports its last)."""
        return Progress("done", self.total or self.step, self.total)


QUEUED = Progress()


@dataclass(frozen=True)
class JobError:
    """Why a job failed; ``retryable`` errors go back to the queue while attempts remain."""

    code: str
    message: str
    retryable: bool = False


@dataclass(slots=True)
class Job:
    """One generation request and its life. Only :func:`transition` changes ``state``."""

    id: JobId
    tenant: TenantId
    tier: str
    model: str
    params: GenerationRequest
    """What the model is asked for, every default resolved at intake."""
    created_at_s: float
    enqueued_at_s: float
    model_version: str | None = None
    state: JobState = JobState.QUEUED
    attempts: int = 1
    """The attempt in progress or next: 1 at submit, +1 on every requeue."""
    lease: Lease | None = None
    progress: Progress = QUEUED
    result_uris: Mapping[str, str] = field(default_factory=_empty)
    error: JobError | None = None
    finished_at_s: float | None = None
    cancel_requested: bool = False
    history: tuple[tuple[float, JobState, str], ...] = ()
    """Every state change as (time, state, reason), oldest first; a tuple, so a queued job
    that has none shares the empty one (``transition`` makes a longer one)."""
    metadata: Mapping[str, str] = field(default_factory=_empty)
    """Caller's labels, returned as given (at most 16 keys; the ingress checks sizes)."""
    callback_url: str | None = None
    """Webhook target for state changes, validated at the ingress."""
    idempotency_key: str | None = None
    request_hash: str | None = None
    """With ``idempotency_key``: a retried submit with the same body returns this job."""
    resume_uri: str | None = None
    """Where the sampler state of its last park is (the result store, under the job's
    results); the next lease resumes from it. None: it starts from its first step."""
    preemptions: int = 0
    """How many times it was parked at a step boundary for a more urgent job."""
    parked_at_s: float | None = None
    """When it was last parked (a job is not parked again too soon)."""
    api: str = "native"
    """The API it was submitted through (``native``, ``openai``, ``dream-machine``); its
    webhooks take that API's shape."""
    api_request: str | None = None
    """The request as that API received it (JSON), for APIs that echo it (Dream Machine)."""
    stages: tuple[str, ...] = ()
    """Its pipeline (docs/pipelines.md), e.g. generate, qa, caption, thumbnail; empty: the
    model alone, as before pipelines."""
    stage: str | None = None
    """The stage it is queued for or running (None without a pipeline)."""
    stage_attempts: Mapping[str, int] = field(default_factory=_empty)
    """Attempts each finished stage took (``attempts`` counts the current stage's)."""
    regenerations: int = 0
    """Videos the QA stage rejected; each went back to ``generate`` with ``seed + 1``."""
    caption: str | None = None
    """What the caption stage wrote."""

    def share_empty_maps(self) -> Job:
        """Point empty mappings at :data:`EMPTY` (after decoding, which makes fresh ones)."""
        if not self.result_uris:
            self.result_uris = EMPTY
        if not self.metadata:
            self.metadata = EMPTY
        if not self.stage_attempts:
            self.stage_attempts = EMPTY
        return self

    @property
    def queue(self) -> str:
        """The queue key its current stage waits in (``stages.stage_queue``)."""
        return stage_queue(self.model, self.stage)
