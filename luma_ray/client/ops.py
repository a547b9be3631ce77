"""The native API's operations as values, and the ones of several steps as plans; no I/O.

An :class:`Op` is one request (method, path, query, JSON body, headers) with how to read its
reply. A plan is a generator that yields ops, and :class:`Follow` ("read this event stream"),
and is sent back what each gave: ``create`` (which may retry a 429) and ``wait`` (events, then
polling) are plans. :class:`~luma_ray.client.http.LumaClient` and
:class:`~luma_ray.client.http_async.AsyncLumaClient` only perform what these describe, one with
blocking calls and one with asyncio, stepping plans with :class:`Steps`; so each request,
retry and wait rule is written here once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from luma_ray.client.progress import JobProgress
from luma_ray.client.wire import (
    BUSY_RETRIES,
    MAX_BUSY_WAIT_S,
    STREAM_IDLE_S,
    BusyError,
    Generation,
    SseParser,
    _api_error,
    _json,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Op(Generic[T]):
    """One request of the API and how to read its reply into a ``T``.

    ``read_timeout_s`` is ``"client"`` (the client's timeouts) or how long an event stream may
    stay silent (None: for ever). ``delay_s`` asks the client to sleep that long before sending
    (a retry, a poll).
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    """Multipart file parts (an upload), instead of ``json``."""
    read_timeout_s: float | None | Literal["client"] = "client"
    delay_s: float = 0.0

    def reply(self, response: httpx.Response) -> T:
        """The result of a read response; the API's error (an ``ApiError``) for a failure."""
        if response.is_error:
            raise _api_error(response)
        return self.read(response)

    def after(self, delay_s: float) -> Op[T]:
        """This request, sent ``delay_s`` from now."""
        return replace(self, delay_s=delay_s)


class Follow:
    """Command: read the event stream ``op`` opens, a line at a time, into :meth:`feed`; the
    client stops reading when it returns True. ``done`` is then the final generation."""

    def __init__(self, op: Op[httpx.Response], bar: JobProgress) -> None:
        self.op = op
        self.done: Generation | None = None
        self._bar = bar
        self._parser = SseParser()

    def feed(self, line: str) -> bool:
        """Take one line of the stream; True once the ``done`` event has come."""
        if (item := self._parser.feed(line)) is None:
            return False
        event, data = item
        if event == "done":
            self.done = Generation.from_json(data)
            return True
        if event == "state":
            self._bar.update(state=str(data.get("state", "")))
        elif event == "progress":
            self._bar.update(step=int(data.get("step", 0)), total=int(data.get("total", 0)))
        return False


Command = Op[Any] | Follow
Plan = Generator[Command, Any, T]
"""Yields what the client must do, is sent each op's result, returns a ``T``."""


class Steps(Generic[T]):
    """A client's handle on a plan: :meth:`next` gives the next command (None once the plan
    has returned :attr:`result`); the client performs it, then hands back its result with
    :meth:`reply` or what it raised with :meth:`fail` (raised inside the plan)."""

    result: T

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self._reply: Any = None
        self._error: BaseException | None = None

    def next(self) -> Command | None:
        reply, error, self._reply, self._error = self._reply, self._error, None, None
        try:
            return self._plan.send(reply) if error is None else self._plan.throw(error)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def reply(self, value: Any) -> None:
        self._reply = value

    def fail(self, error: BaseException) -> None:
        self._error = error


@dataclass(frozen=True)
class Page:
    """One page of ``GET /v1/generations``; ``next`` fetches the one after (None: the last)."""

    items: list[Generation]
    next: Op[Page] | None


def _path(generation_id: str, suffix: str = "") -> str:
    return f"/v1/generations/{quote(generation_id, safe='')}{suffix}"


def _generation(response: httpx.Response) -> Generation:
    return Generation.from_json(_json(response))


def _nothing(response: httpx.Response) -> None:
    return None


def _body(response: httpx.Response) -> dict[str, Any]:
    return dict(_json(response))


def _data(response: httpx.Response) -> list[dict[str, Any]]:
    return list(_json(response)["data"])


def _response(response: httpx.Response) -> httpx.Response:
    return response


def get(generation_id: str) -> Op[Generation]:
    return Op("GET", _path(generation_id), _generation)


def cancel(generation_id: str) -> Op[Generation]:
    return Op("POST", _path(generation_id, "/cancel"), _generation)


def delete(generation_id: str) -> Op[None]:
    return Op("DELETE", _path(generation_id), _nothing)


INPUT_FIELDS = ("first_frame", "last_frame", "source_video")
"""The create fields that take an image or video: a local path (uploaded first), a file id,
a ``data:`` URL or an http(s) URL."""


def local_input(value: str | os.PathLike[str]) -> Path | None:
    """The local file an input names, or None for a file id or a URL (sent as given)."""
    if isinstance(value, os.PathLike):
        return Path(value)
    if value.startswith(("file_", "data:", "http://", "https://")):
        return None
    return Path(value)


def upload(path: str | os.PathLike[str]) -> Op[dict[str, Any]]:
    """``POST /v1/files`` with the file's bytes (the server checks what it is)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no file {source} to upload")
    part = (source.name, source.read_bytes(), "application/octet-stream")
    return Op("POST", "/v1/files", _body, files={"file": part})


def file_info(file_id: str) -> Op[dict[str, Any]]:
    return Op("GET", f"/v1/files/{quote(file_id, safe='')}", _body)


def delete_file(file_id: str) -> Op[None]:
    return Op("DELETE", f"/v1/files/{quote(file_id, safe='')}", _nothing)


def limits() -> Op[dict[str, Any]]:
    return Op("GET", "/v1/limits", _body)


def models() -> Op[list[dict[str, Any]]]:
    return Op("GET", "/v1/models", _data)


def page(state: str | None, limit: int, after: str | None = None) -> Op[Page]:
    """The page of ``limit`` generations (in ``state``, if set) after the cursor ``after``."""

    def read(response: httpx.Response) -> Page:
        body = _json(response)
        cursor = body.get("next_after")
        more = page(state, limit, cursor) if body.get("has_more") and cursor else None
        return Page([Generation.from_json(item) for item in body["data"]], more)

    query = {"limit": limit, "state": state, "after": after}
    params = {name: value for name, value in query.items() if value is not None}
    return Op("GET", "/v1/generations", read, params=params)


def events(generation_id: str, read_timeout_s: float | None) -> Op[httpx.Response]:
    """The job's ``text/event-stream``; the client reads its lines."""
    path, headers = _path(generation_id, "/events"), {"Accept": "text/event-stream"}
    return Op("GET", path, _response, headers=headers, read_timeout_s=read_timeout_s)


def content(generation_id: str, variant: str) -> Op[httpx.Response]:
    """A finished job's ``video`` or ``thumbnail``; the client streams its bytes to a file."""
    params, headers = {"variant": variant}, {"Accept": "*/*"}
    return Op("GET", _path(generation_id, "/content"), _response, params=params, headers=headers)


def create(
    prompt: str, *, idempotency_key: str | None, retry_on_busy: bool, **fields: Any
) -> Plan[Generation]:
    """``POST /v1/generations`` with only the fields the caller set, so the server's defaults
    apply; with ``retry_on_busy``, up to ``BUSY_RETRIES`` 429s are waited out (each for its
    Retry-After, at most ``MAX_BUSY_WAIT_S``) before the last ``BusyError`` is raised."""
    metadata = fields.pop("metadata", None)
    body = {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None and v != ""}}
    if metadata:
        body["metadata"] = dict(metadata)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    op = Op("POST", "/v1/generations", _generation, json=body, headers=headers)
    for attempt in range(BUSY_RETRIES + 1):
        try:
            gen: Generation = yield op
            return gen
        except BusyError as err:
            if not retry_on_busy or attempt == BUSY_RETRIES:
                raise
            wait_s = err.retry_after_s if err.retry_after_s is not None else 1.0
            op = op.after(min(MAX_BUSY_WAIT_S, wait_s))
            log.info("create refused (%s); retrying in %.1f s", err.code, op.delay_s)
    raise AssertionError("unreachable")  # pragma: no cover


def wait(
    generation_id: str, timeout_s: float | None, poll_s: float, progress: bool | None
) -> Plan[Generation]:
    """Follow the job's events until ``done``; poll ``get`` every ``poll_s`` once the stream
    drops or ends early; reopen it after one ``get`` when it stays silent ``STREAM_IDLE_S``.
    Raises ``TimeoutError`` past ``timeout_s``; shows a :class:`JobProgress` meanwhile."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    streaming, delay_s = True, 0.0
    with JobProgress(generation_id, progress) as bar:
        while True:
            gen: Generation | None = None
            if streaming:
                remaining = _remaining_s(deadline)
                silent_s = STREAM_IDLE_S if remaining is None else min(remaining, STREAM_IDLE_S)
                follow = Follow(events(generation_id, max(0.001, silent_s)), bar)
                try:
                    yield follow
                    gen = follow.done
                    streaming = gen is not None  # a stream that ends without done: poll
                except httpx.ReadTimeout:
                    pass  # quiet for STREAM_IDLE_S or the deadline: check, then reopen
                except httpx.TransportError as err:
                    log.info("generation %s: event stream dropped (%r)", generation_id, err)
                    streaming = False
            if gen is None or not gen.done:
                gen = yield get(generation_id).after(delay_s)
            bar.update(gen.state, gen.progress.step, gen.progress.total)
            if gen.done:
                return gen
            remaining = _remaining_s(deadline)
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"generation {generation_id} is still {gen.state} after {timeout_s} s"
                )
            if not streaming:  # polling from now on: the next get waits its turn
                delay_s = poll_s if remaining is None else min(poll_s, remaining)


def _remaining_s(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()
