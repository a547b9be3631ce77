"""Errors on the wire: ``application/problem+json`` with a stable machine code.

Every luma_ray error maps to one status (400, 401, 403, 404, 409, 413, 422, 429); a request
that fails validation gets 422 naming the field. Nothing unexpected leaks a traceback: it is
logged with the request id and answered as a 500 problem without details.

Under the OpenAI-compatible ``/v1/videos`` the same errors take OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so the ``openai`` SDK's exceptions carry
our message; the status codes and headers are the same.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from luma_ray.errors import (
    BackPressure,
    Conflict,
    Forbidden,
    InvalidRequest,
    LumaError,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

_STATUS: list[tuple[type[LumaError], int, str]] = [
    (Unauthorized, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (BackPressure, 429, "Too Many Requests"),
    (Unavailable, 503, "Service Unavailable"),
    (TooLarge, 413, "Content Too Large"),
    (InvalidRequest, 400, "Bad Request"),
]

_HTTP_CODES = {
    400: ("invalid_request", "Bad Request"),  # a body FastAPI could not parse
    404: ("not_found", "Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    413: ("too_large", "Content Too Large"),
}
"""Codes and titles of the errors FastAPI and Starlette raise themselves."""


OPENAI_PREFIX = "/v1/videos"
"""Paths under it answer errors in OpenAI's shape."""

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
"""OpenAI's error ``type`` per status; any other status is an ``invalid_request_error``."""


def openai_error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """An error in OpenAI's shape (what the ``openai`` SDK reads into its exceptions)."""
    kind = _OPENAI_TYPES.get(status, "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _answer(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem, or OpenAI's error shape under :data:`OPENAI_PREFIX`."""
    if request.url.path.startswith(OPENAI_PREFIX):
        return openai_error(status, code, detail, headers, param)
    return problem(status, code, title, detail, headers, **extra)


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"urn:luma-ray:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def luma_problem(err: LumaError, path: str = "") -> JSONResponse:
    """``err`` as the answer to a request for ``path`` (OpenAI's shape under
    :data:`OPENAI_PREFIX`, else a problem); also for middleware, which has no ``Request``."""
    status, title, headers = _status_of(err)
    if path.startswith(OPENAI_PREFIX):
        return openai_error(status, err.code, str(err), headers)
    return problem(status, err.code, title, str(err), headers)


def _status_of(err: LumaError) -> tuple[int, str, dict[str, str]]:
    """The status, title and headers of a luma_ray error."""
    for cls, status, title in _STATUS:
        if isinstance(err, cls):
            headers: dict[str, str] = {}
            if isinstance(err, Unavailable):
                headers["Retry-After"] = "5"
            if isinstance(err, BackPressure):
                headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
            if isinstance(err, Unauthorized):
                headers["WWW-Authenticate"] = "Bearer"
            return status, title, headers
    return 400, "Bad Request", {}


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(LumaError)
    async def _luma(request: Request, err: LumaError) -> JSONResponse:
        return luma_problem(err, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return _answer(
            request,
            422,
            "validation_error",
            "Unprocessable Content",
            f"{where}: {first.get('msg', 'invalid value')}",
            param=where,
            errors=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in err.errors()],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(err.status_code, ("http_error", str(err.detail)))
        detail = str(err.detail)
        if err.status_code in (404, 405) and detail == title:  # the router's own: no route
            where = f"{request.method} {request.url.path[:200]}"
            detail = f"no route {where} here; the API's routes are listed at /openapi.json"
            if err.status_code == 405:
                detail = f"{where} is not allowed; the API's routes are listed at /openapi.json"
        return _answer(request, err.status_code, code, title, detail)

    @app.exception_handler(Exception)
    async def _crash(request: Request, err: Exception) -> JSONResponse:
        log.exception(
            "unhandled error on %s %s (request %s)",
            request.method,
            request.url.path,
            getattr(request.state, "request_id", "-"),
        )
        return _answer(
            request, 500, "internal", "Internal Server Error", "the server failed; retry"
        )
