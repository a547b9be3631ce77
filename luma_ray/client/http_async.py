"""The asynchronous HTTP client, :class:`AsyncLumaClient`: the same API as
:class:`~luma_ray.client.http.LumaClient` with coroutines and async iterators.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from luma_ray.client.http import _Base
from luma_ray.client.wire import (
    BUSY_RETRIES,
    DEFAULT_URL,
    BusyError,
    Generation,
    ProgressLine,
    SseParser,
    _api_error,
    _busy_delay_s,
    _create_body,
    _json,
    _list_params,
    _path,
    _remaining_s,
    _staged,
    _stream_read_s,
    _target,
    _timed_out,
)

log = logging.getLogger(__name__)


class AsyncLumaClient(_Base):
    """The same API as :class:`LumaClient` for asyncio code: coroutine methods, and async
    iterators from :meth:`list` and :meth:`events`. ``transport`` may be an
    ``httpx.ASGITransport`` to talk to an app in process."""

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

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        response = await self._http.request(method, self._url(path), headers=headers, **kwargs)
        if response.is_error:
            raise _api_error(response)
        return response

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
    ) -> Generation:
        """See :meth:`LumaClient.create`."""
        body = _create_body(
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
            metadata=dict(metadata) if metadata else None,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        for attempt in range(BUSY_RETRIES + 1):
            try:
                response = await self._request(
                    "POST", "/v1/generations", json=body, headers=headers
                )
                return Generation.from_json(_json(response))
            except BusyError as err:
                if not retry_on_busy or attempt == BUSY_RETRIES:
                    raise
                log.info("create refused (%s); retrying in %.1f s", err.code, _busy_delay_s(err))
                await asyncio.sleep(_busy_delay_s(err))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, generation_id: str) -> Generation:
        """See :meth:`LumaClient.get`."""
        return Generation.from_json(_json(await self._request("GET", _path(generation_id))))

    async def list(self, *, state: str | None = None, limit: int = 20) -> AsyncIterator[Generation]:
        """See :meth:`LumaClient.list`; use ``async for``."""
        after: str | None = None
        while True:
            params = _list_params(state, limit, after)
            page = _json(await self._request("GET", "/v1/generations", params=params))
            for item in page["data"]:
                yield Generation.from_json(item)
            after = page.get("next_after")
            if not page.get("has_more") or not after:
                return

    async def cancel(self, generation_id: str) -> Generation:
        """See :meth:`LumaClient.cancel`."""
        response = await self._request("POST", _path(generation_id, "/cancel"))
        return Generation.from_json(_json(response))

    async def delete(self, generation_id: str) -> None:
        """See :meth:`LumaClient.delete`."""
        await self._request("DELETE", _path(generation_id))

    async def limits(self) -> dict[str, Any]:
        """See :meth:`LumaClient.limits`."""
        return dict(_json(await self._request("GET", "/v1/limits")))

    async def models(self) -> builtins.list[dict[str, Any]]:
        """See :meth:`LumaClient.models`."""
        return builtins.list(_json(await self._request("GET", "/v1/models"))["data"])

    async def events(
        self, generation_id: str, *, read_timeout_s: float | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """See :meth:`LumaClient.events`; use ``async for``."""
        url = self._url(_path(generation_id, "/events"))
        headers = self._headers({"Accept": "text/event-stream"})
        timeout = self._stream_timeout(read_timeout_s)
        async with self._http.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.is_error:
                await response.aread()
                raise _api_error(response)
            parser = SseParser()
            async for line in response.aiter_lines():
                if (item := parser.feed(line)) is not None:
                    yield item

    async def wait(
        self, generation_id: str, *, timeout_s: float | None = None, progress: bool | None = None
    ) -> Generation:
        """See :meth:`LumaClient.wait`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        line = ProgressLine(generation_id, progress)
        streaming = True
        try:
            while True:
                gen = None
                if streaming:
                    try:
                        gen = await self._follow(generation_id, deadline, line)
                        streaming = gen is not None
                    except httpx.ReadTimeout:
                        pass
                    except httpx.TransportError as err:
                        log.info("generation %s: event stream dropped (%r)", generation_id, err)
                        streaming = False
                if gen is None or not gen.done:
                    gen = await self.get(generation_id)
                line.on_generation(gen)
                if gen.done:
                    return gen
                remaining = _remaining_s(deadline)
                if remaining is not None and remaining <= 0:
                    raise _timed_out(generation_id, gen, timeout_s)
                if not streaming:
                    await asyncio.sleep(
                        self._poll_s if remaining is None else min(self._poll_s, remaining)
                    )
        finally:
            line.close()

    async def _follow(
        self, generation_id: str, deadline: float | None, line: ProgressLine
    ) -> Generation | None:
        read_s = _stream_read_s(deadline)
        async for event, data in self.events(generation_id, read_timeout_s=read_s):
            if event == "done":
                return Generation.from_json(data)
            line.on_event(event, data)
        return None

    async def download(
        self, generation_id: str, path: str | os.PathLike[str], *, variant: str = "video"
    ) -> Path:
        """See :meth:`LumaClient.download` (file writes are small and run inline)."""
        target = _target(path, generation_id, variant)
        url = self._url(_path(generation_id, "/content"))
        params, headers = {"variant": variant}, self._headers({"Accept": "*/*"})
        async with self._http.stream("GET", url, params=params, headers=headers) as response:
            if response.is_error:
                await response.aread()
                raise _api_error(response)
            with _staged(target) as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        return target
