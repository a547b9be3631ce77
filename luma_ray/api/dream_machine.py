"""Dream Machine-compatible API (``/dream-machine/v1``) over the same core.

The official ``lumaai`` SDK works against it unchanged
(``LumaAI(base_url="http://HOST:8000/dream-machine/v1", auth_token=KEY)``):
``generations.create`` (text-to-video, ``keyframes`` with an image or a previous generation),
``get``, ``list`` (``limit``, ``offset``), ``delete``, ``video.modify`` (video-to-video, its
modes mapped to a strength) and ``callback_url``. Model names map to our models through the
config's table (``RuntimeConfig.dream_machine``), which also says what each resolution and
duration label means; anything a model cannot do is a 400 that says so. Requests are turned
into the native ``CreateGeneration`` and submitted like any other; answers and callbacks are the
SDK's ``Generation`` (``luma_ray.wire.dream_machine``).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from luma_ray.api.assets import asset_links
from luma_ray.api.bodies import parse_json
from luma_ray.api.context import Caller, ports
from luma_ray.api.generations import content_response, delete_job, submit
from luma_ray.api.schemas import CreateGeneration
from luma_ray.config import DreamMachineConfig, DreamModel
from luma_ray.errors import InvalidRequest, NotFound
from luma_ray.scheduler.protocol import GetJob, JobView, ListJobs
from luma_ray.wire.assets import ASSETS_PATH
from luma_ray.wire.dream_machine import API, PREFIX, DreamGeneration, asset_path, dream_generation

MAX_LISTED = 1000
"""``offset + limit`` of a list at most; older generations are listed by the native API."""

MODIFY_STRENGTH = {
    "adhere_1": 0.2,
    "adhere_2": 0.3,
    "adhere_3": 0.4,
    "flex_1": 0.5,
    "flex_2": 0.6,
    "flex_3": 0.7,
    "reimagine_1": 0.8,
    "reimagine_2": 0.9,
    "reimagine_3": 1.0,
}
"""``video.modify`` modes → how far the result may move from the source (0 keeps it)."""

_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")
_OWN_ASSET = re.compile(
    r"^https?://[^/]+(?:"
    + re.escape(PREFIX)
    + r"/generations/(gen_[0-9a-z]{26})/content|"
    + re.escape(ASSETS_PATH)
    + r"/(gen_[0-9a-z]{26})/video)$"
)
_Url = Annotated[str, Field(min_length=1, max_length=1 << 20)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageRef(_Body):
    type: Literal["image"]
    url: _Url


class GenerationRef(_Body):
    type: Literal["generation"]
    id: str = Field(min_length=1, max_length=64)


Keyframe = Annotated[ImageRef | GenerationRef, Field(discriminator="type")]


class Keyframes(_Body):
    frame0: Keyframe | None = None
    frame1: Keyframe | None = None


class CreateVideo(_Body):
    """``generations.create`` / ``generations.video.create``."""

    model: str = Field(max_length=64)
    prompt: str | None = Field(default=None, max_length=2000)
    aspect_ratio: str | None = Field(default=None, max_length=8)
    resolution: str | None = Field(default=None, max_length=16)
    duration: str | None = Field(default=None, max_length=16)
    loop: bool | None = None
    keyframes: Keyframes | None = None
    callback_url: str | None = Field(default=None, max_length=2048)
    generation_type: Literal["video"] | None = None
    concepts: list[dict[str, str]] | None = Field(default=None, max_length=16)


class Media(_Body):
    url: _Url


class ModifyVideo(_Body):
    """``generations.video.modify``."""

    generation_type: Literal["modify_video"]
    media: Media
    mode: str = Field(max_length=16)
    model: str = Field(max_length=64)
    prompt: str | None = Field(default=None, max_length=2000)
    first_frame: Media | None = None
    callback_url: str | None = Field(default=None, max_length=2048)


class GenerationList(BaseModel):
    generations: list[DreamGeneration]
    count: int
    has_more: bool
    limit: int
    offset: int


def video_fields(body: CreateVideo, table: DreamMachineConfig) -> dict[str, object]:
    """The native create fields for a Dream Machine video request; 400s say what to change."""
    entry = _entry(body.model, table)
    if body.concepts:
        raise InvalidRequest("concepts are not supported here; leave them out")
    if body.loop:
        raise InvalidRequest(
            f"loop is not supported by {body.model} here; send loop false or leave it out"
        )
    fields = _common(entry, body.model, body.prompt, body.callback_url)
    fields["size"] = _size(entry, body.model, body.resolution, body.aspect_ratio)
    fields["seconds"] = _seconds(entry, body.model, body.duration)
    frames = body.keyframes or Keyframes()
    if isinstance(frames.frame0, ImageRef):
        fields["first_frame"] = frames.frame0.url
    elif isinstance(frames.frame0, GenerationRef):
        fields["extend"] = frames.frame0.id
    if isinstance(frames.frame1, ImageRef):
        fields["last_frame"] = frames.frame1.url
    elif isinstance(frames.frame1, GenerationRef):
        raise InvalidRequest(
            "keyframes.frame1 as a generation (a video that leads into another) is not "
            "supported; give an image, or extend with frame0"
        )
    return fields


def modify_fields(body: ModifyVideo, table: DreamMachineConfig) -> dict[str, object]:
    """The native create fields for ``video.modify``: video-to-video at the mode's strength."""
    entry = _entry(body.model, table)
    if body.mode not in MODIFY_STRENGTH:
        raise InvalidRequest(f"mode {body.mode!r} is unknown; use one of {list(MODIFY_STRENGTH)}")
    fields = _common(entry, body.model, body.prompt, body.callback_url)
    fields["size"] = _size(entry, body.model, None, None)
    fields["seconds"] = _seconds(entry, body.model, None)
    fields["source_video"] = own_generation(body.media.url) or body.media.url
    fields["strength"] = MODIFY_STRENGTH[body.mode]
    if body.first_frame is not None:
        fields["first_frame"] = body.first_frame.url
    return fields


def own_generation(url: str) -> str | None:
    """The generation id of one of our own asset URLs (``assets.video`` of an earlier answer),
    so that modifying a finished generation reads its video from the store instead of
    fetching it back over HTTP; None for any other URL."""
    match = _OWN_ASSET.search(url.partition("?")[0])
    return (match.group(1) or match.group(2)) if match else None


def _entry(name: str, table: DreamMachineConfig) -> DreamModel:
    entry = table.models.get(name)
    if entry is None:
        raise InvalidRequest(f"model {name!r} is not served here; use one of {list(table.models)}")
    return entry


def _common(
    entry: DreamModel, name: str, prompt: str | None, callback_url: str | None
) -> dict[str, object]:
    if not (prompt or "").strip():
        raise InvalidRequest(f"prompt is required by {name} here; describe the video")
    return {"prompt": prompt, "model": entry.model, "callback_url": callback_url}


def _size(entry: DreamModel, name: str, resolution: str | None, aspect: str | None) -> str:
    """``WxH`` for a resolution label and an aspect ratio (default 16:9)."""
    label = resolution or entry.default_resolution
    if label not in entry.resolutions:
        raise InvalidRequest(
            f"resolution {label!r} is not available for {name} here; use one of "
            f"{list(entry.resolutions)}"
        )
    match = _RATIO.match(aspect or "16:9")
    if not match or not int(match.group(1)) or not int(match.group(2)):
        raise InvalidRequest(f"aspect_ratio {aspect!r} must look like '16:9'")
    across, down = int(match.group(1)), int(match.group(2))
    short, m = entry.resolutions[label], entry.size_multiple
    width, height = (
        (short * across / down, short) if across >= down else (short, short * down / across)
    )
    return f"{max(m, int(width) // m * m)}x{max(m, int(height) // m * m)}"


def _seconds(entry: DreamModel, name: str, duration: str | None) -> float:
    label = duration or entry.default_duration
    if label not in entry.durations:
        raise InvalidRequest(
            f"duration {label!r} is not available for {name} here; use one of "
            f"{list(entry.durations)}"
        )
    return entry.durations[label]


async def _parse(request: Request, shape: type[_Body]) -> tuple[_Body, str]:
    """The body as ``shape`` and as compact JSON (what answers echo); 400 naming the field."""
    try:
        data = parse_json(await request.body())
    except ValueError:
        raise InvalidRequest("send the body as a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the JSON body must be an object")
    try:
        parsed = shape.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None
    return parsed, json.dumps(data, sort_keys=True, separators=(",", ":"))


def _answer(request: Request, view: JobView) -> DreamGeneration:
    """``view`` as the SDK's Generation: its assets at signed URLs (``/v1/assets``), or, in a
    deployment without an asset secret, at this API's content route (read with the key)."""
    base = str(request.base_url).rstrip("/")
    links = asset_links(ports(request), request, view)
    return dream_generation(view, links, lambda job_id, variant: base + asset_path(job_id, variant))


def add_routes(app: FastAPI) -> None:
    async def create(
        request: Request, who: Caller, fields: dict[str, object], echo: str, key: str | None
    ) -> DreamGeneration:
        try:
            body = CreateGeneration(**fields)  # type: ignore[arg-type]
        except ValidationError as err:
            first = err.errors()[0]
            raise InvalidRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        view = await submit(ports(request), who, body, key, api=API, api_request=echo)
        return _answer(request, view)

    async def create_video(
        request: Request, who: Caller, idempotency_key: Annotated[str | None, Header()] = None
    ) -> DreamGeneration:
        body, echo = await _parse(request, CreateVideo)
        table = ports(request).settings.dream_machine
        fields = video_fields(body, table)  # type: ignore[arg-type]
        return await create(request, who, fields, echo, idempotency_key)

    app.post(f"{PREFIX}/generations", status_code=201, tags=["dream-machine"])(create_video)
    app.post(f"{PREFIX}/generations/video", status_code=201, tags=["dream-machine"])(create_video)

    @app.post(f"{PREFIX}/generations/video/modify", status_code=201, tags=["dream-machine"])
    async def modify_video(
        request: Request, who: Caller, idempotency_key: Annotated[str | None, Header()] = None
    ) -> DreamGeneration:
        body, echo = await _parse(request, ModifyVideo)
        table = ports(request).settings.dream_machine
        fields = modify_fields(body, table)  # type: ignore[arg-type]
        return await create(request, who, fields, echo, idempotency_key)

    @app.post(f"{PREFIX}/generations/image", tags=["dream-machine"])
    async def create_image(who: Caller) -> None:
        raise InvalidRequest(
            "no model on this deployment makes images; use /generations/video for video"
        )

    @app.get(f"{PREFIX}/generations/{{job_id}}", tags=["dream-machine"])
    async def get_generation(request: Request, job_id: str, who: Caller) -> DreamGeneration:
        return _answer(request, await ports(request).scheduler.call(GetJob(job_id, who.tenant)))

    @app.get(f"{PREFIX}/generations", tags=["dream-machine"])
    async def list_generations(
        request: Request,
        who: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        offset: Annotated[int, Query(ge=0, le=MAX_LISTED)] = 0,
    ) -> GenerationList:
        if offset + limit > MAX_LISTED:
            raise InvalidRequest(f"offset + limit must be at most {MAX_LISTED}")
        scheduler = ports(request).scheduler
        views = await scheduler.call(ListJobs(who.tenant, None, offset + limit + 1, None))
        page = [_answer(request, v) for v in views[offset : offset + limit]]
        return GenerationList(
            generations=page,
            count=len(page),
            has_more=len(views) > offset + limit,
            limit=limit,
            offset=offset,
        )

    @app.delete(f"{PREFIX}/generations/{{job_id}}", status_code=204, tags=["dream-machine"])
    async def delete_generation(request: Request, job_id: str, who: Caller) -> Response:
        await delete_job(ports(request), job_id, who.tenant)
        return Response(status_code=204)

    @app.get(f"{PREFIX}/generations/{{job_id}}/content", tags=["dream-machine"])
    async def generation_content(
        request: Request,
        job_id: str,
        who: Caller,
        variant: Annotated[str, Query(pattern="^(video|thumbnail)$")] = "video",
    ) -> Response:
        return await content_response(ports(request), job_id, who.tenant, variant)

    @app.get(f"{PREFIX}/ping", tags=["dream-machine"])
    async def ping() -> dict[str, str]:
        return {"message": "pong"}

    # Last: what the SDK can call that is not served here (credits, upscale, audio, concepts,
    # camera motions, reframe) is a 404 that says so and lists what is.
    @app.api_route(
        f"{PREFIX}/{{rest:path}}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def not_served(request: Request, rest: str) -> None:
        raise NotFound(
            f"{request.method} {PREFIX}/{rest[:200]} is not part of the Dream Machine API "
            f"served here; it serves {', '.join(SERVED)}"
        )


SERVED = (
    "POST /generations (or /generations/video)",
    "POST /generations/video/modify",
    "GET /generations",
    "GET /generations/{id}",
    "GET /generations/{id}/content",
    "DELETE /generations/{id}",
    "GET /ping",
)
"""The routes of this API, as the 404 of any other names them (without the prefix)."""
