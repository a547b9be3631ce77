"""The HTTP client of the native API: :class:`LumaClient`, blocking (:class:`AsyncLumaClient`,
the same for asyncio, is in ``http_async``).

Scripts, notebooks and services outside the Ray cluster call these; they talk to the ingress
(``/v1/generations``, ``/v1/limits``, ``/v1/models``) with a bearer key. The two classes share
everything but the I/O: what each request is, the retries and the wait loop are described once
in ``ops``; types, errors and the event-stream parser are in ``wire``. Errors are
:class:`ApiError` subclasses that are also luma_ray's own errors, so ``except NotFound`` catches
a missing job from this client and from the Ray client alike. Network failures stay
``httpx.TransportError``. Nothing here reads environment variables; :meth:`LumaClient.from_env`
takes the mapping it reads from as an argument.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from luma_ray import __version__
from luma_ray.client import ops
from luma_ray.client.wire import (
    DEFAULT_URL,
    ApiError,
    AuthError,
    BadRequestError,
    BusyError,
    ConflictError,
    ForbiddenError,
    Generation,
    GenerationError,
    NotFoundError,
    Progress,
    ServerError,
    SseParser,
    _staged,
    _target,
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
    "GenerationError",
    "LumaClient",
    "NotFoundError",
    "Progress",
    "ServerError",
]

T = TypeVar("T")
_C = TypeVar("_C", bound="_Base")


class _Base:
    """What both clients share: the base URL, the key (kept out of repr), and turning an
    :class:`~luma_ray.client.ops.Op` into an ``httpx.Request``."""

    _http: httpx.Client | httpx.AsyncClient

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

    def _build(self, op: ops.Op[Any]) -> httpx.Request:
        headers = {"User-Agent": f"luma-ray-client/{__version__}", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(op.headers or {})
        read_s = op.read_timeout_s
        timeout = (
            httpx.USE_CLIENT_DEFAULT
            if read_s == "client"
            else httpx.Timeout(self._timeout_s, read=read_s)
        )
        url = self.base_url + op.path
        return self._http.build_request(
            op.method,
            url,
            params=op.params,
            json=op.json,
            files=op.files,
            headers=headers,
            timeout=timeout,
        )


class LumaClient(_Base):
    """Blocking client of the native API; thread-safe, so one per process is plenty.

    ``transport`` replaces the network (tests pass an in-process app's transport);
    ``http_client`` replaces the whole ``httpx.Client`` (its base URL is ignored and it is not
    closed by :meth:`close`). ``poll_s`` is the interval of ``wait()`` when it must poll.
    """

    _http: httpx.Client

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
        first_frame: str | os.PathLike[str] | None = None,
        last_frame: str | os.PathLike[str] | None = None,
        source_video: str | os.PathLike[str] | None = None,
        strength: float | None = None,
        extend: str | None = None,
    ) -> Generation:
        """Queue a generation. ``retry_on_busy`` waits out up to ``BUSY_RETRIES`` 429s (each
        for its Retry-After, at most ``MAX_BUSY_WAIT_S``) instead of raising ``BusyError``.

        ``first_frame``, ``last_frame`` (images) and ``source_video`` (with ``strength``) are
        each a local path (uploaded first, with :meth:`upload_file`), a file id, a ``data:``
        URL or an http(s) URL; ``extend`` is the id of a succeeded generation to continue."""
        given = {"first_frame": first_frame, "last_frame": last_frame}
        given["source_video"] = source_video
        inputs = {name: self._input(value) for name, value in given.items() if value}
        return self._run(
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

    def upload_file(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Upload an image (PNG, JPEG, WebP) or video (MP4, MOV, WebM) to use as an input:
        ``{id, url, kind, bytes, width, height, frames, ...}``."""
        return self._send(ops.upload(path))

    def get_file(self, file_id: str) -> dict[str, Any]:
        return self._send(ops.file_info(file_id))

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file; generations already submitted keep their own copy."""
        self._send(ops.delete_file(file_id))

    def _input(self, value: str | os.PathLike[str]) -> str:
        path = ops.local_input(value)
        return str(value) if path is None else str(self.upload_file(path)["id"])

    def get(self, generation_id: str) -> Generation:
        """The job as it is now; ``NotFoundError`` when absent or another tenant's."""
        return self._send(ops.get(generation_id))

    def list(self, *, state: str | None = None, limit: int = 20) -> Iterator[Generation]:
        """Every generation of the key's tenant, newest first, fetched lazily ``limit`` (the
        page size, 1-100) at a time; ``itertools.islice`` caps the total."""
        op: ops.Op[ops.Page] | None = ops.page(state, limit)
        while op is not None:
            page = self._send(op)
            yield from page.items
            op = page.next

    def cancel(self, generation_id: str) -> Generation:
        """Cancel a queued or running job (a running one stops at its next heartbeat); a
        finished job comes back unchanged."""
        return self._send(ops.cancel(generation_id))

    def delete(self, generation_id: str) -> None:
        """Forget a generation and its results (cancelling it first if it still runs)."""
        self._send(ops.delete(generation_id))

    def limits(self) -> dict[str, Any]:
        """The key's tenant and tier, its caps, and each model's limits."""
        return self._send(ops.limits())

    def models(self) -> builtins.list[dict[str, Any]]:
        """The served models, each ``{"id", "object", "limits"}``."""
        return self._send(ops.models())

    def events(
        self, generation_id: str, *, read_timeout_s: float | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events until the server ends them: ``state`` on each change,
        ``progress`` on each step, then ``done`` with the generation. Blocks between events
        (up to ``read_timeout_s`` if set; a drop raises ``httpx.TransportError``)."""
        parser = SseParser()
        with self._stream(ops.events(generation_id, read_timeout_s)) as response:
            yield from filter(None, map(parser.feed, response.iter_lines()))

    def wait(
        self, generation_id: str, *, timeout_s: float | None = None, progress: bool | None = None
    ) -> Generation:
        """Block until the job is final and return it; ``TimeoutError`` after ``timeout_s``.

        Follows :meth:`events`; when the stream drops it polls :meth:`get` every ``poll_s``.
        ``progress`` draws a progress line on stderr (None: when a terminal or notebook shows
        it). A failed or cancelled job is returned, not raised: check ``state`` and ``error``.
        """
        return self._run(ops.wait(generation_id, timeout_s, self._poll_s, progress))

    def download(
        self, generation_id: str, path: str | os.PathLike[str], *, variant: str = "video"
    ) -> Path:
        """Stream a finished job's ``video`` (or ``thumbnail``) to ``path`` and return it.

        Writes a temp file beside ``path`` and renames it, so ``path`` is whole or absent. A
        directory ``path`` gets ``<id>.mp4`` (or ``.png``) inside it.
        """
        target = _target(path, generation_id, variant)
        with self._stream(ops.content(generation_id, variant)) as response, _staged(target) as out:
            out.writelines(response.iter_bytes())
        return target

    def _send(self, op: ops.Op[T]) -> T:
        if op.delay_s:
            time.sleep(op.delay_s)
        return op.reply(self._http.send(self._build(op)))

    @contextmanager
    def _stream(self, op: ops.Op[httpx.Response]) -> Iterator[httpx.Response]:
        """The response to ``op`` with its body still to read; the API's error if it failed."""
        with closing(self._http.send(self._build(op), stream=True)) as response:
            if response.is_error:
                response.read()
            yield op.reply(response)

    def _run(self, plan: ops.Plan[T]) -> T:
        steps = ops.Steps(plan)
        while (command := steps.next()) is not None:
            try:
                steps.reply(self._do(command))
            except BaseException as err:  # the plan's to handle: retry, poll, or raise it
                steps.fail(err)
        return steps.result

    def _do(self, command: ops.Command) -> Any:
        if not isinstance(command, ops.Follow):
            return self._send(command)
        with self._stream(command.op) as response:
            for line in response.iter_lines():
                if command.feed(line):
                    break
        return None
