"""Admin routes: queue counts, the live queue page, and model rollouts (promote, rollback).

The queue counts and the queue page's data take a read-only ``queues:read`` key (or an admin
key); model status, promote and rollback need an admin key. Promote and rollback run the same
repository code as ``luma-ray models promote|rollback``; workers follow within their watch
interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request

from luma_ray.api import queue_page
from luma_ray.api.context import Admin, QueueReader, ports, repository
from luma_ray.api.schemas import ModelAction
from luma_ray.errors import InvalidRequest, NotFound
from luma_ray.scheduler.protocol import RolloutStatus, SchedulerStats, Stats

log = logging.getLogger(__name__)


def add_routes(app: FastAPI) -> None:
    queue_page.add_routes(app)

    @app.get("/v1/admin/queues")
    async def queues(request: Request, who: QueueReader) -> SchedulerStats:
        return await ports(request).scheduler.call(Stats())

    @app.get("/v1/admin/models/{name}")
    async def model_status(request: Request, name: str, who: Admin) -> dict[str, Any]:
        """Versions, the active pointer, history and the rollout: what ``models status``
        prints, with the scheduler's live view of the rollout."""
        status = await asyncio.to_thread(repository(request).status, name)
        status["rollout"] = await ports(request).scheduler.call(RolloutStatus(name))
        return status

    @app.post("/v1/admin/models/{name}/{action}")
    async def promote_or_rollback(
        request: Request, name: str, action: str, who: Admin, body: ModelAction | None = None
    ) -> dict[str, Any]:
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
