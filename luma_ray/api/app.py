"""The FastAPI app: the native generations API, the OpenAI-compatible videos API, auth.

``create_app`` is called once per ingress replica (and by tests) with its ports: the scheduler
backend, the key store and the result store. Routes authenticate the bearer key, act as the
key's tenant and tier, and never show one tenant another tenant's jobs (404, as if absent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from luma_ray.api import problems, queue_page
from luma_ray.api.backend import Backend
from luma_ray.api.callbacks import validate_callback_url
from luma_ray.api.keys import KeyStore, Principal
from luma_ray.api.schemas import CreateGeneration, ModelAction, generation_view
from luma_ray.api.sizes import resolve_size
from luma_ray.errors import Forbidden, InvalidRequest, NotFound
from luma_ray.models.interface import ModelLimits
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.service import SubmitRequest
from luma_ray.storage import BlobStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
TERMINAL = ("succeeded", "failed", "cancelled")
_bearer = HTTPBearer(auto_error=False)


@dataclass
class ApiSettings:
    """Knobs of the HTTP layer, fixed when the app is built."""

    allow_private_callbacks: bool = False
    """Let callback_url point at loopback/private hosts (tests, on-prem receivers)."""
    sse_poll_s: float = 0.2
    sse_timeout_s: float = 3600.0


@dataclass
class Ports:
    backend: Backend
    keys: KeyStore
    store: BlobStore
    settings: ApiSettings
    repository: ModelRepository | None = None
    """The model repository the admin model endpoints act on (None: no repository)."""


def create_app(
    backend: Backend,
    keys: KeyStore,
    store: BlobStore,
    settings: ApiSettings | None = None,
    repository: ModelRepository | None = None,
) -> FastAPI:
    """Build the app. The OpenAI-compatible routes live in ``openai_compat``."""
    from luma_ray.api import openai_compat

    app = FastAPI(
        title="luma_ray",
        version="1",
        description="Text-to-video generation with tiered queues. Auth: `Bearer <key>`.",
    )
    app.state.ports = Ports(backend, keys, store, settings or ApiSettings(), repository)
    problems.install(app)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return problems.problem(
                413,
                "too_large",
                "Content Too Large",
                f"request body is over {MAX_BODY_BYTES} bytes; send a smaller request",
            )
        response: Response = await call_next(request)
        return response

    add_native_routes(app)
    openai_compat.add_routes(app)
    return app


def ports(request: Request) -> Ports:
    return request.app.state.ports  # type: ignore[no-any-return]


def repository(request: Request) -> ModelRepository:
    repo = ports(request).repository
    if repo is None:
        raise NotFound("this deployment has no model repository")
    return repo


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; 401 when missing or wrong."""
    key = credentials.credentials if credentials else None
    return ports(request).keys.authenticate(key)


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Forbidden("this endpoint needs an admin key")
    return who


Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]


async def model_limits(p: Ports, model: str) -> ModelLimits:
    described = await p.backend.limits()
    name = model.partition("@")[0]
    raw = described["models"].get(name)
    if raw is None:
        known = ", ".join(sorted(described["models"])) or "none"
        raise InvalidRequest(f"unknown model {name!r}; available: {known}")
    return ModelLimits(**raw)


async def submit(
    p: Ports, who: Principal, body: CreateGeneration, idempotency_key: str | None
) -> dict[str, Any]:
    """Shared by the native and the OpenAI routes: validate, map, submit."""
    limits = await model_limits(p, body.model)
    width, height = resolve_size(body.size, body.aspect_ratio, limits)
    if body.callback_url is not None:
        validate_callback_url(body.callback_url, allow_private=p.settings.allow_private_callbacks)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1-255 characters")
    if body.frames is not None and body.seconds is not None:
        raise InvalidRequest("give either frames or seconds, not both")
    request = SubmitRequest(
        prompt=body.prompt,
        model=body.model,
        tier=who.tier,
        tenant=who.tenant,
        negative_prompt=body.negative_prompt,
        frames=body.frames or 16,
        width=width,
        height=height,
        fps=body.fps,
        seed=body.seed,
        steps=body.steps,
        seconds=body.seconds,
        metadata=tuple(sorted((body.metadata or {}).items())),
        callback_url=body.callback_url,
        idempotency_key=idempotency_key,
    )
    return await p.backend.submit(request)


async def content_response(p: Ports, view: dict[str, Any], variant: str) -> Response:
    if view["state"] != "succeeded":
        raise NotFound(f"generation {view['id']} has no content yet (it is {view['state']})")
    uri = view["result_uris"].get(variant)
    if uri is None:
        raise NotFound(f"generation {view['id']} has no {variant!r}; try video or thumbnail")
    base = p.store.uri.rstrip("/") + "/"
    if not uri.startswith(base):
        raise NotFound(f"generation {view['id']}: its {variant} is not in this store")
    data = await asyncio.to_thread(p.store.get_bytes, uri[len(base) :])
    media = "video/mp4" if variant == "video" else "image/png"
    filename = f"{view['id']}.{'mp4' if variant == 'video' else 'png'}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def delete_results(p: Ports, job_id: str) -> None:
    def purge() -> None:
        for key in p.store.list(f"results/{job_id}/"):
            p.store.delete(key)

    await asyncio.to_thread(purge)


def add_native_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/generations", status_code=201)
    async def create_generation(
        request: Request,
        body: CreateGeneration,
        who: Caller,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """Queue a generation; the same Idempotency-Key and body return the same job."""
        return generation_view(await submit(ports(request), who, body, idempotency_key))

    @app.get("/v1/generations/{job_id}")
    async def get_generation(request: Request, job_id: str, who: Caller) -> dict[str, Any]:
        return generation_view(await ports(request).backend.get(job_id, who.tenant))

    @app.get("/v1/generations")
    async def list_generations(
        request: Request,
        who: Caller,
        state: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        views = await ports(request).backend.list(who.tenant, state, limit + 1, after, "desc")
        page = [generation_view(v) for v in views[:limit]]
        return {
            "object": "list",
            "data": page,
            "has_more": len(views) > limit,
            "next_after": page[-1]["id"] if len(views) > limit else None,
        }

    @app.post("/v1/generations/{job_id}/cancel")
    async def cancel_generation(request: Request, job_id: str, who: Caller) -> dict[str, Any]:
        return generation_view(await ports(request).backend.cancel(job_id, who.tenant))

    @app.delete("/v1/generations/{job_id}")
    async def delete_generation(request: Request, job_id: str, who: Caller) -> dict[str, Any]:
        p = ports(request)
        view = await p.backend.delete(job_id, who.tenant)
        await delete_results(p, view["id"])
        return {"id": view["id"], "object": "generation.deleted", "deleted": True}

    @app.get("/v1/generations/{job_id}/content")
    async def generation_content(
        request: Request,
        job_id: str,
        who: Caller,
        variant: Annotated[str, Query(pattern="^(video|thumbnail)$")] = "video",
    ) -> Response:
        p = ports(request)
        return await content_response(p, await p.backend.get(job_id, who.tenant), variant)

    @app.get("/v1/generations/{job_id}/events")
    async def generation_events(request: Request, job_id: str, who: Caller) -> Response:
        """Server-sent events: ``progress`` on every step, ``state`` on every state change,
        ending after a final state."""
        p = ports(request)
        first = await p.backend.get(job_id, who.tenant)  # 404 before the stream starts
        return StreamingResponse(
            _events(p, job_id, who.tenant, first, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/limits")
    async def limits(request: Request, who: Caller) -> dict[str, Any]:
        described = await ports(request).backend.limits()
        tier = next(t for t in described["tiers"] if t["name"] == who.tier)
        return {
            "tenant": who.tenant,
            "tier": tier,
            "tenant_limits": described["tenant_limits"].get(who.tier),
            "models": described["models"],
        }

    @app.get("/v1/models")
    async def models(request: Request, who: Caller) -> dict[str, Any]:
        """Models with their request limits and active version (pin one as ``name@version``)."""
        described = await ports(request).backend.limits()
        names = sorted(described["models"])
        versions = await asyncio.to_thread(_active_versions, ports(request).repository, names)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "limits": described["models"][name],
                    "version": versions.get(name),
                }
                for name in names
            ],
        }

    queue_page.add_routes(app, admin, ports)

    @app.get("/v1/admin/queues")
    async def queues(request: Request, who: Admin) -> dict[str, Any]:
        return await ports(request).backend.stats()

    @app.get("/v1/admin/models/{name}")
    async def model_status(request: Request, name: str, who: Admin) -> dict[str, Any]:
        """Versions, the active pointer, history and the rollout: what ``models status``
        prints, with the scheduler's live view of the rollout."""
        status = await asyncio.to_thread(repository(request).status, name)
        status["rollout"] = await ports(request).backend.rollout_status(name)
        return status

    @app.post("/v1/admin/models/{name}/{action}")
    async def promote_or_rollback(
        request: Request, name: str, action: str, who: Admin, body: ModelAction | None = None
    ) -> dict[str, Any]:
        """The same code as ``luma-ray models promote|rollback``; workers follow within their
        watch interval."""
        repo = repository(request)
        if action == "promote":
            if body is None or body.version is None:
                raise InvalidRequest('promote needs a JSON body {"version": "<version>"}')
            pointer = await asyncio.to_thread(
                repo.promote, name, body.version, body.max_unavailable
            )
        elif action == "rollback":
            pointer = await asyncio.to_thread(repo.rollback, name)
        else:
            raise NotFound(f"no admin action {action!r}; use promote or rollback")
        log.info("admin %s: %s %s -> %s", who.tenant, action, name, pointer.active)
        return {
            "model": name,
            "active": pointer.active,
            "previous": pointer.previous,
            "max_unavailable": pointer.max_unavailable,
        }


def _active_versions(repo: ModelRepository | None, names: list[str]) -> dict[str, str | None]:
    """Each model's active version; missing where the repository cannot be read just now."""
    if repo is None:
        return {}
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = repo.active(name).active
        except Exception:
            log.warning("cannot read the active version of %s", name, exc_info=True)
    return found


async def _events(
    p: Ports, job_id: str, tenant: str, first: dict[str, Any], request: Request
) -> AsyncIterator[bytes]:
    last: tuple[str, int] | None = None
    view = first
    deadline = time.monotonic() + p.settings.sse_timeout_s
    while True:
        mark = (view["state"], view["progress"]["step"])
        if mark != last:
            if last is None or mark[0] != last[0]:
                yield _sse("state", {"id": job_id, "state": view["state"]})
            if view["progress"]["total"]:
                yield _sse("progress", {"id": job_id, **view["progress"]})
            last = mark
        if view["state"] in TERMINAL or time.monotonic() > deadline:
            yield _sse("done", generation_view(view))
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(p.settings.sse_poll_s)  # the stream's polling interval
        try:
            view = await p.backend.get(job_id, tenant)
        except NotFound:
            yield _sse("state", {"id": job_id, "state": "deleted"})
            return


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def json_problem(status: int, detail: str) -> JSONResponse:
    return problems.problem(status, "http_error", detail, detail)
