"""``s3://bucket/prefix`` blob store on any S3-compatible server (AWS, SeaweedFS, MinIO, ...).

Who calls this: ``open_store("s3://...", endpoint_url=..., ...)`` builds one with
:func:`connect`; tests may pass their own client to :class:`S3BlobStore`. This is the only
module of luma_ray that imports boto3; ``luma_ray.storage`` imports it lazily, so code that
never opens an ``s3://`` store never loads boto3.

Credentials come from the arguments or, when those are ``None``, from boto3's standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles). They are never
logged and never part of ``repr``.

``put_if_absent`` uses a conditional write (``If-None-Match: *``), atomic on servers that
support it (AWS since 2024, SeaweedFS, MinIO). With ``conditional_writes=False``, or after the
server answers ``NotImplemented``, it falls back to HEAD then PUT: two writers racing for the
same new key can then both see "absent" and the second PUT wins. Use the fallback only where a
single writer creates each key.
"""

from __future__ import annotations

import builtins
import logging
from pathlib import Path
from typing import Any, NoReturn

import boto3  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    BotoCoreError,
    ClientError,
)

from luma_ray.errors import ConfigError, InvalidRequest, NotFound
from luma_ray.storage.base import StorageError, check_range, write_file_atomically
from luma_ray.storage.fetch import Fetched, HashingWriter, fetch_into, fetch_parts
from luma_ray.storage.keys import validate_key, validate_prefix

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_EXISTS_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "501"})


class S3BlobStore:
    """Objects under ``prefix`` in ``bucket``, through a boto3 S3 ``client``."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        conditional_writes: bool = True,
        fetch_concurrency: int = 10,
        fetch_part_bytes: int = 8 << 20,
    ) -> None:
        if not bucket:
            raise InvalidRequest("an s3:// store needs a bucket: s3://bucket/optional/prefix")
        prefix = prefix.strip("/")
        if prefix:
            validate_prefix(prefix)
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.conditional_writes = conditional_writes
        self.fetch_concurrency, self.fetch_part_bytes = max(1, fetch_concurrency), fetch_part_bytes
        self.uri: str = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, shared by stores under other prefixes and for presigned URLs."""
        return self._client

    def __repr__(self) -> str:
        endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", None)
        return f"S3BlobStore({self.uri!r}, endpoint_url={endpoint!r})"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        name = self._name(key)
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "store", key)
        logger.debug("stored %s (%d bytes) in %s", key, len(data), self.uri)
        return self.uri_for(key)

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        name = self._name(key)
        extra = {"ContentType": content_type} if content_type else {}
        with open(path, "rb") as source:  # a missing source is the caller's OSError
            try:
                # Multipart above 8 MiB; S3 makes the object visible only once complete.
                self._client.upload_fileobj(source, self.bucket, name, ExtraArgs=extra)
            except (ClientError, BotoCoreError) as exc:
                self._raise(exc, "upload", key)
        logger.debug("stored %s from file %s in %s", key, path, self.uri)
        return self.uri_for(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        if not self.conditional_writes:
            return self._put_if_absent_unsafe(key, name, data)
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = _code(exc)
            if code in _EXISTS_CODES:
                return False
            if code in _UNSUPPORTED_CODES:
                logger.warning(
                    "%s does not support conditional writes; put_if_absent falls back to "
                    "HEAD then PUT, which two concurrent writers can race",
                    self.uri,
                )
                self.conditional_writes = False
                return self._put_if_absent_unsafe(key, name, data)
            self._raise(exc, "create", key)
        except BotoCoreError as exc:
            self._raise(exc, "create", key)
        logger.debug("created %s (%d bytes) in %s", key, len(data), self.uri)
        return True

    def get_bytes(self, key: str) -> bytes:
        name = self._name(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            body: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "read", key)
        return body

    def size(self, key: str) -> int:
        name = self._name(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "check", key)
        return int(head["ContentLength"])

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        check_range(start, stop)
        if stop == start:
            self.size(key)  # NotFound for a missing object, as for a longer range
            return b""
        name = self._name(key)
        try:
            response = self._client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={start}-{stop - 1}"
            )
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("InvalidRange", "416"):  # start at or past the end
                return b""
            self._raise(exc, "read", key)
        except BotoCoreError as exc:
            self._raise(exc, "read", key)
        return body

    def presigned_url(
        self,
        key: str,
        expires_s: int,
        content_type: str | None = None,
        cache_control: str | None = None,
    ) -> str:
        """A presigned ``GET`` URL of ``key`` at the S3 endpoint, valid ``expires_s`` seconds
        (SigV4 allows at most 7 days); ``content_type``/``cache_control`` make S3 answer with
        those headers. Made locally from the credentials: no request is sent, and the object
        need not exist yet. The URL carries a signature, not the secret key."""
        if not 1 <= expires_s <= 7 * 86_400:
            raise InvalidRequest(f"expires_s is {expires_s}; a presigned URL lives 1 s to 7 days")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if cache_control:
            params["ResponseCacheControl"] = cache_control
        try:
            url: str = self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_s
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "presign", key)
        return url

    def presign_uri(self, uri: str, expires_s: int, content_type: str | None = None) -> str:
        """:meth:`presigned_url` of an object named by its URI in this store (a job's
        ``result_uris``), with ``Cache-Control: private, max-age=<expires_s>``."""
        base = f"{self.uri}/"
        if not uri.startswith(base):
            raise NotFound(f"{uri!r} is not in {self.uri}")
        cache = f"private, max-age={expires_s}"
        return self.presigned_url(uri[len(base) :], expires_s, content_type, cache)

    def get_file(self, key: str, path: str | Path) -> Path:
        name = self._name(key)

        def download(out: Any) -> None:
            try:
                self._client.download_fileobj(self.bucket, name, out)
            except (ClientError, BotoCoreError) as exc:
                self._raise(exc, "download", key)

        return write_file_atomically(path, download)

    def fetch_file(self, key: str, path: str | Path) -> Fetched:
        """Parallel ranged GETs (``fetch.fetch_parts``) pinned to the object's ETag at the start."""
        name = self._name(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "download", key)
        size, etag = int(head["ContentLength"]), head.get("ETag")
        pin = {"IfMatch": etag} if etag else {}  # a replaced object fails; no ETag: unpinned

        def read(start: int, stop: int) -> bytes:
            try:
                got = self._client.get_object(
                    Bucket=self.bucket, Key=name, Range=f"bytes={start}-{stop - 1}", **pin
                )
                data: bytes = got["Body"].read()
            except (ClientError, BotoCoreError) as exc:
                if isinstance(exc, ClientError) and _code(exc) in ("PreconditionFailed", "412"):
                    raise StorageError(
                        f"{key!r} changed while it was fetched; fetch it again"
                    ) from exc
                self._raise(exc, "download", key)
            return data

        def fill(out: HashingWriter) -> None:
            fetch_parts(out, size, read, self.fetch_part_bytes, self.fetch_concurrency, repr(key))

        fetched = fetch_into(path, fill)
        logger.debug("fetched %s (%d bytes) from %s", key, fetched.size_bytes, self.uri)
        return fetched

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                return False
            self._raise(exc, "check", key)
        except BotoCoreError as exc:
            self._raise(exc, "check", key)
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                return
            self._raise(exc, "delete", key)
        except BotoCoreError as exc:
            self._raise(exc, "delete", key)
        logger.debug("deleted %s from %s", key, self.uri)

    def list(self, prefix: str = "") -> builtins.list[str]:
        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        keys: builtins.list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                keys.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list", prefix or "(all keys)")
        return sorted(keys)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    # -- helpers ---------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        """The S3 object name: the store's prefix, then the validated key."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _put_if_absent_unsafe(self, key: str, name: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data)
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "create", key)
        return True

    def _raise(self, exc: Exception, action: str, key: str) -> NoReturn:
        """Translate a boto error into the luma_ray error tree (never quoting credentials)."""
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if code == "NoSuchBucket":
            raise ConfigError(
                f"bucket {self.bucket!r} does not exist at this endpoint; create it or open the "
                "store with create_bucket=True"
            ) from exc
        if code in _MISSING_KEY_CODES:
            raise NotFound(f"no object {key!r} in {self.uri}") from exc
        detail = f"{code}: {_message(exc)}" if code else f"{type(exc).__name__}: {exc}"
        raise StorageError(f"cannot {action} {key!r} in {self.uri}: {detail}") from exc


def connect(
    bucket: str,
    prefix: str = "",
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    create_bucket: bool = False,
    conditional_writes: bool = True,
    max_attempts: int = 3,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 60.0,
    fetch_concurrency: int = 10,
    fetch_part_bytes: int = 8 << 20,
) -> S3BlobStore:
    """Build an :class:`S3BlobStore` with a boto3 client for ``endpoint_url`` (None: AWS).

    Path-style addressing (``endpoint/bucket/key``) works with every S3-compatible server.
    Checksums are sent only when an operation requires them, because botocore's newer default
    (a CRC trailer on every upload) is refused by several S3-compatible servers.
    """
    config = Config(
        region_name=region or DEFAULT_REGION,
        signature_version="s3v4",  # presigned URLs too (botocore presigns SigV2 otherwise)
        s3={"addressing_style": "path"},
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=max(10, fetch_concurrency),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region or DEFAULT_REGION,
    )
    client = session.client("s3", endpoint_url=endpoint_url, config=config)
    store = S3BlobStore(
        client,
        bucket,
        prefix,
        conditional_writes=conditional_writes,
        fetch_concurrency=fetch_concurrency,
        fetch_part_bytes=fetch_part_bytes,
    )
    if create_bucket:
        _ensure_bucket(client, bucket, region or DEFAULT_REGION)
    logger.info("opened %s (endpoint %s)", store.uri, endpoint_url or "AWS default")
    return store


def _ensure_bucket(client: Any, bucket: str, region: str) -> None:
    """Create ``bucket`` unless it exists (called only for ``create_bucket=True``)."""
    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise StorageError(f"cannot check bucket {bucket!r}: {_describe(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot check bucket {bucket!r}: {_describe(exc)}") from exc
    options: dict[str, Any] = {}
    if region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(Bucket=bucket, **options)
    except ClientError as exc:
        if _code(exc) == "BucketAlreadyOwnedByYou":
            return  # a concurrent caller with our credentials created it first
        raise StorageError(f"cannot create bucket {bucket!r}: {_describe(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot create bucket {bucket!r}: {_describe(exc)}") from exc
    logger.info("created bucket %s", bucket)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"{_code(exc)}: {_message(exc)}"
    return f"{type(exc).__name__}: {exc}"
