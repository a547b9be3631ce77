"""Asset URLs: a finished generation's files at signed, expiring URLs that need no API key,
so a browser's ``<video>`` tag or a CDN can fetch them (docs/api.md, "Asset URLs").

``GET /v1/assets/{job_id}/{variant}?exp=...&sig=...`` checks the signature and expiry
(``luma_ray.wire.assets``: 403 when either fails), then looks the job up (404 once it is
deleted, even with a valid signature) and answers the bytes with HTTP range support
(``Range: bytes=a-b`` → 206 with ``Content-Range``; 416 when no byte of the range exists;
``Accept-Ranges: bytes`` always). A range is read from the store with ``get_range``, so seeking
in a long video does not read all of it.

:func:`present` renders a generation with its asset URLs for the native routes: absolute, on
``ApiSettings.public_url`` or else the request's own base URL; with ``asset_urls:
s3_presigned`` on an S3 result store they are presigned S3 URLs instead.

Nothing here logs a URL's query string (the signature); the crash handler logs the path only.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from luma_ray.api.context import Ports, ports
from luma_ray.api.problems import problem
from luma_ray.errors import NotFound
from luma_ray.jobs import JobState
from luma_ray.scheduler.protocol import GetJob, JobView
from luma_ray.wire.assets import ASSETS_PATH, S3_PRESIGNED, VARIANT, media_type
from luma_ray.wire.assets import asset_links as links
from luma_ray.wire.generation import GenerationOut, generation_view

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_DIGITS = 18


class RangeNotSatisfiable(Exception):
    """No byte of the asked range exists (answered 416 with ``Content-Range: bytes */size``)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The bytes ``[start, stop)`` that ``Range: header`` asks of an object of ``size`` bytes;
    None for the whole object (no header, another unit, several ranges, or a malformed one: a
    server may ignore those, RFC 9110 14.2). Raises :class:`RangeNotSatisfiable`."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS or (not first and not last):
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{suffix} of {size} bytes")
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None  # last before first: invalid, ignored
    if start >= size:
        raise RangeNotSatisfiable(f"bytes={start}- of {size} bytes")
    return start, size if not last else min(int(last) + 1, size)


def stored_key(p: Ports, view: JobView, variant: str) -> str:
    """The result store key of a succeeded job's ``variant``; NotFound if it has none here."""
    uri = view.result_uris.get(variant)
    if uri is None:
        raise NotFound(f"generation {view.id} has no {variant!r}; try video or thumbnail")
    base = p.store.uri.rstrip("/") + "/"
    if not uri.startswith(base):
        raise NotFound(f"generation {view.id}: its {variant} is not in this store")
    return uri[len(base) :]


def asset_links(p: Ports, request: Request, view: JobView) -> dict[str, str]:
    """The signed (or presigned) URLs of a succeeded job's files; empty otherwise."""
    presign = getattr(p.store, "presign_uri", None)
    use_s3 = p.settings.asset_urls == S3_PRESIGNED and presign is not None
    base = p.settings.public_url or str(request.base_url)
    return links(view, p.signer, p.wall_clock(), base, presign if use_s3 else None)


def present(request: Request, view: JobView) -> GenerationOut:
    """A generation as the native API shows it, with its asset URLs."""
    return generation_view(view, assets=asset_links(ports(request), request, view))


def add_routes(app: FastAPI) -> None:
    @app.get(ASSETS_PATH + "/{job_id}/{variant}", include_in_schema=True)
    async def asset(
        request: Request,
        job_id: str,
        variant: str,
        exp: str = "",
        sig: str = "",
    ) -> Response:
        """A finished generation's file at a signed URL from ``assets`` (no API key);
        supports ``Range``."""
        return await asset_response(ports(request), request, job_id, variant, exp, sig)


async def asset_response(
    p: Ports, request: Request, job_id: str, variant: str, exp: str, sig: str
) -> Response:
    if p.signer is None:
        raise NotFound("this deployment serves no asset URLs")
    if not VARIANT.match(variant) or len(job_id) > 64:
        raise NotFound(f"no asset {variant[:32]!r}; try video or thumbnail")
    now_s = p.wall_clock()
    expires = p.signer.check(job_id, variant, exp, sig, now_s)  # 403 before any lookup
    view = await p.scheduler.call(GetJob(job_id, None))  # NotFound once deleted
    if view.state is not JobState.SUCCEEDED:
        raise NotFound(f"generation {view.id} has no content")
    key = stored_key(p, view, variant)
    size = await asyncio.to_thread(p.store.size, key)
    etag = '"' + hashlib.sha256(view.result_uris[variant].encode()).hexdigest()[:32] + '"'
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={max(0, math.floor(expires - now_s))}",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{view.id}{_suffix(key)}"',
    }
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        asked = None  # the caller's copy is another object: send all of this one
    try:
        span = byte_range(asked, size)
    except RangeNotSatisfiable:
        return _unsatisfiable(size)
    media = media_type(variant, key)
    if span is None:
        data = await asyncio.to_thread(p.store.get_bytes, key)
        return Response(data, media_type=media, headers=headers)
    start, stop = span
    data = await asyncio.to_thread(p.store.get_range, key, start, stop)
    headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size}"
    return Response(data, status_code=206, media_type=media, headers=headers)


def _unsatisfiable(size: int) -> JSONResponse:
    return problem(
        416,
        "range_not_satisfiable",
        "Range Not Satisfiable",
        f"the asset has {size} bytes; ask for a range that starts before byte {size}",
        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""
