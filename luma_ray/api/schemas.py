"""Wire schemas of the native API: what a client sends, and how a generation looks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


def generation_view(view: dict[str, Any], base: str = "/v1/generations") -> dict[str, Any]:
    """The native wire form of a scheduler view: API URLs instead of storage URIs."""
    job_id = view["id"]
    urls = {
        variant: f"{base}/{job_id}/content?variant={variant}" for variant in view["result_uris"]
    }
    p = view["params"]
    return {
        "id": job_id,
        "object": "generation",
        "state": view["state"],
        "tier": view["tier"],
        "model": view["model"],
        "model_version": view["model_version"],
        "prompt": p["prompt"],
        "request": {k: p[k] for k in ("frames", "width", "height", "fps", "seed", "steps")},
        "queue_position": view.get("queue_position"),
        "eta_s": view.get("eta_s"),
        "slo_used": view.get("slo_used"),
        "progress": view["progress"],
        "attempts": view["attempts"],
        "result_urls": urls,
        "timings": {
            "created_at": view["created_at_s"],
            "started_at": view["started_at_s"],
            "finished_at": view["finished_at_s"],
            "wait_s": view["wait_s"],
        },
        "error": view["error"],
        "metadata": view.get("metadata", {}),
    }
