"""The native wire form of a generation: what ``GET /v1/generations/{id}`` returns and what a
webhook carries as its ``data``.

:func:`generation_view` turns the scheduler's ``JobView`` into it: API paths instead of storage
URIs, no tenant, no lease or worker details. Pure: imports only the scheduler's answers, the
job values and ``typing_extensions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from typing_extensions import TypedDict

from luma_ray.jobs import JobError, JobState
from luma_ray.scheduler.answers import JobView


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
    assets: dict[str, str]
    """Signed, expiring URLs of a succeeded generation's files, readable without the API key
    (``luma_ray.wire.assets``); empty before it succeeds."""
    timings: TimingsOut
    error: ErrorOut | None
    metadata: dict[str, str]
    stage: str | None
    """The pipeline stage it is at (docs/pipelines.md); None without a pipeline."""
    caption: str | None
    """What its caption stage wrote; None until then, or without one."""


def generation_view(
    view: JobView, base: str = "/v1/generations", assets: Mapping[str, str] | None = None
) -> GenerationOut:
    """The native wire form of a job: API URLs instead of storage URIs; ``assets`` are its
    signed asset URLs (shown only once it has succeeded)."""
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
        "assets": dict(assets or {}) if view.state is JobState.SUCCEEDED else {},
        "timings": {
            "created_at": view.created_at_s,
            "started_at": view.started_at_s,
            "finished_at": view.finished_at_s,
            "wait_s": view.wait_s,
        },
        "error": error_out(view.error),
        "metadata": dict(view.metadata),
        "stage": view.stage,
        "caption": view.caption,
    }


def error_out(error: JobError | None) -> ErrorOut | None:
    """A job's error as the API shows it; None when it has none."""
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "retryable": error.retryable}
