"""The native generations API (``/v1/generations``), and the pieces the OpenAI-compatible
routes share with it: submitting, serving a result's bytes, deleting a job's results.

Routes act as the key's tenant and tier and never show one tenant another tenant's jobs (404,
as if absent).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from luma_ray.api.context import Caller, Ports, ports
from luma_ray.api.keys import Principal
from luma_ray.api.schemas import CreateGeneration, DeletedOut, GenerationPage, submit_request
from luma_ray.errors import NotFound
from luma_ray.notify.targets import validate_callback_url
from luma_ray.scheduler.protocol import (
    CancelJob,
    DeleteJob,
    GetJob,
    JobView,
    ListJobs,
    Submit,
)
from luma_ray.storage.keys import results_prefix
from luma_ray.wire.generation import GenerationOut, generation_view


async def submit(
    p: Ports, who: Principal, body: CreateGeneration, idempotency_key: str | None
) -> JobView:
    """Validate what the ingress can check alone, then one call to the scheduler."""
    if body.callback_url is not None:
        validate_callback_url(body.callback_url, allow_private=p.settings.allow_private_callbacks)
    return await p.scheduler.call(Submit(submit_request(body, who, idempotency_key)))


async def content_response(p: Ports, job_id: str, tenant: str, variant: str) -> Response:
    """The bytes of a finished job's ``video``, ``thumbnail`` or ``spritesheet`` (from a
    pipeline's thumbnail stage)."""
    view = await p.scheduler.call(GetJob(job_id, tenant))
    if view.state != "succeeded":
        raise NotFound(f"generation {view.id} has no content yet (it is {view.state.value})")
    uri = view.result_uris.get(variant)
    if uri is None:
        raise NotFound(f"generation {view.id} has no {variant!r}; try video or thumbnail")
    base = p.store.uri.rstrip("/") + "/"
    if not uri.startswith(base):
        raise NotFound(f"generation {view.id}: its {variant} is not in this store")
    data = await asyncio.to_thread(p.store.get_bytes, uri[len(base) :])
    media = "video/mp4" if variant == "video" else "image/png"
    filename = f"{view.id}.{'mp4' if variant == 'video' else 'png'}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def delete_job(p: Ports, job_id: str, tenant: str) -> JobView:
    """Forget the job, then its stored results."""
    view = await p.scheduler.call(DeleteJob(job_id, tenant))

    def purge() -> None:
        for key in p.store.list(results_prefix(view.id)):
            p.store.delete(key)

    await asyncio.to_thread(purge)
    return view


def add_routes(app: FastAPI) -> None:
    @app.post("/v1/generations", status_code=201)
    async def create_generation(
        request: Request,
        body: CreateGeneration,
        who: Caller,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> GenerationOut:
        """Queue a generation; the same Idempotency-Key and body return the same job."""
        return generation_view(await submit(ports(request), who, body, idempotency_key))

    @app.get("/v1/generations/{job_id}")
    async def get_generation(request: Request, job_id: str, who: Caller) -> GenerationOut:
        return generation_view(await ports(request).scheduler.call(GetJob(job_id, who.tenant)))

    @app.get("/v1/generations")
    async def list_generations(
        request: Request,
        who: Caller,
        state: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> GenerationPage:
        views = await ports(request).scheduler.call(ListJobs(who.tenant, state, limit + 1, after))
        page = [generation_view(v) for v in views[:limit]]
        return {
            "object": "list",
            "data": page,
            "has_more": len(views) > limit,
            "next_after": page[-1]["id"] if len(views) > limit else None,
        }

    @app.post("/v1/generations/{job_id}/cancel")
    async def cancel_generation(request: Request, job_id: str, who: Caller) -> GenerationOut:
        view = await ports(request).scheduler.call(CancelJob(job_id, who.tenant))
        return generation_view(view)

    @app.delete("/v1/generations/{job_id}")
    async def delete_generation(request: Request, job_id: str, who: Caller) -> DeletedOut:
        view = await delete_job(ports(request), job_id, who.tenant)
        return {"id": view.id, "object": "generation.deleted", "deleted": True}

    @app.get("/v1/generations/{job_id}/content")
    async def generation_content(
        request: Request,
        job_id: str,
        who: Caller,
        variant: Annotated[str, Query(pattern="^(video|thumbnail|spritesheet)$")] = "video",
    ) -> Response:
        return await content_response(ports(request), job_id, who.tenant, variant)

    @app.get("/v1/generations/{job_id}/events")
    async def generation_events(request: Request, job_id: str, who: Caller) -> Response:
        """Server-sent events: ``progress`` on every step, ``state`` on every state change,
        ending after a final state."""
        p = ports(request)
        first = await p.scheduler.call(GetJob(job_id, who.tenant))  # 404 before the stream
        close = p.streams.open(who.tenant)  # 429 before the stream, past the tenant's limit
        return _SlotStream(
            _events(p, job_id, who.tenant, first, request),
            close,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


class _SlotStream(StreamingResponse):
    """A stream that gives back its tenant's stream slot when it ends, however it ends
    (finished, client gone, cancelled, failed)."""

    def __init__(self, content: AsyncIterator[bytes], close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._close = close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


async def _events(
    p: Ports, job_id: str, tenant: str, first: JobView, request: Request
) -> AsyncIterator[bytes]:
    last: tuple[str, int] | None = None
    view = first
    deadline = time.monotonic() + p.settings.sse_timeout_s
    while True:
        mark = (view.state.value, view.progress.step)
        if mark != last:
            if last is None or mark[0] != last[0]:
                yield _sse("state", {"id": job_id, "state": view.state.value})
            if view.progress.total:
                yield _sse("progress", {"id": job_id, **asdict(view.progress)})
            last = mark
        if view.done or time.monotonic() > deadline:
            yield _sse("done", generation_view(view))
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(p.settings.sse_poll_s)  # the stream's polling interval
        try:
            view = await p.scheduler.call(GetJob(job_id, tenant))
        except NotFound:
            yield _sse("state", {"id": job_id, "state": "deleted"})
            return


def _sse(event: str, data: Mapping[str, object]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
