"""Blob storage for results and the model repository: one port, three backends.

Who calls this: the entry points (``luma-ray`` CLI, Serve deployments, the scheduler actor) call
:func:`open_store` once with the URI from the config and pass the store to the code that needs
it; unit tests pass an :class:`InMemoryBlobStore` instead. See ``docs/storage.md``.

    open_store("file:///var/lib/luma/results")          # or a plain path: "/var/lib/luma/results"
    open_store("s3://luma-results/prod", endpoint_url="http://127.0.0.1:8333",
               access_key="...", secret_key="...", create_bucket=True)

boto3 is imported only when an ``s3://`` store is opened (``luma_ray.storage.s3``).
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from luma_ray.errors import ConfigError, InvalidRequest
from luma_ray.storage.base import BlobStore, StorageError, write_file_atomically
from luma_ray.storage.keys import MAX_KEY_BYTES, join_key, validate_key, validate_prefix
from luma_ray.storage.local import LocalBlobStore
from luma_ray.storage.memory import InMemoryBlobStore

if TYPE_CHECKING:
    from luma_ray.storage.s3 import S3BlobStore

__all__ = [
    "MAX_KEY_BYTES",
    "BlobStore",
    "InMemoryBlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "StorageError",
    "join_key",
    "open_store",
    "validate_key",
    "validate_prefix",
    "write_file_atomically",
]

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")


def open_store(uri: str, *, endpoint_url: str | None = None, **s3_options: Any) -> BlobStore:
    """Open the store named by ``uri``: ``file:///abs/root``, a plain path, or ``s3://bucket/p``.

    ``endpoint_url`` and ``s3_options`` (``region``, ``access_key``, ``secret_key``,
    ``session_token``, ``create_bucket``, ``conditional_writes``, ``max_attempts``,
    ``connect_timeout_s``, ``read_timeout_s``) apply to ``s3://`` only; see
    :func:`luma_ray.storage.s3.connect`. Raises ``InvalidRequest`` for a URI or option it cannot
    use, with the message saying which.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidRequest("store URI is empty; use file:///abs/path, /abs/path or s3://bucket")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        return _open_s3(uri, endpoint_url, s3_options)
    if scheme not in ("", "file"):
        raise InvalidRequest(
            f"store URI {uri!r} has the unsupported scheme {parts.scheme!r}; "
            "use file:///abs/path, /abs/path or s3://bucket/prefix"
        )
    given = sorted(name for name, value in s3_options.items() if value is not None)
    if endpoint_url is not None:
        given.insert(0, "endpoint_url")
    if given:
        raise InvalidRequest(f"options {given} apply only to s3:// stores, not {uri!r}")
    if scheme == "":
        return LocalBlobStore(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidRequest(
            f"file URI {uri!r} must be file:///absolute/path (no host, query or fragment)"
        )
    return LocalBlobStore(unquote(parts.path))


def _open_s3(uri: str, endpoint_url: str | None, options: dict[str, Any]) -> BlobStore:
    parts = urlsplit(uri)
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise InvalidRequest(
            f"store URI {uri!r} needs a bucket name of 3-255 letters, digits, '.', '-' or '_': "
            "s3://bucket/optional/prefix (credentials go in options, never in the URI)"
        )
    if parts.query or parts.fragment:
        raise InvalidRequest(f"store URI {uri!r} must not have a query or fragment")
    try:
        from luma_ray.storage import s3  # lazy: only s3:// users load boto3
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] not in ("boto3", "botocore", "s3transfer"):
            raise
        raise ConfigError(
            f"store URI {uri!r} needs boto3, which the s3 extra installs: "
            "pip install 'luma_ray[s3]'"
        ) from None

    allowed = set(inspect.signature(s3.connect).parameters) - {"bucket", "prefix", "endpoint_url"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown s3 options {unknown}; known: {sorted(allowed)}")
    return s3.connect(bucket, parts.path.strip("/"), endpoint_url=endpoint_url, **options)


def __getattr__(name: str) -> Any:
    if name == "S3BlobStore":
        from luma_ray.storage.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
