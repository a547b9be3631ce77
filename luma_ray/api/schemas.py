"""Wire schemas of the native API: what a client sends, and the pages and answers around a
generation.

The create body becomes the scheduler's ``SubmitRequest`` here (``submit_request``). How one
generation looks (``GenerationOut``, ``generation_view``) lives in ``luma_ray.wire.generation``,
which the webhooks share.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict

from luma_ray.api.keys import Principal
from luma_ray.errors import InvalidRequest
from luma_ray.jobs.request import GenerationInputs
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.wire.generation import GenerationOut

MAX_METADATA_KEYS = 16
_INPUT_CHARS = 2 << 20  # a data: URL fits the 1 MiB body; larger files go through /v1/files


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
    first_frame: str | None = Field(
        default=None,
        max_length=_INPUT_CHARS,
        description="image to start on: file id, data: or http(s) URL",
    )
    last_frame: str | None = Field(
        default=None,
        max_length=_INPUT_CHARS,
        description="image to end on: file id, data: or http(s) URL",
    )
    source_video: str | None = Field(
        default=None,
        max_length=_INPUT_CHARS,
        description="video to transform: file id, data: or http(s) URL, or a generation id",
    )
    strength: float | None = Field(
        default=None, gt=0, le=1, description="with source_video: 0 keeps the source, 1 ignores it"
    )
    extend: str | None = Field(
        default=None, max_length=64, description="id of a succeeded generation to continue"
    )

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


class GenerationPage(TypedDict):
    object: Literal["list"]
    data: list[GenerationOut]
    has_more: bool
    next_after: str | None


class DeletedOut(TypedDict):
    id: str
    object: str
    deleted: bool


def submit_request(
    body: CreateGeneration,
    who: Principal,
    idempotency_key: str | None,
    inputs: GenerationInputs | None = None,
) -> SubmitRequest:
    """The scheduler's request for a create body, as the caller's tenant and tier; ``inputs``
    are the keys the ingress stored the body's checked inputs under (``api.inputs``)."""
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
        inputs=inputs,
    )
