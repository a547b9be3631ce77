"""``x-request-id`` on every response: the caller's own id when it sent a sane one, else a new
one. The id is in ``request.state.request_id`` for logs (the crash handler names it), so a user
who reports a failed request can be matched to the server's log line.

A pure ASGI middleware (it does not buffer bodies or touch streams), added outermost by
``create_app`` so even a refused body or a 404 carries the header.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestId:
    """Sets ``scope["state"]["request_id"]`` and the ``x-request-id`` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _inbound(scope) or f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def _inbound(scope: Scope) -> str | None:
    """The caller's ``x-request-id`` if it is short and plain (it ends up in our logs)."""
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            text = value.decode("latin-1")
            return text if _SANE.fullmatch(text) else None
    return None
