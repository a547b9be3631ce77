"""The native generations API (``/v1/generations``), and the pieces the OpenAI-compatible
routes share with it: submitting, serving a result's bytes, deleting a job's results.

Routes act as the key's tenant and tier and never show one tenant another tenant's jobs (404,
as if absent).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response

from luma_ray.api import streams
from luma_ray.api.assets import present, stored_key
from luma_ray.api.context import Caller, Ports, ports
from luma_ray.api.inputs import delete_keys, input_keys, store_inputs
from luma_ray.api.keys import Principal
from luma_ray.api.schemas import CreateGeneration, DeletedOut, GenerationPage, submit_request
from luma_ray.errors import NotFound, NotReady
from luma_ray.jobs import JobState
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
from luma_ray.wire.generation import GenerationOut


async def submit(
    p: Ports,
    who: Principal,
    body: CreateGeneration,
    idempotency_key: str | None,
    api: str = "native",
    api_request: str | None = None,
) -> JobView:
    """Validate what the ingress can check alone, check and store the inputs, then one call
    to the scheduler; a refused submit leaves no input copies behind. ``api`` and
    ``api_request``: the API the request came through and the request as it came (the
    Dream Machine API echoes it, and its callbacks take that API's shape)."""
    if body.callback_url is not None:
        validate_callback_url(body.callback_url, allow_private=p.settings.allow_private_callbacks)
    request = submit_request(body, who, idempotency_key)  # its own checks before any fetch
    request = replace(request, api=api, api_request=api_request)
    stored = await store_inputs(p, who, body, idempotency_key)
    try:
        return await p.scheduler.call(Submit(replace(request, inputs=stored.inputs)))
    except BaseException:
        await asyncio.to_thread(delete_keys, p, stored.written)  # nothing queued, nothing kept
        raise


async def content_response(p: Ports, job_id: str, tenant: str, variant: str) -> Response:
    """The bytes of a finished job's ``video``, ``thumbnail`` or ``spritesheet`` (from a
    pipeline's thumbnail stage)."""
    view = await p.scheduler.call(GetJob(job_id, tenant))
    if view.state in (JobState.FAILED, JobState.CANCELLED):
        raise NotFound(f"generation {view.id} is {view.state.value}; it has no content")
    if view.state != JobState.SUCCEEDED:
        raise NotReady(
            f"generation {view.id} is {view.state.value}; its content is ready once it has "
            "succeeded (poll it, or pass a callback_url)"
        )
    key = stored_key(p, view, variant)
    data = await asyncio.to_thread(p.store.get_bytes, key)
    media = "video/mp4" if variant == "video" else "image/png"
    filename = f"{view.id}.{'mp4' if variant == 'video' else 'png'}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def delete_job(p: Ports, job_id: str, tenant: str) -> JobView:
    """Forget the job, then its stored results and its copies of its inputs."""
    view = await p.scheduler.call(DeleteJob(job_id, tenant))

    def purge() -> None:
        for key in p.store.list(results_prefix(view.id)):
            p.store.delete(key)
        delete_keys(p, input_keys(view.params.inputs))  # the job's own copies of its inputs

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
        return present(request, await submit(ports(request), who, body, idempotency_key))

    @app.get("/v1/generations/{job_id}")
    async def get_generation(request: Request, job_id: str, who: Caller) -> GenerationOut:
        return present(request, await ports(request).scheduler.call(GetJob(job_id, who.tenant)))

    @app.get("/v1/generations")
    async def list_generations(
        request: Request,
        who: Caller,
        state: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> GenerationPage:
        views = await ports(request).scheduler.call(ListJobs(who.tenant, state, limit + 1, after))
        page = [present(request, v) for v in views[:limit]]
        return {
            "object": "list",
            "data": page,
            "has_more": len(views) > limit,
            "next_after": page[-1]["id"] if len(views) > limit else None,
        }

    @app.post("/v1/generations/{job_id}/cancel")
    async def cancel_generation(request: Request, job_id: str, who: Caller) -> GenerationOut:
        view = await ports(request).scheduler.call(CancelJob(job_id, who.tenant))
        return present(request, view)

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
    async def generation_events(
        request: Request,
        job_id: str,
        who: Caller,
        last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    ) -> Response:
        """Server-sent events with ids: ``state`` on every state change, ``progress`` on every
        step, ``done`` after a final state; ``Last-Event-ID`` resumes (``api/streams.py``)."""
        p = ports(request)
        after = streams.last_event_id(last_event_id)
        subscriber = p.events.subscriber()
        # 404 before the stream (the one scheduler call a stream makes), then 429 past the
        # tenant's limit of open streams.
        follower, watch = await subscriber.follow(job_id, who.tenant, after)
        try:
            close = p.streams.open(who.tenant)
        except BaseException:
            subscriber.leave(follower)
            raise
        events = streams.job_events(
            subscriber, follower, watch, after is not None, p.settings.sse_timeout_s
        )

        def done() -> None:
            close()
            subscriber.leave(follower)  # if the stream never started

        return streams.SlotStream(events, done, ping=p.settings.sse_keepalive_s)
