"""A generation as the Dream Machine API shows it: the ``Generation`` object of the ``lumaai``
SDK, for ``/dream-machine/v1`` answers and for callbacks of jobs submitted there.

Pure: the scheduler's ``JobView`` in, plain JSON types out. Asset URLs come from the caller
(the signed links of ``luma_ray.wire.assets``, or a fallback), because only the ingress knows
the public address and the signing secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Literal

from typing_extensions import TypedDict

from luma_ray.scheduler.answers import JobView

API = "dream-machine"
"""``JobView.api`` of jobs submitted through the Dream Machine-compatible API."""

AssetUrl = Callable[[str, str], str]
"""``(job_id, variant) -> URL`` of a finished job's asset (``video``, ``thumbnail``), for
variants ``links`` does not name."""

PREFIX = "/dream-machine/v1"
"""Where the API is served."""


def asset_path(job_id: str, variant: str) -> str:
    """The API path of a finished job's asset (read with the tenant's key)."""
    return f"{PREFIX}/generations/{job_id}/content?variant={variant}"


_STATE = {
    "queued": "queued",
    "leased": "queued",
    "running": "dreaming",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
}


class AssetsOut(TypedDict):
    video: str | None
    image: str | None
    progress_video: str | None


class DreamGeneration(TypedDict):
    """The SDK's ``Generation``."""

    id: str
    generation_type: Literal["video", "image"]
    state: str
    failure_reason: str | None
    created_at: str
    assets: AssetsOut | None
    model: str
    request: dict[str, object]


def dream_state(state: str) -> str:
    """Our job state as a Dream Machine state: queued, dreaming, completed or failed."""
    return _STATE[state]


def dream_generation(
    view: JobView, links: Mapping[str, str], fallback: AssetUrl | None = None
) -> DreamGeneration:
    """``view`` as a Dream Machine ``Generation``; ``request`` echoes what the client sent.
    Asset URLs are ``links`` (variant → URL), else ``fallback(job_id, variant)``."""

    def asset_url(job_id: str, variant: str) -> str | None:
        if variant in links:
            return links[variant]
        return fallback(job_id, variant) if fallback is not None else None

    request = _echo(view)
    state = view.state.value
    failure = None
    if state == "failed":
        failure = view.error.message if view.error else "the generation failed"
    elif state == "cancelled":
        failure = "the generation was cancelled"
    assets: AssetsOut | None = None
    if state == "succeeded":
        assets = {
            "video": asset_url(view.id, "video") if "video" in view.result_uris else None,
            "image": asset_url(view.id, "thumbnail") if "thumbnail" in view.result_uris else None,
            "progress_video": None,
        }
    return {
        "id": view.id,
        "generation_type": "video",
        "state": dream_state(state),
        "failure_reason": failure,
        "created_at": _iso(view.created_at_s),
        "assets": assets,
        "model": str(request.get("model") or view.model),
        "request": request,
    }


def _echo(view: JobView) -> dict[str, object]:
    """The request as the client sent it, or (a job from another API) what it asked for."""
    if view.api_request:
        try:
            sent = json.loads(view.api_request)
        except ValueError:
            sent = None
        if isinstance(sent, dict):
            return sent
    return {"generation_type": "video", "prompt": view.params.prompt, "model": view.model}


def _iso(seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC with a ``Z``, as the Dream Machine API writes times."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
