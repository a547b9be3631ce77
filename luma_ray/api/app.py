"""The FastAPI app: the native generations API, the OpenAI-compatible videos API, admin.

``create_app`` is called once per ingress replica (and by tests) with its ports: the scheduler
(an ``AsyncSchedulerPort``: the actor's handle, or an in-process service in tests), the key
store and the result store. The routes live in ``generations``, ``limits``, ``openai_compat``
and ``admin``; what they share (ports, the caller) in ``context``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from luma_ray.api import (
    admin,
    assets,
    dream_machine,
    files,
    generations,
    limits,
    openai_compat,
    problems,
)
from luma_ray.api.bodies import MAX_BODY_BYTES, BodyLimit, JsonRoute
from luma_ray.api.context import ApiSettings, Ports
from luma_ray.api.keys import KeyStore
from luma_ray.api.request_ids import RequestId
from luma_ray.api.uploads import MULTIPART_SLACK
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.protocol import AsyncSchedulerPort
from luma_ray.storage import BlobStore

__all__ = ["MAX_BODY_BYTES", "ApiSettings", "create_app"]


def create_app(
    scheduler: AsyncSchedulerPort,
    keys: KeyStore,
    store: BlobStore,
    settings: ApiSettings | None = None,
    repository: ModelRepository | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the app over its ports. ``clock`` (monotonic seconds) times the per-key request
    rates, ``wall_clock`` (seconds since the epoch) asset URLs' expiry; tests pass fake ones."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.ports.events.stop()  # shutting down: the replica's event subscriber too

    app = FastAPI(
        lifespan=lifespan,
        title="luma_ray",
        version="1",
        description="Text-to-video generation with tiered queues. Auth: `Bearer <key>`.",
    )
    app.router.route_class = JsonRoute  # JSON bodies nested too deep: a 400 that says so
    settings = settings or ApiSettings()
    app.state.ports = Ports(scheduler, keys, store, settings, repository, clock, wall_clock)
    problems.install(app)
    # Every body is counted before any route or key check; uploads stream to the route
    # (which writes them to disk), up to their own limit.
    upload_limit = settings.limits.max_upload_bytes + 2 * MULTIPART_SLACK  # a backstop
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, streamed={"/v1/files": upload_limit})
    app.add_middleware(RequestId)  # outermost: every answer carries x-request-id

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    generations.add_routes(app)
    files.add_routes(app)
    assets.add_routes(app)
    limits.add_routes(app)
    openai_compat.add_routes(app)
    dream_machine.add_routes(app)
    admin.add_routes(app)
    return app
