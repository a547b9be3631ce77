"""Request bodies: the size limit every body meets before any route or key check runs, and
JSON parsed with a depth limit.

:class:`BodyLimit` is the app's outermost middleware (pure ASGI, so it sees the body as the
server receives it). It reads the whole body before the app runs, counting bytes as they
arrive, and answers 413 ``too_large`` as soon as the count passes the limit: a chunked body
with no ``Content-Length``, a multipart upload and a body with no key all stop there, having
cost at most the limit plus one chunk. The app then gets the body in one piece.

:func:`parse_json` is how the routes parse JSON bodies: ``/v1/videos`` calls it, and
:class:`JsonRoute` makes FastAPI's own body parsing (``/v1/generations``, admin) use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from luma_ray.api.problems import luma_problem
from luma_ray.errors import InvalidRequest, TooLarge

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "BodyLimit", "JsonRoute", "parse_json"]

MAX_BODY_BYTES = 1 << 20
"""The most bytes a request body may have (1 MiB); the API's bodies are a few hundred."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of objects and arrays a JSON body may have; the API's bodies have 2."""


class BodyLimit:
    """ASGI middleware: read each HTTP request's body, at most ``max_bytes`` of it, before the
    app; 413 ``too_large`` (problem+json, ``Connection: close``) past that. The rest of an
    oversize body is never read."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        streamed: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})
        """Paths whose bodies go to the app as they arrive (uploads), with their own limit:
        a declared length past it is refused here, a longer body fails as the app reads it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        stream_limit = self.streamed.get(scope.get("path", ""))
        if stream_limit is not None:
            if declared is not None and declared > stream_limit:
                await self._refuse(scope, receive, send, stream_limit)
                return
            await self.app(scope, _counted(receive, stream_limit), send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nobody to answer
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, limit: int | None = None
    ) -> None:
        limit = self.max_bytes if limit is None else limit
        err = TooLarge(f"request body is over {limit} bytes; send a smaller request")
        response = luma_problem(err, scope.get("path", ""))
        response.headers["Connection"] = "close"  # do not read the rest to keep the connection
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _counted(receive: Receive, max_bytes: int) -> Receive:
    """A ``receive`` that raises ``TooLarge`` once the body passes ``max_bytes`` (the route
    reading it answers 413; the rest is never read)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise TooLarge(f"request body is over {max_bytes} bytes; upload a smaller file")
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the whole body first, then the server's messages
    (``http.disconnect``, which streaming responses wait for)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in ``data``; :class:`InvalidRequest` when objects and arrays nest deeper
    than ``max_depth``. Malformed JSON raises ``json.JSONDecodeError`` (a ``ValueError``), as
    ``json.loads`` does, so each caller words that error its own way."""
    too_deep = InvalidRequest(
        f"JSON nested deeper than {max_depth} levels; send a flat object as docs/api.md shows"
    )
    try:
        value = json.loads(data)
    except RecursionError:  # far deeper than max_depth: the decoder ran out of stack
        raise too_deep from None
    # At most max_depth brackets in all cannot nest deeper: skip the walk for most bodies.
    if data.count(b"[") + data.count(b"{") > max_depth and _deeper_than(value, max_depth):
        raise too_deep
    return value


def _deeper_than(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > max_depth:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class _BoundedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except InvalidRequest as err:
                # FastAPI answers any other error while parsing a body with a vague 400.
                raise HTTPException(400, str(err)) from None
        return self._json


class JsonRoute(APIRoute):
    """An ``APIRoute`` whose JSON bodies are parsed by :func:`parse_json`: a body nested too
    deep is a 400 that says so. ``create_app`` makes it the app's route class."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedJsonRequest(request.scope, request.receive))

        return bounded
