"""Signed, expiring asset URLs: a finished generation's files, readable without an API key.

``/v1/assets/{job_id}/{variant}?exp=<unix seconds>&sig=<signature>``. The signature is an
HMAC-SHA256, under the deployment's asset secret (``<data_dir>/asset.secret``, 0600, made on
first start), of a version tag, the path and the expiry; it is sent base64url without padding.
It covers the job id and the variant through the path, so it cannot be moved to another job,
variant or (since job ids are unique and unguessable) another tenant's job; the method is not
covered (GET and HEAD read the same bytes). It does not depend on the API key that created the
job: revoking the key leaves issued URLs valid until they expire. Deleting the generation ends
them (the route answers 404).

Who calls this: the ingress renders URLs into ``GET /v1/generations/{id}`` and checks them in
``GET /v1/assets/...`` (``luma_ray.api.assets``); the scheduler actor renders them into
webhooks. Pure: the standard library's ``hmac``, and ``Forbidden`` from the error tree. Time is
an argument (``now_s``, seconds since the epoch).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from luma_ray.errors import Forbidden, NotFound
from luma_ray.jobs import JobState
from luma_ray.scheduler.answers import JobView

ASSETS_PATH = "/v1/assets"
DEFAULT_TTL_S = 86_400
_TAG = b"luma-asset-v1"
VARIANT = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""What a variant may be called (``video``, ``thumbnail``, ...): it is part of a URL path."""
_SIG = re.compile(r"^[A-Za-z0-9_-]{43}$")
SIGNED = "signed"
S3_PRESIGNED = "s3_presigned"
"""The two kinds of asset URL (``asset_urls`` in the config): ours, or the S3 store's own."""
_MEDIA = {"video": "video/mp4", "thumbnail": "image/png"}
Presign = Callable[[str, int, str], str]
"""``(storage uri, lifetime in seconds, content type) -> URL``: an S3 store's presigned GET."""
MAX_EXP = 2**40
"""Expiries past this are refused as malformed (they are not times a URL is issued with)."""


@dataclass(frozen=True)
class AssetSigner:
    """Signs and checks asset URLs with one secret; ``ttl_s`` is how long a new URL lives."""

    secret: bytes = field(repr=False)
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("the asset secret must be at least 16 bytes")
        if self.ttl_s < 1:
            raise ValueError(f"ttl_s is {self.ttl_s}; it must be at least 1 second")

    def expiry(self, now_s: float) -> int:
        """When a URL issued at ``now_s`` expires (whole seconds)."""
        return int(now_s) + self.ttl_s

    def url(self, job_id: str, variant: str, now_s: float, base: str = "") -> str:
        """A URL for ``variant`` of ``job_id``, valid until :meth:`expiry`; ``base`` is the
        public origin (``https://api.example.com``), empty for a path from the API root."""
        exp = self.expiry(now_s)
        sig = self._sign(asset_path(job_id, variant), exp)
        return f"{base.rstrip('/')}{asset_path(job_id, variant)}?exp={exp}&sig={sig}"

    def check(self, job_id: str, variant: str, exp: str, sig: str, now_s: float) -> int:
        """The URL's expiry if ``sig`` signs this path and ``exp`` and it has not passed;
        ``Forbidden`` otherwise. The message never repeats the signature."""
        if not exp.isdigit() or len(exp) > 13 or int(exp) > MAX_EXP or not _SIG.fullmatch(sig):
            raise Forbidden("this asset URL is malformed; ask the API for the generation again")
        expected = self._sign(asset_path(job_id, variant), int(exp))
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise Forbidden(
                "this asset URL's signature does not match; use the URL exactly as the API "
                "gave it, or ask for the generation again"
            )
        if int(exp) <= now_s:
            raise Forbidden("this asset URL has expired; GET /v1/generations/{id} gives fresh ones")
        return int(exp)

    def _sign(self, path: str, exp: int) -> str:
        message = b"\n".join((_TAG, path.encode(), str(exp).encode()))
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def asset_path(job_id: str, variant: str) -> str:
    return f"{ASSETS_PATH}/{quote(job_id, safe='')}/{quote(variant, safe='')}"


def signed_assets(
    job_id: str,
    variants: Mapping[str, str] | list[str],
    signer: AssetSigner,
    now_s: float,
    base: str = "",
) -> dict[str, str]:
    """A signed URL for each of ``variants`` (names outside :data:`VARIANT` are left out)."""
    return {v: signer.url(job_id, v, now_s, base) for v in sorted(variants) if VARIANT.match(v)}


def media_type(variant: str, key: str) -> str:
    """The Content-Type an asset is served with: by variant, else by the file's suffix."""
    return _MEDIA.get(variant) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def asset_links(
    view: JobView,
    signer: AssetSigner | None,
    now_s: float,
    base: str = "",
    presign: Presign | None = None,
) -> dict[str, str]:
    """The URLs of a succeeded job's files (empty otherwise, or without a signer): signed
    ``/v1/assets`` URLs on ``base``, or with ``presign`` the result store's own presigned
    URLs, living ``signer.ttl_s`` either way."""
    if view.state is not JobState.SUCCEEDED or signer is None:
        return {}
    if presign is None:
        return signed_assets(view.id, list(view.result_uris), signer, now_s, base)
    links: dict[str, str] = {}
    for variant, uri in sorted(view.result_uris.items()):
        if VARIANT.match(variant):
            try:
                links[variant] = presign(uri, signer.ttl_s, media_type(variant, uri))
            except NotFound:  # not in this store (moved, another store): no link for it
                continue
    return links
