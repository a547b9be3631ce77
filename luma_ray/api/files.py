"""Uploaded files (``/v1/files``): images and videos a tenant uploads once and uses as
generation inputs by id.

A file lives in the blob store under its tenant, ``files/<tenant digest>/<file id>/`` (the
``content`` and a ``meta.json`` record), private as results are: the store is never served
directly, only through these routes, which build the key from the caller's own tenant, so
another tenant's file id finds nothing (404, as if absent). The tenant appears in keys only as
a digest (a tenant name may hold characters a key cannot).

An upload is streamed to a temporary file (``uploads``), recognised by its content (PNG, JPEG,
WebP, MP4/MOV, WebM), proved decodable and measured (``luma_ray.models.media.probe``) before it
is stored. Deleting a file never breaks a queued generation: a generation keeps its own copy of
each input (``luma_ray.api.inputs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import time
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from typing_extensions import TypedDict

from luma_ray.api.context import Caller, Ports, ports
from luma_ray.api.uploads import receive_upload
from luma_ray.errors import InvalidRequest, NotFound
from luma_ray.models.media import MediaError, MediaInfo, probe

FILE_ID = re.compile(r"^file_[0-9a-f]{24}$")
_MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "webm": "video/webm",
}


class FileOut(TypedDict):
    """An uploaded file as the API shows it; ``frames`` is None for an image."""

    id: str
    object: Literal["file"]
    url: str
    kind: str
    format: str
    media_type: str
    bytes: int
    width: int
    height: int
    frames: int | None
    filename: str
    created_at: int


class FileDeletedOut(TypedDict):
    id: str
    object: Literal["file.deleted"]
    deleted: bool


def tenant_digest(tenant: str) -> str:
    """The tenant as it appears in blob keys: a digest, so any tenant name makes a valid key."""
    return hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:32]


def file_prefix(tenant: str, file_id: str) -> str:
    return f"files/{tenant_digest(tenant)}/{file_id}/"


def content_key(tenant: str, file_id: str) -> str:
    return file_prefix(tenant, file_id) + "content"


def media_type(fmt: str) -> str:
    return _MEDIA_TYPES.get(fmt, "application/octet-stream")


def file_out(file_id: str, info: MediaInfo, size: int, filename: str, created: int) -> FileOut:
    return {
        "id": file_id,
        "object": "file",
        "url": f"/v1/files/{file_id}/content",
        "kind": info.kind,
        "format": info.format,
        "media_type": media_type(info.format),
        "bytes": size,
        "width": info.width,
        "height": info.height,
        "frames": info.frames if info.kind == "video" else None,
        "filename": filename,
        "created_at": created,
    }


def load_record(p: Ports, tenant: str, file_id: str) -> FileOut:
    """The caller's file ``file_id``; ``NotFound`` for an unknown id or another tenant's."""
    if not FILE_ID.match(file_id):
        raise NotFound(f"no file {file_id[:64]!r}; file ids look like file_0123...")
    try:
        raw = p.store.get_bytes(file_prefix(tenant, file_id) + "meta.json")
    except NotFound:
        raise NotFound(f"no file {file_id}") from None
    record: FileOut = json.loads(raw)
    return record


def _store_upload(p: Ports, tenant: str, path: str, size: int, filename: str) -> FileOut:
    try:
        info = probe(path, max_side=p.settings.limits.max_input_side)
    except MediaError as err:
        raise InvalidRequest(f"file: {err}") from None
    file_id = f"file_{secrets.token_hex(12)}"
    record = file_out(file_id, info, size, filename, int(time.time()))
    p.store.put_file(content_key(tenant, file_id), path, record["media_type"])
    meta = json.dumps(record).encode()
    p.store.put_bytes(file_prefix(tenant, file_id) + "meta.json", meta, "application/json")
    return record


def add_routes(app: FastAPI) -> None:
    @app.post("/v1/files", status_code=201)
    async def upload_file(request: Request, who: Caller) -> FileOut:
        """Upload one image or video (multipart field ``file``) to use as a generation input."""
        p = ports(request)
        upload = await receive_upload(
            request.stream(),
            request.headers.get("content-type", ""),
            p.settings.limits.max_upload_bytes,
        )
        try:
            return await asyncio.to_thread(
                _store_upload, p, who.tenant, str(upload.path), upload.size, upload.filename
            )
        finally:
            with contextlib.suppress(OSError):
                upload.path.unlink()

    @app.get("/v1/files/{file_id}")
    async def get_file(request: Request, file_id: str, who: Caller) -> FileOut:
        return await asyncio.to_thread(load_record, ports(request), who.tenant, file_id)

    @app.get("/v1/files/{file_id}/content")
    async def file_content(request: Request, file_id: str, who: Caller) -> Response:
        p = ports(request)
        record = await asyncio.to_thread(load_record, p, who.tenant, file_id)
        data = await asyncio.to_thread(p.store.get_bytes, content_key(who.tenant, file_id))
        return Response(data, media_type=record["media_type"])

    @app.delete("/v1/files/{file_id}")
    async def delete_file(request: Request, file_id: str, who: Caller) -> FileDeletedOut:
        """Delete a file. Generations already submitted keep their own copy of it."""
        p = ports(request)
        await asyncio.to_thread(load_record, p, who.tenant, file_id)

        def purge() -> None:
            for key in p.store.list(file_prefix(who.tenant, file_id)):
                p.store.delete(key)

        await asyncio.to_thread(purge)
        return {"id": file_id, "object": "file.deleted", "deleted": True}
