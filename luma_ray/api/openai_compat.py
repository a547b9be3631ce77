"""OpenAI-compatible videos API (``/v1/videos``) over the same core.

The official ``openai`` package's ``client.videos.create``, ``create_and_poll``, ``retrieve``,
``list``, ``delete``, ``remix`` (video-to-video of a completed video) and ``download_content``
work against it unchanged. Sizes the OpenAI API
knows (``1280x720``…) keep their aspect ratio and are scaled to what the model can make.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from typing_extensions import TypedDict

from luma_ray.api.bodies import parse_json
from luma_ray.api.context import Caller, ports
from luma_ray.api.forms import parse_form
from luma_ray.api.generations import content_response, delete_job, submit
from luma_ray.api.schemas import CreateGeneration, DeletedOut
from luma_ray.errors import InvalidRequest
from luma_ray.scheduler.protocol import GetJob, JobView, ListJobs

REMIX_STRENGTH = 0.6
"""How far a remix may move from its source (0 keeps it, 1 ignores it): the new prompt
changes content and colours, the source's layout and motion mostly stay."""

_STATUS = {
    "queued": "queued",
    "leased": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
}


class VideoError(TypedDict):
    code: str
    message: str


class VideoOut(TypedDict):
    """An OpenAI ``Video`` object."""

    id: str
    object: Literal["video"]
    created_at: int
    completed_at: int | None
    expires_at: int | None
    status: str
    model: str
    progress: int
    prompt: str
    seconds: str
    size: str
    error: VideoError | None
    remixed_from_video_id: str | None


class VideoPage(TypedDict):
    object: Literal["list"]
    data: list[VideoOut]
    has_more: bool
    first_id: str | None
    last_id: str | None


def video_object(view: JobView) -> VideoOut:
    """A job as an OpenAI ``Video``."""
    p, progress = view.params, view.progress
    if view.state == "succeeded":
        percent = 100
    elif progress.total:
        percent = min(99, int(100 * progress.step / progress.total))
    else:
        percent = 0
    error: VideoError | None = None
    if view.state == "failed":
        code, message = (view.error.code, view.error.message) if view.error else ("failed", "")
        error = {"code": code, "message": message or "generation failed"}
    elif view.state == "cancelled":
        error = {"code": "cancelled", "message": "the generation was cancelled"}
    return {
        "id": view.id,
        "object": "video",
        "created_at": int(view.created_at_s),
        "completed_at": int(view.finished_at_s) if view.finished_at_s else None,
        "expires_at": None,
        "status": _STATUS[view.state.value],
        "model": view.model,
        "progress": percent,
        "prompt": p.prompt,
        "seconds": f"{p.frames / p.fps:g}",
        "size": f"{p.width}x{p.height}",
        "error": error,
        "remixed_from_video_id": _remixed_from(view),
    }


def _remixed_from(view: JobView) -> str | None:
    """The video a remix was made from (its request as this API received it says)."""
    if view.api != "openai" or not view.api_request:
        return None
    try:
        sent = json.loads(view.api_request)
    except ValueError:
        return None
    source = sent.get("remixed_from_video_id") if isinstance(sent, dict) else None
    return source if isinstance(source, str) else None


_FIELDS = ("prompt", "model", "seconds", "size", "input_reference")
"""``input_reference`` (the image the video starts on) is a file part, or text: a file id from
``/v1/files``, a ``data:`` URL or an http(s) URL. It becomes the native ``first_frame``."""


async def _body(request: Request) -> CreateGeneration:
    """The create body as multipart form (what the SDK sends), urlencoded form or JSON."""
    ctype = request.headers.get("content-type", "")
    raw = await request.body()  # BodyLimit has read it already: at most MAX_BODY_BYTES
    fields: dict[str, object]
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = parse_form(raw, ctype, keep_files=frozenset({"input_reference"}))
        others = [name for name in form.files if name not in form.kept]
        if others:
            raise InvalidRequest(
                f"file field(s) {', '.join(others)} are not accepted; "
                f"send text fields {', '.join(_FIELDS)} and the file input_reference"
            )
        fields = dict(form.fields)
        if "input_reference" in form.kept:  # the image to start on, as the SDK uploads it
            data = base64.b64encode(form.kept["input_reference"]).decode()
            fields["input_reference"] = f"data:application/octet-stream;base64,{data}"
    else:
        try:
            fields = parse_json(raw)
        except ValueError:
            raise InvalidRequest("send the body as multipart/form-data or JSON") from None
        if not isinstance(fields, dict):
            raise InvalidRequest("the JSON body must be an object")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"unsupported field(s) {', '.join(unknown)}; send {', '.join(_FIELDS)}"
        )
    if "prompt" not in fields:
        raise InvalidRequest("prompt is required")
    for name, value in fields.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidRequest(f"{name} must be a string or a number")
    seconds = fields.get("seconds")
    try:
        return CreateGeneration(
            prompt=str(fields["prompt"]),
            model=str(fields.get("model") or "luma-tiny"),
            seconds=float(str(seconds)) if seconds not in (None, "") else 2.0,
            size=str(fields["size"]) if fields.get("size") else None,
            first_frame=str(fields["input_reference"]) if fields.get("input_reference") else None,
        )
    except (ValueError, ValidationError) as err:
        first = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
        raise InvalidRequest(f"invalid video request: {first}") from None


def add_routes(app: FastAPI) -> None:
    @app.post("/v1/videos", tags=["openai"])
    async def create_video(
        request: Request, who: Caller, idempotency_key: Annotated[str | None, Header()] = None
    ) -> VideoOut:
        body = await _body(request)
        try:
            return video_object(await submit(ports(request), who, body, idempotency_key))
        except InvalidRequest as err:  # TooLarge too: name the field this API calls it
            if str(err).startswith("first_frame"):
                text = "input_reference" + str(err)[len("first_frame") :]
                raise type(err)(
                    text.replace("take first_frame", "take an input_reference")
                ) from None
            raise

    @app.post("/v1/videos/{video_id}/remix", tags=["openai"])
    async def remix_video(
        request: Request,
        video_id: str,
        who: Caller,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> VideoOut:
        """Video-to-video of a completed video of the caller's, under a new prompt."""
        p = ports(request)
        source = await p.scheduler.call(GetJob(video_id, who.tenant))  # 404 if not theirs
        try:
            fields = parse_json(await request.body())
        except ValueError:
            raise InvalidRequest('send the body as JSON: {"prompt": ...}') from None
        if not isinstance(fields, dict) or set(fields) - {"prompt"} or "prompt" not in fields:
            raise InvalidRequest('the remix body is {"prompt": "..."} and nothing else')
        if not isinstance(fields["prompt"], str):
            raise InvalidRequest("prompt must be a string")
        params = source.params
        try:
            body = CreateGeneration(
                prompt=fields["prompt"],
                model=source.model,
                frames=params.frames,
                size=f"{params.width}x{params.height}",
                fps=params.fps,
                source_video=source.id,
                strength=REMIX_STRENGTH,
            )
        except ValidationError as err:
            raise InvalidRequest(f"invalid remix request: {err.errors()[0]['msg']}") from None
        echo = json.dumps({"remixed_from_video_id": source.id})
        view = await submit(p, who, body, idempotency_key, api="openai", api_request=echo)
        return video_object(view)

    @app.get("/v1/videos/{video_id}", tags=["openai"])
    async def retrieve_video(request: Request, video_id: str, who: Caller) -> VideoOut:
        return video_object(await ports(request).scheduler.call(GetJob(video_id, who.tenant)))

    @app.get("/v1/videos", tags=["openai"])
    async def list_videos(
        request: Request,
        who: Caller,
        after: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    ) -> VideoPage:
        views = await ports(request).scheduler.call(
            ListJobs(who.tenant, None, limit + 1, after, order)
        )
        data = [video_object(v) for v in views[:limit]]
        return {
            "object": "list",
            "data": data,
            "has_more": len(views) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    @app.delete("/v1/videos/{video_id}", tags=["openai"])
    async def delete_video(request: Request, video_id: str, who: Caller) -> DeletedOut:
        view = await delete_job(ports(request), video_id, who.tenant)
        return {"id": view.id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/videos/{video_id}/content", tags=["openai"])
    async def video_content(
        request: Request,
        video_id: str,
        who: Caller,
        variant: Annotated[str, Query(pattern="^(video|thumbnail|spritesheet)$")] = "video",
    ) -> Response:
        return await content_response(ports(request), video_id, who.tenant, variant)
