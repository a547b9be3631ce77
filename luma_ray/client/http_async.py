"""The asynchronous HTTP client, :class:`AsyncLumaClient`: the same API as
:class:`~luma_ray.client.http.LumaClient` with coroutines and async iterators. It performs the
same :mod:`~luma_ray.client.ops` as that one, with asyncio I/O.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from luma_ray.client import ops
from luma_ray.client.http import _Base
from luma_ray.client.wire import DEFAULT_URL, Generation, SseParser, _staged, _target

T = TypeVar("T")


class AsyncLumaClient(_Base):
    """The same API as :class:`LumaClient` for asyncio code: coroutine methods, and async
    iterators from :meth:`list` and :meth:`events`. ``transport`` may be an
    ``httpx.ASGITransport`` to talk to an app in process."""

    _http: httpx.AsyncClient

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(base_url, api_key, timeout_s, poll_s)
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> AsyncLumaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """See :meth:`LumaClient.close`."""
        if self._owned:
            await self._http.aclose()

    async def create(
        self,
        prompt: str,
        *,
        model: str = "luma-tiny",
        seconds: float | None = None,
        frames: int | None = None,
        size: str | None = None,
        aspect_ratio: str | None = None,
        fps: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        negative_prompt: str = "",
        callback_url: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        retry_on_busy: bool = False,
        first_frame: str | os.PathLike[str] | None = None,
        last_frame: str | os.PathLike[str] | None = None,
        source_video: str | os.PathLike[str] | None = None,
        strength: float | None = None,
        extend: str | None = None,
    ) -> Generation:
        """See :meth:`LumaClient.create`."""
        given = {"first_frame": first_frame, "last_frame": last_frame}
        given["source_video"] = source_video
        inputs = {name: await self._input(value) for name, value in given.items() if value}
        return await self._run(
            ops.create(
                prompt,
                model=model,
                seconds=seconds,
                frames=frames,
                size=size,
                aspect_ratio=aspect_ratio,
                fps=fps,
                seed=seed,
                steps=steps,
                negative_prompt=negative_prompt,
                callback_url=callback_url,
                metadata=metadata,
                idempotency_key=idempotency_key,
                retry_on_busy=retry_on_busy,
                strength=strength,
                extend=extend,
                **inputs,
            )
        )

    async def upload_file(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """See :meth:`LumaClient.upload_file`."""
        return await self._send(ops.upload(path))

    async def get_file(self, file_id: str) -> dict[str, Any]:
        return await self._send(ops.file_info(file_id))

    async def delete_file(self, file_id: str) -> None:
        await self._send(ops.delete_file(file_id))

    async def _input(self, value: str | os.PathLike[str]) -> str:
        path = ops.local_input(value)
        return str(value) if path is None else str((await self.upload_file(path))["id"])

    async def get(self, generation_id: str) -> Generation:
        """See :meth:`LumaClient.get`."""
        return await self._send(ops.get(generation_id))

    async def list(self, *, state: str | None = None, limit: int = 20) -> AsyncIterator[Generation]:
        """See :meth:`LumaClient.list`; use ``async for``."""
        op: ops.Op[ops.Page] | None = ops.page(state, limit)
        while op is not None:
            page = await self._send(op)
            for gen in page.items:
                yield gen
            op = page.next

    async def cancel(self, generation_id: str) -> Generation:
        """See :meth:`LumaClient.cancel`."""
        return await self._send(ops.cancel(generation_id))

    async def delete(self, generation_id: str) -> None:
        """See :meth:`LumaClient.delete`."""
        await self._send(ops.delete(generation_id))

    async def limits(self) -> dict[str, Any]:
        """See :meth:`LumaClient.limits`."""
        return await self._send(ops.limits())

    async def models(self) -> builtins.list[dict[str, Any]]:
        """See :meth:`LumaClient.models`."""
        return await self._send(ops.models())

    async def events(
        self, generation_id: str, *, read_timeout_s: float | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """See :meth:`LumaClient.events`; use ``async for``."""
        parser = SseParser()
        async with self._stream(ops.events(generation_id, read_timeout_s)) as response:
            async for line in response.aiter_lines():
                if (item := parser.feed(line)) is not None:
                    yield item

    async def wait(
        self, generation_id: str, *, timeout_s: float | None = None, progress: bool | None = None
    ) -> Generation:
        """See :meth:`LumaClient.wait`."""
        return await self._run(ops.wait(generation_id, timeout_s, self._poll_s, progress))

    async def download(
        self, generation_id: str, path: str | os.PathLike[str], *, variant: str = "video"
    ) -> Path:
        """See :meth:`LumaClient.download` (file writes are small and run inline)."""
        target = _target(path, generation_id, variant)
        async with self._stream(ops.content(generation_id, variant)) as response:
            with _staged(target) as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        return target

    async def _send(self, op: ops.Op[T]) -> T:
        if op.delay_s:
            await asyncio.sleep(op.delay_s)
        return op.reply(await self._http.send(self._build(op)))

    @asynccontextmanager
    async def _stream(self, op: ops.Op[httpx.Response]) -> AsyncIterator[httpx.Response]:
        """See :meth:`LumaClient._stream`."""
        async with aclosing(await self._http.send(self._build(op), stream=True)) as response:
            if response.is_error:
                await response.aread()
            yield op.reply(response)

    async def _run(self, plan: ops.Plan[T]) -> T:
        steps = ops.Steps(plan)
        while (command := steps.next()) is not None:
            try:
                steps.reply(await self._do(command))
            except BaseException as err:  # the plan's to handle: retry, poll, or raise it
                steps.fail(err)
        return steps.result

    async def _do(self, command: ops.Command) -> Any:
        if not isinstance(command, ops.Follow):
            return await self._send(command)
        async with self._stream(command.op) as response:
            async for line in response.aiter_lines():
                if command.feed(line):
                    break
        return None
