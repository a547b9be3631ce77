"""The HTTP client of the native API: :class:`LumaClient` (sync) and :class:`AsyncLumaClient`.

Scripts, notebooks and services outside the Ray cluster call these; they talk to the ingress
(``/v1/generations``, ``/v1/limits``, ``/v1/models``) with a bearer key. The two classes share
everything but the I/O: body building, problem parsing, the server-sent-events parser and the
progress line live here once. Errors are :class:`ApiError` subclasses that are also luma_ray's
own errors, so ``except NotFound`` catches a missing job from this client and from the Ray
client alike. Network failures stay ``httpx.TransportError``. Nothing here reads environment
variables; :meth:`LumaClient.from_env` takes the mapping it reads from as an argument.
"""

from __future__ import annotations

import builtins
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from luma_ray import __version__
from luma_ray.client.wire import (
    BUSY_RETRIES,
    DEFAULT_URL,
    ApiError,
    AuthError,
    BadRequestError,
    BusyError,
    ConflictError,
    ForbiddenError,
    Generation,
    NotFoundError,
    Progress,
    ProgressLine,
    ServerError,
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

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AuthError",
    "BadRequestError",
    "BusyError",
    "ConflictError",
    "ForbiddenError",
    "Generation",
    "LumaClient",
    "NotFoundError",
    "Progress",
    "ServerError",
]

log = logging.getLogger(__name__)

_C = TypeVar("_C", bound="_Base")


class _Base:
    """What both clients share: the base URL, the key (kept out of repr) and headers."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, poll_s: float):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    @classmethod
    def from_env(cls: type[_C], environ: Mapping[str, str], **kwargs: Any) -> _C:
        """Build from ``LUMA_RAY_URL`` and ``LUMA_RAY_API_KEY`` in ``environ`` (the caller
        passes ``os.environ`` or its own mapping); ``kwargs`` go to the constructor."""
        url = environ.get("LUMA_RAY_URL") or DEFAULT_URL
        return cls(url, environ.get("LUMA_RAY_API_KEY") or None, **kwargs)

    def __repr__(self) -> str:
        key = "None"
        if self._api_key:  # keys are lr_<public id>_<secret>: show the id only
            parts = self._api_key.split("_")
            key = f"'lr_{parts[1]}_***'" if len(parts) >= 3 and parts[0] == "lr" else "'***'"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": f"luma-ray-client/{__version__}", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(extra or {})
        return headers

    def _stream_timeout(self, read_s: float | None) -> httpx.Timeout:
        return httpx.Timeout(self._timeout_s, read=read_s)


class LumaClient(_Base):
    """Blocking client of the native API; thread-safe, so one per process is plenty.

    ``transport`` replaces the network (tests pass an in-process app's transport);
    ``http_client`` replaces the whole ``httpx.Client`` (its base URL is ignored and it is not
    closed by :meth:`close`). ``poll_s`` is the interval of ``wait()`` when it must poll.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(base_url, api_key, timeout_s, poll_s)
        self._owned = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout_s, transport=transport)

    def __enter__(self) -> LumaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not an injected ``http_client``)."""
        if self._owned:
            self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        response = self._http.request(method, self._url(path), headers=headers, **kwargs)
        if response.is_error:
            raise _api_error(response)
        return response

    def create(
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
        """Queue a generation. ``retry_on_busy`` waits out up to ``BUSY_RETRIES`` 429s (each
        for its Retry-After, at most ``MAX_BUSY_WAIT_S``) instead of raising ``BusyError``."""
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
                response = self._request("POST", "/v1/generations", json=body, headers=headers)
                return Generation.from_json(_json(response))
            except BusyError as err:
                if not retry_on_busy or attempt == BUSY_RETRIES:
                    raise
                log.info("create refused (%s); retrying in %.1f s", err.code, _busy_delay_s(err))
                time.sleep(_busy_delay_s(err))
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, generation_id: str) -> Generation:
        """The job as it is now; ``NotFoundError`` when absent or another tenant's."""
        return Generation.from_json(_json(self._request("GET", _path(generation_id))))

    def list(self, *, state: str | None = None, limit: int = 20) -> Iterator[Generation]:
        """Every generation of the key's tenant, newest first, fetched lazily ``limit`` (the
        page size, 1-100) at a time; ``itertools.islice`` caps the total."""
        after: str | None = None
        while True:
            params = _list_params(state, limit, after)
            page = _json(self._request("GET", "/v1/generations", params=params))
            yield from (Generation.from_json(item) for item in page["data"])
            after = page.get("next_after")
            if not page.get("has_more") or not after:
                return

    def cancel(self, generation_id: str) -> Generation:
        """Cancel a queued or running job (a running one stops at its next heartbeat); a
        finished job comes back unchanged."""
        return Generation.from_json(_json(self._request("POST", _path(generation_id, "/cancel"))))

    def delete(self, generation_id: str) -> None:
        """Forget a generation and its results (cancelling it first if it still runs)."""
        self._request("DELETE", _path(generation_id))

    def limits(self) -> dict[str, Any]:
        """The key's tenant and tier, its caps, and each model's limits."""
        return dict(_json(self._request("GET", "/v1/limits")))

    def models(self) -> builtins.list[dict[str, Any]]:
        """The served models, each ``{"id", "object", "limits"}``."""
        return builtins.list(_json(self._request("GET", "/v1/models"))["data"])

    def events(
        self, generation_id: str, *, read_timeout_s: float | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events until the server ends them: ``state`` on each change,
        ``progress`` on each step, then ``done`` with the generation. Blocks between events
        (up to ``read_timeout_s`` if set; a drop raises ``httpx.TransportError``)."""
        url = self._url(_path(generation_id, "/events"))
        headers = self._headers({"Accept": "text/event-stream"})
        timeout = self._stream_timeout(read_timeout_s)
        with self._http.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.is_error:
                response.read()
                raise _api_error(response)
            parser = SseParser()
            for line in response.iter_lines():
                if (item := parser.feed(line)) is not None:
                    yield item

    def wait(
        self, generation_id: str, *, timeout_s: float | None = None, progress: bool | None = None
    ) -> Generation:
        """Block until the job is final and return it; ``TimeoutError`` after ``timeout_s``.

        Follows :meth:`events`; when the stream drops it polls :meth:`get` every ``poll_s``.
        ``progress`` draws a progress line on stderr (None: when a terminal or notebook shows
        it). A failed or cancelled job is returned, not raised: check ``state`` and ``error``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        line = ProgressLine(generation_id, progress)
        streaming = True
        try:
            while True:
                gen = None
                if streaming:
                    try:
                        gen = self._follow(generation_id, deadline, line)
                        streaming = gen is not None  # a stream that ends without done: poll
                    except httpx.ReadTimeout:
                        pass  # quiet for STREAM_IDLE_S or the deadline: check, then reopen
                    except httpx.TransportError as err:
                        log.info("generation %s: event stream dropped (%r)", generation_id, err)
                        streaming = False
                if gen is None or not gen.done:
                    gen = self.get(generation_id)
                line.on_generation(gen)
                if gen.done:
                    return gen
                remaining = _remaining_s(deadline)
                if remaining is not None and remaining <= 0:
                    raise _timed_out(generation_id, gen, timeout_s)
                if not streaming:
                    time.sleep(self._poll_s if remaining is None else min(self._poll_s, remaining))
        finally:
            line.close()

    def _follow(
        self, generation_id: str, deadline: float | None, line: ProgressLine
    ) -> Generation | None:
        for event, data in self.events(generation_id, read_timeout_s=_stream_read_s(deadline)):
            if event == "done":
                return Generation.from_json(data)
            line.on_event(event, data)
        return None

    def download(
        self, generation_id: str, path: str | os.PathLike[str], *, variant: str = "video"
    ) -> Path:
        """Stream a finished job's ``video`` (or ``thumbnail``) to ``path`` and return it.

        Writes a temp file beside ``path`` and renames it, so ``path`` is whole or absent. A
        directory ``path`` gets ``<id>.mp4`` (or ``.png``) inside it.
        """
        target = _target(path, generation_id, variant)
        url = self._url(_path(generation_id, "/content"))
        params, headers = {"variant": variant}, self._headers({"Accept": "*/*"})
        with self._http.stream("GET", url, params=params, headers=headers) as response:
            if response.is_error:
                response.read()
                raise _api_error(response)
            with _staged(target) as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return target
