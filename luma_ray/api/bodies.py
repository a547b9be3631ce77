"""Request bodies: the size limit every body meets before any route or key check runs.

:class:`BodyLimit` is the app's outermost middleware (pure ASGI, so it sees the body as the
server receives it). It reads the whole body before the app runs, counting bytes as they
arrive, and answers 413 ``too_large`` as soon as the count passes the limit: a chunked body
with no ``Content-Length``, a multipart upload and a body with no key all stop there, having
cost at most the limit plus one chunk. The app then gets the body in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

from luma_ray.api.problems import luma_problem
from luma_ray.errors import TooLarge

__all__ = ["MAX_BODY_BYTES", "BodyLimit"]

MAX_BODY_BYTES = 1 << 20
"""The most bytes a request body may have (1 MiB); the API's bodies are a few hundred."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Coroutine[Any, Any, None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Coroutine[Any, Any, None]]


class BodyLimit:
    """ASGI middleware: read each HTTP request's body, at most ``max_bytes`` of it, before the
    app; 413 ``too_large`` (problem+json, ``Connection: close``) past that. The rest of an
    oversize body is never read."""

    def __init__(self, app: App, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
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

    async def _refuse(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        err = TooLarge(f"request body is over {self.max_bytes} bytes; send a smaller request")
        response = luma_problem(err)
        response.headers["Connection"] = "close"  # do not read the rest to keep the connection
        await response(scope, receive, send)


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


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
