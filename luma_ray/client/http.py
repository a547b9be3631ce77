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

import asyncio
import builtins
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx

from luma_ray import __version__
from luma_ray.errors import (
    BackPressure,
    Conflict,
    Forbidden,
    InvalidRequest,
    LumaError,
    NotFound,
    Unauthorized,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncLumaClient",
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

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BUSY_RETRIES = 5
"""How often ``create(..., retry_on_busy=True)`` retries a 429 before raising it."""
MAX_BUSY_WAIT_S = 60.0
"""Longest wait between those retries, whatever Retry-After says."""
STREAM_IDLE_S = 60.0
"""``wait()`` reopens an event stream silent this long: the server only writes on change."""


@dataclass(frozen=True)
class Progress:
    """Where a running job is: ``phase`` as its worker reports it, ``step`` of ``total``."""

    phase: str
    step: int
    total: int


@dataclass(frozen=True)
class Generation:
    """One generation as the API shows it; ``raw`` keeps the whole JSON, unknown fields too.

    ``result_urls`` are API paths (``/v1/generations/<id>/content?variant=video``); fetch them
    with :meth:`LumaClient.download`, which sends the key.
    """

    id: str
    state: str
    tier: str
    model: str
    prompt: str
    queue_position: int | None
    eta_s: float | None
    slo_used: float | None
    progress: Progress
    result_urls: dict[str, str]
    error: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def done(self) -> bool:
        """True once the job is final: succeeded, failed or cancelled."""
        return self.state in TERMINAL

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Generation:
        """Parse the API's generation object (both clients call this on every response)."""
        p = data.get("progress") or {}
        return cls(
            id=str(data["id"]),
            state=str(data["state"]),
            tier=str(data.get("tier", "")),
            model=str(data.get("model", "")),
            prompt=str(data.get("prompt", "")),
            queue_position=data.get("queue_position"),
            eta_s=data.get("eta_s"),
            slo_used=data.get("slo_used"),
            progress=Progress(
                str(p.get("phase", "")), int(p.get("step", 0)), int(p.get("total", 0))
            ),
            result_urls=dict(data.get("result_urls") or {}),
            error=data.get("error"),
            raw=dict(data),
        )


class ApiError(LumaError):
    """The API answered with an error (a problem+json body); ``str()`` is one line.

    ``status`` is the HTTP status, ``code`` the stable machine code from the body (for example
    ``not_found``, ``validation_error``, ``tenant_limit``), ``detail`` the server's message and
    ``retry_after_s`` the Retry-After header in seconds, when there was one.
    """

    code = "api_error"

    def __init__(
        self, status: int, code: str, detail: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {' '.join(detail.split())}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type, tuple[int, str, str, float | None]]:
        return (type(self), (self.status, self.code, self.detail, self.retry_after_s))


class BadRequestError(ApiError, InvalidRequest):
    """400, 413 or 422: the request is wrong; ``detail`` says what to fix."""


class AuthError(ApiError, Unauthorized):
    """401: no API key, or a wrong or revoked one."""


class ForbiddenError(ApiError, Forbidden):
    """403: the key lacks the scope this needs (admin)."""


class NotFoundError(ApiError, NotFound):
    """404: no such generation, or one of another tenant, or no content yet."""


class ConflictError(ApiError, Conflict):
    """409: for example an Idempotency-Key reused with a different body."""


class BusyError(ApiError, BackPressure):  # type: ignore[misc]
    """429: refused for load; retry after ``retry_after_s`` seconds."""


class ServerError(ApiError):
    """5xx or any status the API does not document; usually worth a retry later."""


_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: BusyError,
}


def _api_error(response: httpx.Response) -> ApiError:
    """The error for a failed, fully read response; the clients call this on status >= 400."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text[:200] or response.reason_phrase}
    code = str(body.get("code") or f"http_{response.status_code}")
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    cls = _ERRORS.get(response.status_code, ServerError)
    return cls(response.status_code, code, detail, _retry_after_s(response))


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            response.status_code, "bad_response", "the server did not answer JSON; check base_url"
        ) from None


def _create_body(prompt: str, **fields: Any) -> dict[str, Any]:
    """The POST body: only the fields the caller set, so the server's defaults apply."""
    return {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None and v != ""}}


def _list_params(state: str | None, limit: int, after: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state
    if after is not None:
        params["after"] = after
    return params


def _path(generation_id: str, suffix: str = "") -> str:
    return f"/v1/generations/{quote(generation_id, safe='')}{suffix}"


def _busy_delay_s(err: BusyError) -> float:
    return min(MAX_BUSY_WAIT_S, err.retry_after_s if err.retry_after_s is not None else 1.0)


def _remaining_s(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _stream_read_s(deadline: float | None) -> float:
    remaining = _remaining_s(deadline)
    return STREAM_IDLE_S if remaining is None else max(0.001, min(remaining, STREAM_IDLE_S))


def _timed_out(generation_id: str, gen: Generation, timeout_s: float | None) -> TimeoutError:
    return TimeoutError(f"generation {generation_id} is still {gen.state} after {timeout_s} s")


class SseParser:
    """Turns ``text/event-stream`` lines into ``(event, data)`` pairs; the clients feed it.

    Data is JSON on this API; a data line that is not JSON comes back as ``{"data": text}``.
    """

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        """One line without its newline; returns an event when a blank line ends one."""
        if not line:
            if not self._data:
                self._event = "message"
                return None
            event, text = self._event, "\n".join(self._data)
            self._event, self._data = "message", []
            try:
                data = json.loads(text)
            except ValueError:
                data = {"data": text}
            return event, data if isinstance(data, dict) else {"data": data}
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class ProgressLine:
    """The one-line progress display ``wait()`` redraws on stderr; a no-op when off.

    ``progress=None`` means on when someone watches: stderr is a terminal, or a Jupyter kernel
    runs (``ipykernel`` is imported).
    """

    WIDTH = 24

    def __init__(self, generation_id: str, progress: bool | None) -> None:
        stream = sys.stderr
        if progress is None:
            progress = bool(stream is not None and stream.isatty()) or "ipykernel" in sys.modules
        self._out: IO[str] | None = stream if progress else None
        self._id = generation_id
        self._state = ""
        self._progress = Progress("", 0, 0)
        self._drawn = ""

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        """Take a ``state`` or ``progress`` event from the stream."""
        if event == "state":
            self._state = str(data.get("state", ""))
        elif event == "progress":
            self._progress = Progress(
                str(data.get("phase", "")), int(data.get("step", 0)), int(data.get("total", 0))
            )
        self._draw()

    def on_generation(self, gen: Generation) -> None:
        self._state, self._progress = gen.state, gen.progress
        self._draw()

    def close(self) -> None:
        if self._out is not None and self._drawn:
            self._out.write("\n")
            self._out.flush()

    def _draw(self) -> None:
        if self._out is None:
            return
        step, total = self._progress.step, self._progress.total
        line = f"{self._id} {self._state:<9}"
        if total:
            filled = min(self.WIDTH, self.WIDTH * step // total)
            line += f" [{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{total}"
        if line != self._drawn:
            self._out.write("\r" + line.ljust(len(self._drawn)))
            self._out.flush()
            self._drawn = line


@contextmanager
def _staged(target: Path) -> Iterator[IO[bytes]]:
    """A temp file beside ``target``, renamed onto it only when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(path: str | os.PathLike[str], generation_id: str, variant: str) -> Path:
    target = Path(path)
    if target.is_dir():
        return target / f"{generation_id}.{'mp4' if variant == 'video' else 'png'}"
    return target


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
