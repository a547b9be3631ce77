"""A generation's image and video inputs, checked and stored before the job is queued.

``POST /v1/generations`` (and ``/v1/videos`` with ``input_reference``) call
:func:`store_inputs`. Each of ``first_frame``, ``last_frame`` (images) and ``source_video``
(a video; also the id of a succeeded generation of the caller, for remix and modify) is a file
id from ``/v1/files``, a ``data:`` URL (base64) or an http(s) URL, fetched
under the webhooks' address rules (``remote_media``). Every input is recognised by its
content, proved decodable and measured (``luma_ray.models.media.probe``): a side over
``max_input_side`` pixels, a source video with more frames than the model's ``max_frames``, an
image where a video belongs (or the reverse), or a kind the model does not take is a 400 whose
message starts with the field's name; over ``max_upload_bytes`` it is a 413. Only when every
input passed is each one stored, as the job's own copy, under
``inputs/<tenant digest>/<token>/<field>``: the scheduler sees keys only, and deleting the
file afterwards does not break the job. ``extend`` (a succeeded generation of the same tenant)
becomes the key of that generation's result video, not a copy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from luma_ray.api.context import Ports
from luma_ray.api.files import FILE_ID, content_key, load_record, tenant_digest
from luma_ray.api.keys import Principal
from luma_ray.api.remote_media import MediaFetcher
from luma_ray.api.schemas import CreateGeneration
from luma_ray.errors import InvalidRequest, NotFound, TooLarge
from luma_ray.jobs.request import GenerationInputs, ModelLimits
from luma_ray.models.media import MediaError, probe
from luma_ray.scheduler.protocol import GetJob

MEDIA_FIELDS = {"first_frame": "image", "last_frame": "image", "source_video": "video"}
"""The body's media fields and the kind each must be."""
_KIND_OF_FIELD = {"extend": "extend_video"}
GENERATION_ID = re.compile(r"^gen_[0-9a-z]{26}$")
"""A job id: ``source_video`` may name a succeeded generation of the caller (its video)."""


@dataclass
class _Resolved:
    """One checked input: a local file to store, or a stored file to copy."""

    field: str
    identity: str  # what makes it "the same input" (for idempotent retries)
    path: Path | None = None
    file_key: str | None = None


@dataclass
class StoredInputs:
    """What :func:`store_inputs` made: the job's inputs and the keys it wrote (new ones only),
    which the caller deletes if the submit fails."""

    inputs: GenerationInputs | None
    written: list[str]


async def store_inputs(
    p: Ports, who: Principal, body: CreateGeneration, idempotency_key: str | None
) -> StoredInputs:
    """Check every input of ``body`` and store it; see the module's docstring."""
    given = [name for name in MEDIA_FIELDS if getattr(body, name) is not None]
    if not given and body.extend is None:
        inputs = GenerationInputs(strength=body.strength) if body.strength is not None else None
        return StoredInputs(inputs, [])  # a lone strength: intake says what is missing
    limits = await _model_limits(p, body.model)
    if limits is not None:
        _check_kinds(given + (["extend"] if body.extend else []), limits)
    extend_key = await _extend_key(p, who.tenant, body.extend) if body.extend else None
    with tempfile.TemporaryDirectory(prefix="luma-inputs-") as tmp:
        resolved = [
            await _resolve(p, who.tenant, name, getattr(body, name), Path(tmp), limits)
            for name in given
        ]
        keys, written = await asyncio.to_thread(
            _store_all, p, who.tenant, resolved, idempotency_key
        )
    return StoredInputs(
        GenerationInputs(
            first_frame=keys.get("first_frame"),
            last_frame=keys.get("last_frame"),
            source_video=keys.get("source_video"),
            strength=body.strength,
            extend_video=extend_key,
        ),
        written,
    )


def delete_keys(p: Ports, keys: list[str]) -> None:
    for key in keys:
        with contextlib.suppress(NotFound):
            p.store.delete(key)


def input_keys(inputs: GenerationInputs | None) -> list[str]:
    """The keys of a job's own input copies (not ``extend_video``: another job's result)."""
    if inputs is None:
        return []
    found = (inputs.first_frame, inputs.last_frame, inputs.source_video)
    return [key for key in found if key is not None and key.startswith("inputs/")]


async def _model_limits(p: Ports, model: str) -> ModelLimits | None:
    described = await p.model_limits.get()  # the replica's copy: no scheduler call
    return described.models.get(model.partition("@")[0])  # unknown: intake says so


def _check_kinds(fields: list[str], limits: ModelLimits) -> None:
    for name in fields:
        kind = _KIND_OF_FIELD.get(name, name)
        if kind not in limits.inputs:
            takes = ", ".join(limits.inputs) or "no image or video inputs (text-to-video only)"
            raise InvalidRequest(f"{name}: this model does not take {kind}; it takes {takes}")


async def _extend_key(p: Ports, tenant: str, job_id: str) -> str:
    return (await _generation_video(p, tenant, job_id, "extend"))[0]


async def _generation_video(p: Ports, tenant: str, job_id: str, name: str) -> tuple[str, int]:
    """The store key and frame count of a succeeded generation's video, for field ``name``."""
    try:
        view = await p.scheduler.call(GetJob(job_id, tenant))
    except NotFound:
        raise InvalidRequest(f"{name}: no generation {job_id[:64]!r} of yours") from None
    if view.state != "succeeded":
        raise InvalidRequest(
            f"{name}: generation {view.id} is {view.state.value}; only a succeeded "
            "generation's video can be used"
        )
    uri = view.result_uris.get("video", "")
    base = p.store.uri.rstrip("/") + "/"
    if not uri.startswith(base):
        raise InvalidRequest(f"{name}: the video of generation {view.id} is not in this store")
    return uri[len(base) :], view.params.frames


async def _resolve(
    p: Ports, tenant: str, name: str, value: str, tmp: Path, limits: ModelLimits | None
) -> _Resolved:
    """Fetch or decode one input into ``tmp`` (or find its file), then check it."""
    max_bytes = p.settings.limits.max_upload_bytes
    if value.startswith("data:"):
        path = tmp / name
        await asyncio.to_thread(path.write_bytes, _data_url(value, name, max_bytes))
        resolved = _Resolved(name, "", path=path)
    elif value.startswith(("http://", "https://")):
        path = tmp / name
        fetcher = MediaFetcher(
            allow_private=p.settings.allow_private_inputs,
            resolver=p.settings.resolver,
            timeout_s=p.settings.limits.input_fetch_timeout_s,
            max_bytes=max_bytes,
        )
        await asyncio.to_thread(fetcher.fetch, value, name, path)
        resolved = _Resolved(name, "", path=path)
    elif name == "source_video" and GENERATION_ID.match(value):  # modify / remix a generation
        key, frames = await _generation_video(p, tenant, value, name)
        _check_media(name, "video", frames, limits)
        return _Resolved(name, value, file_key=key)
    elif FILE_ID.match(value):
        try:
            record = await asyncio.to_thread(load_record, p, tenant, value)
        except NotFound:
            raise InvalidRequest(
                f"{name}: no file {value} of yours; upload it with POST /v1/files first"
            ) from None
        _check_media(name, record["kind"], record["frames"] or 1, limits)
        return _Resolved(name, value, file_key=content_key(tenant, value))
    else:
        raise InvalidRequest(
            f"{name}: give a file id from POST /v1/files (file_...), a data: URL or an http(s) URL"
        )
    try:
        info = await asyncio.to_thread(probe, path, max_side=p.settings.limits.max_input_side)
    except MediaError as err:
        raise InvalidRequest(f"{name}: {err}") from None
    _check_media(name, info.kind, info.frames, limits)
    resolved.identity = await asyncio.to_thread(_digest, path)
    return resolved


def _check_media(name: str, kind: str, frames: int, limits: ModelLimits | None) -> None:
    wanted = MEDIA_FIELDS[name]
    if kind != wanted:
        raise InvalidRequest(f"{name}: this is a {kind}; {name} takes an {wanted}")
    if kind == "video" and limits is not None and frames > limits.max_frames:
        raise InvalidRequest(
            f"{name}: the video has {frames} frames; this model takes at most "
            f"{limits.max_frames} (trim it, or lower its frame rate)"
        )


def _data_url(value: str, name: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:[<type>];base64,<payload>`` URL."""
    head, sep, payload = value.partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidRequest(f"{name}: a data: URL must be base64, as data:image/png;base64,...")
    if len(payload) * 3 // 4 > max_bytes:
        raise TooLarge(f"{name}: the data: URL holds over {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{name}: the data: URL's base64 does not decode") from None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _store_all(
    p: Ports, tenant: str, resolved: list[_Resolved], idempotency_key: str | None
) -> tuple[dict[str, str], list[str]]:
    """Store each input as the job's own copy; (field → key, keys newly written)."""
    keys: dict[str, str] = {}
    written: list[str] = []
    try:
        for item in resolved:
            key = _input_key(tenant, item, idempotency_key)
            if not p.store.exists(key):
                written.append(key)
                if item.path is not None:
                    p.store.put_file(key, item.path)
                else:
                    assert item.file_key is not None
                    with tempfile.TemporaryDirectory(prefix="luma-copy-") as tmp:
                        copy = p.store.get_file(item.file_key, Path(tmp) / "copy")
                        p.store.put_file(key, copy)
            keys[item.field] = key
    except BaseException:
        delete_keys(p, written)
        raise
    return keys, written


def _input_key(tenant: str, item: _Resolved, idempotency_key: str | None) -> str:
    """Where a job's copy of one input goes: random, or the same for a retry with the same
    Idempotency-Key and the same input (so the retry is "the same request")."""
    if idempotency_key is None:
        token = secrets.token_hex(16)
    else:
        parts = (tenant, idempotency_key, item.field, item.identity)
        token = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f"inputs/{tenant_digest(tenant)}/{token}/{item.field}"
