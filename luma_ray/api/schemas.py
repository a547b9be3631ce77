"""Wire schemas of the native API: what a client sends, and how a generation looks.

The create body becomes the scheduler's ``SubmitRequest`` here (``submit_request``); the
scheduler's ``JobView`` becomes the native wire form here (``generation_view``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict

from luma_ray.api.keys import Principal
from luma_ray.errors import InvalidRequest
from luma_ray.jobs import JobError
from luma_ray.scheduler.protocol import JobView, SubmitRequest

MAX_METADATA_KEYS = 16


class ModelAction(BaseModel):
    """Body of ``POST /v1/admin/models/{name}/promote``."""

    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(default=None, max_length=63, description="version to promote")
    max_unavailable: str | None = Field(
        default=None, max_length=8, description="share of each pool swapping at once: 25% or 1"
    )


class CreateGeneration(BaseModel):
    """``POST /v1/generations`` body."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=2000, description="What the video shows.")
    negative_prompt: str = Field(default="", max_length=2000)
    model: str = Field(default="luma-tiny", max_length=128, description="name or name@version")
    seconds: float | None = Field(default=None, gt=0, le=600)
    frames: int | None = Field(default=None, ge=1, le=10_000)
    size: str | None = Field(default=None, max_length=16, description="WIDTHxHEIGHT")
    aspect_ratio: str | None = Field(default=None, max_length=8, description="e.g. 16:9")
    fps: int | None = Field(default=None, ge=1, le=60)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    steps: int | None = Field(default=None, ge=1, le=1000)
    callback_url: str | None = Field(default=None, max_length=2048)
    metadata: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
        for k, v in value.items():
            if not 1 <= len(k) <= 64 or len(v) > 512:
                raise ValueError("metadata keys are 1-64 characters, values at most 512")
        return value


class ProgressOut(TypedDict):
    phase: str
    step: int
    total: int


class ErrorOut(TypedDict):
    code: str
    message: str
    retryable: bool


class RequestOut(TypedDict):
    """What the model was asked for, every default resolved."""

    frames: int
    width: int
    height: int
    fps: int
    seed: int
    steps: int


class TimingsOut(TypedDict):
    created_at: float
    started_at: float | None
    finished_at: float | None
    wait_s: float


class GenerationOut(TypedDict):
    """A generation as the native API shows it."""

    id: str
    object: Literal["generation"]
    state: str
    tier: str
    model: str
    model_version: str | None
    prompt: str
    request: RequestOut
    queue_position: int | None
    eta_s: float | None
    slo_used: float
    progress: ProgressOut
    attempts: int
    result_urls: dict[str, str]
    timings: TimingsOut
    error: ErrorOut | None
    metadata: dict[str, str]


class GenerationPage(TypedDict):
    object: Literal["list"]
    data: list[GenerationOut]
    has_more: bool
    next_after: str | None


class DeletedOut(TypedDict):
    id: str
    object: str
    deleted: bool


def generation_view(view: JobView, base: str = "/v1/generations") -> GenerationOut:
    """The native wire form of a job: API URLs instead of storage URIs."""
    urls = {variant: f"{base}/{view.id}/content?variant={variant}" for variant in view.result_uris}
    p = view.params
    return {
        "id": view.id,
        "object": "generation",
        "state": view.state.value,
        "tier": view.tier,
        "model": view.model,
        "model_version": view.model_version,
        "prompt": p.prompt,
        "request": {
            "frames": p.frames,
            "width": p.width,
            "height": p.height,
            "fps": p.fps,
            "seed": p.seed,
            "steps": p.steps,
        },
        "queue_position": view.queue_position,
        "eta_s": view.eta_s,
        "slo_used": view.slo_used,
        "progress": {
            "phase": view.progress.phase,
            "step": view.progress.step,
            "total": view.progress.total,
        },
        "attempts": view.attempts,
        "result_urls": urls,
        "timings": {
            "created_at": view.created_at_s,
            "started_at": view.started_at_s,
            "finished_at": view.finished_at_s,
            "wait_s": view.wait_s,
        },
        "error": error_out(view.error),
        "metadata": dict(view.metadata),
    }


def error_out(error: JobError | None) -> ErrorOut | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "retryable": error.retryable}


def submit_request(
    body: CreateGeneration, who: Principal, idempotency_key: str | None
) -> SubmitRequest:
    """The scheduler's request for a create body, as the caller's tenant and tier."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1-255 characters")
    return SubmitRequest(
        prompt=body.prompt,
        model=body.model,
        tier=who.tier,
        tenant=who.tenant,
        negative_prompt=body.negative_prompt,
        frames=body.frames,
        size=body.size,
        aspect_ratio=body.aspect_ratio,
        fps=body.fps,
        seed=body.seed,
        steps=body.steps,
        seconds=body.seconds,
        metadata=tuple(sorted((body.metadata or {}).items())),
        callback_url=body.callback_url,
        idempotency_key=idempotency_key,
    )
