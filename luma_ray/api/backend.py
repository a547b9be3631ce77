"""What the HTTP layer needs from the scheduler, as one async port with two adapters.

``ActorBackend`` talks to the scheduler actor (the Serve ingress uses it); ``LocalBackend``
wraps an in-process :class:`SchedulerService` (tests and single-process tools). Both raise
luma_ray's own errors, never Ray's.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from typing import Any, Protocol

from luma_ray.errors import LumaError
from luma_ray.scheduler.service import SchedulerService, SubmitRequest


class Backend(Protocol):
    async def submit(self, request: SubmitRequest) -> dict[str, Any]: ...
    async def get(self, job_id: str, tenant: str | None) -> dict[str, Any]: ...
    async def list(
        self, tenant: str | None, state: str | None, limit: int, after: str | None, order: str
    ) -> list[dict[str, Any]]: ...
    async def cancel(self, job_id: str, tenant: str | None) -> dict[str, Any]: ...
    async def delete(self, job_id: str, tenant: str | None) -> dict[str, Any]: ...
    async def stats(self) -> dict[str, Any]: ...
    async def limits(self) -> dict[str, Any]: ...
    async def rollout_status(self, model: str) -> dict[str, Any]: ...
    async def queue_view(self) -> dict[str, Any]: ...


class LocalBackend:
    """An in-process scheduler service behind a lock (the actor's event loop does this)."""

    def __init__(self, service: SchedulerService) -> None:
        self.service = service
        self._lock = threading.Lock()

    async def _run(self, method: str, *args: Any) -> Any:
        with self._lock:
            return getattr(self.service, method)(*args)

    async def submit(self, request: SubmitRequest) -> dict[str, Any]:
        return await self._run("submit", request)  # type: ignore[no-any-return]

    async def get(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._run("get", job_id, tenant)  # type: ignore[no-any-return]

    async def list(
        self, tenant: str | None, state: str | None, limit: int, after: str | None, order: str
    ) -> list[dict[str, Any]]:
        return await self._run("list", tenant, state, limit, after, order)  # type: ignore[no-any-return]

    async def cancel(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._run("cancel", job_id, tenant)  # type: ignore[no-any-return]

    async def delete(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._run("delete", job_id, tenant)  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        return await self._run("stats")  # type: ignore[no-any-return]

    async def limits(self) -> dict[str, Any]:
        return await self._run("describe")  # type: ignore[no-any-return]

    async def rollout_status(self, model: str) -> dict[str, Any]:
        return await self._run("rollout_status", model)  # type: ignore[no-any-return]

    async def queue_view(self) -> dict[str, Any]:
        return await self._run("queue_view")  # type: ignore[no-any-return]


class ActorBackend:
    """The scheduler actor's handle; awaits its calls without blocking the event loop."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _call(self, method: str, *args: Any) -> Any:
        """Call the actor; while Ray restarts it, retry for up to a minute (every call is
        safe to repeat: submits carry an idempotency key, see :meth:`submit`)."""
        import ray

        deadline = time.monotonic() + 60.0
        delay = 0.1
        while True:
            try:
                return await asyncio.wait_for(getattr(self.handle, method).remote(*args), 60)
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, LumaError):
                    raise cause from None
                raise
            except ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)  # back off while Ray restarts the actor
                delay = min(2.0, delay * 2)

    async def submit(self, request: SubmitRequest) -> dict[str, Any]:
        if request.idempotency_key is None:  # make a retried call safe
            request = replace(request, idempotency_key=f"http-{uuid.uuid4().hex}")
        return await self._call("submit", request)  # type: ignore[no-any-return]

    async def get(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._call("get", job_id, tenant)  # type: ignore[no-any-return]

    async def list(
        self, tenant: str | None, state: str | None, limit: int, after: str | None, order: str
    ) -> list[dict[str, Any]]:
        return await self._call("list", tenant, state, limit, after, order)  # type: ignore[no-any-return]

    async def cancel(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._call("cancel", job_id, tenant)  # type: ignore[no-any-return]

    async def delete(self, job_id: str, tenant: str | None) -> dict[str, Any]:
        return await self._call("delete", job_id, tenant)  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        return await self._call("stats")  # type: ignore[no-any-return]

    async def limits(self) -> dict[str, Any]:
        return await self._call("limits")  # type: ignore[no-any-return]

    async def rollout_status(self, model: str) -> dict[str, Any]:
        return await self._call("rollout_status", model)  # type: ignore[no-any-return]

    async def queue_view(self) -> dict[str, Any]:
        return await self._call("queue_view")  # type: ignore[no-any-return]
