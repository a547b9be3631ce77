"""Turning a client's request into a job: validation against tiers and model limits.

Called by the scheduler service for every submit, before anything is queued.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from luma_ray.errors import InvalidRequest
from luma_ray.jobs import Job, TenantId, new_job_id
from luma_ray.jobs.model import EMPTY
from luma_ray.jobs.request import (
    MAX_FPS,
    MAX_SEED,
    GenerationRequest,
    ModelLimits,
    validate_name,
    validate_request,
)
from luma_ray.scheduler.requests import SubmitRequest
from luma_ray.scheduler.sizes import resolve_size
from luma_ray.scheduler.tiers import TierSpec

_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@:")


def make_job(
    request: SubmitRequest,
    tiers: Mapping[str, TierSpec],
    models: Mapping[str, ModelLimits],
    now: float,
    check_pin: Callable[[str, str], None] | None = None,
) -> Job:
    """Validate a request against the tiers and the model's limits and build its job.

    Raises ``InvalidRequest`` naming what to fix; fixes the seed (random if none was given,
    so that retries generate the same video) and the step count. A request for
    ``model@version`` is checked with ``check_pin`` (which raises if no worker can run that
    version) and queued as its own model, ``name@version``: only workers running that version
    pull it.
    """
    if request.tier not in tiers:
        raise InvalidRequest(f"unknown tier {request.tier!r}; use one of {', '.join(tiers)}")
    if (
        not request.tenant
        or len(request.tenant) > 128
        or not set(request.tenant) <= (_TENANT_CHARS)
    ):
        raise InvalidRequest("tenant must be 1-128 characters of letters, digits, -_.@:")
    model, _, version = request.model.partition("@")
    limits = models.get(model)
    if limits is None:
        known = ", ".join(sorted(models)) or "none"
        raise InvalidRequest(f"unknown model {model!r}; available: {known}")
    if version:
        validate_name(version, what="version")
        if check_pin is None:
            raise InvalidRequest(
                f"model {model} is not served from the model repository; drop '@{version}'"
            )
        check_pin(model, version)
    fps = request.fps if request.fps is not None else limits.default_fps
    width, height = resolve_size(request.size, request.aspect_ratio, limits)
    if request.frames is not None and request.seconds is not None:
        raise InvalidRequest("give either frames or seconds, not both")
    frames = request.frames if request.frames is not None else limits.default_frames
    if request.seconds is not None:
        frames = frames_for_seconds(request.seconds, fps, limits, model)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"seed must be between 0 and {MAX_SEED}")
    params = GenerationRequest(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        frames=frames,
        height=height,
        width=width,
        fps=fps,
        seed=seed,
        steps=request.steps if request.steps is not None else limits.default_steps,
        inputs=request.inputs,
    )
    validate_request(params, limits)
    return Job(
        id=new_job_id(now),
        tenant=TenantId(request.tenant),
        tier=request.tier,
        model=f"{model}@{version}" if version else model,
        model_version=version or None,
        params=params,
        created_at_s=now,
        enqueued_at_s=now,
        metadata=dict(request.metadata) if request.metadata else EMPTY,
        callback_url=request.callback_url,
        api=request.api,
        api_request=request.api_request,
    )


def frames_for_seconds(seconds: float, fps: int, limits: ModelLimits, model: str) -> int:
    """The frame count the model takes that comes closest to ``seconds`` at ``fps``.

    A duration is approximate where a frame count is not: a model whose frame counts must be
    ``frame_step * k + 1`` (a video VAE's) gets the nearest such count, so ``seconds: 4`` works
    on every model. Raises ``InvalidRequest`` in seconds, the unit the caller used, when the
    model cannot make a video that long (or ``fps`` is out of range: ``validate_request``)."""
    if not 0 < seconds <= 600:
        raise InvalidRequest("seconds must be greater than 0 and at most 600")
    exact = max(1, round(seconds * fps))
    step = limits.frame_step
    longest = (limits.max_frames - 1) // step * step + 1  # the most frames the model takes
    if 1 <= fps <= MAX_FPS and exact > longest + step // 2:
        raise InvalidRequest(
            f"seconds is {seconds:g}, {exact} frames at {fps} fps; {model} makes at most "
            f"{longest} frames ({longest / fps:.3g} s at {fps} fps): ask for fewer seconds"
        )
    if step <= 1:
        return exact
    return min(longest, max(1, round((exact - 1) / step) * step + 1))
