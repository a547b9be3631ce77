"""The BlobStore contract: every backend (local, in-memory, S3 via SeaweedFS) passes this suite.

Code that stores results or model versions relies only on what is asserted here, so a test
written against ``InMemoryBlobStore`` holds on ``file://`` and ``s3://`` too.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pytest

from luma_ray.errors import ConfigError, InvalidRequest, NotFound
from luma_ray.storage import (
    BlobStore,
    LocalBlobStore,
    StorageError,
    open_store,
    write_file_atomically,
)
from luma_ray.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from tests.contract.conftest import Backend, S3Server

BUCKET = "luma-contract"  # the session bucket conftest.py creates

LARGE_BYTES = 8 * 1024 * 1024 + 1  # just over boto3's multipart threshold


def _stray_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- round trips -------------------------------------------------------------------------------


def test_put_bytes_then_get_bytes(store: BlobStore) -> None:
    key = "results/gen_abc/video.mp4"
    uri = store.put_bytes(key, b"\x00\x01frames", content_type="video/mp4")
    assert uri == store.uri_for(key)
    assert store.get_bytes(key) == b"\x00\x01frames"
    assert store.exists(key)


def test_put_bytes_replaces_the_old_object(store: BlobStore) -> None:
    store.put_bytes("models/m/active.yaml", b"active: v1\n")
    store.put_bytes("models/m/active.yaml", b"active: v2\n")
    assert store.get_bytes("models/m/active.yaml") == b"active: v2\n"
    assert store.list("models/") == ["models/m/active.yaml"]


def test_empty_object(store: BlobStore) -> None:
    store.put_bytes("empty", b"")
    assert store.exists("empty")
    assert store.get_bytes("empty") == b""


def test_put_file_then_get_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "video.mp4"
    source.write_bytes(b"mp4 bytes" * 1000)
    uri = store.put_file("results/gen_1/video.mp4", source, content_type="video/mp4")
    assert uri == store.uri_for("results/gen_1/video.mp4")
    target = tmp_path / "download" / "nested" / "copy.mp4"  # parent folders are created
    got = store.get_file("results/gen_1/video.mp4", str(target))
    assert got == target
    assert target.read_bytes() == source.read_bytes()
    assert _stray_files(target.parent) == ["copy.mp4"]


def test_get_file_replaces_an_existing_file(store: BlobStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"new")
    target = tmp_path / "k.bin"
    target.write_bytes(b"old content")
    store.get_file("k", target)
    assert target.read_bytes() == b"new"
    assert _stray_files(tmp_path) == ["k.bin"]


def test_put_file_missing_source_is_an_os_error(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file("k", tmp_path / "nope")
    assert not store.exists("k")


def test_large_object_round_trip(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(LARGE_BYTES)
    store.put_bytes("big/bytes.bin", data)
    assert store.get_bytes("big/bytes.bin") == data
    source = tmp_path / "big.safetensors"
    source.write_bytes(data)
    store.put_file("big/file.safetensors", source)
    target = store.get_file("big/file.safetensors", tmp_path / "out.safetensors")
    assert target.stat().st_size == LARGE_BYTES
    assert target.read_bytes() == data


def test_fetch_file_writes_the_object_and_hashes_it_while_streaming(
    backend: Backend, tmp_path: Path
) -> None:
    """On S3 the object comes as parallel ranged GETs (here 256 KiB parts, 4 in flight), hashed
    in file order as they arrive: the same bytes and the sha256 of the object, with no leftovers
    beside them."""
    store = backend.store
    data = os.urandom(3 * 1024 * 1024 + 17)
    store.put_bytes("ckpt/w.bin", data)
    ranges: list[str] = []
    if isinstance(store, S3BlobStore):
        store = S3BlobStore(
            store.client,
            store.bucket,
            store.prefix,
            fetch_concurrency=4,
            fetch_part_bytes=256 << 10,
        )

        def seen(params: dict[str, Any], **_: Any) -> None:
            ranges.append(params.get("Range", ""))

        store.client.meta.events.register("provide-client-params.s3.GetObject", seen)
    try:
        fetched = store.fetch_file("ckpt/w.bin", tmp_path / "out" / "w.bin")
    finally:
        if isinstance(store, S3BlobStore):
            store.client.meta.events.unregister("provide-client-params.s3.GetObject", seen)
    assert fetched.path.read_bytes() == data
    assert (fetched.size_bytes, fetched.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert _stray_files(tmp_path / "out") == ["w.bin"]
    if backend.name == "s3":
        part = 256 << 10
        want = [f"bytes={a}-{min(a + part, len(data)) - 1}" for a in range(0, len(data), part)]
        assert sorted(ranges) == sorted(want) and len(want) == 13  # each part once
    with pytest.raises(NotFound):
        store.fetch_file("ckpt/missing.bin", tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()


def test_an_object_replaced_during_a_fetch_fails_it_and_leaves_no_file(
    seaweedfs: S3Server, tmp_path: Path
) -> None:
    """S3: the ranged GETs ask for the ETag the object had when the fetch began, so an object
    replaced after that is an error, not a file that mixes two versions."""
    client = seaweedfs.bucket_store.client
    store = S3BlobStore(client, BUCKET, f"t-{uuid.uuid4().hex[:12]}", fetch_part_bytes=256 << 10)
    store.put_bytes("ckpt/moving.bin", os.urandom(1 << 20))
    other = open_store(store.uri, **seaweedfs.options)  # another writer, its own client

    def replace_it(**_: Any) -> None:
        other.put_bytes("ckpt/moving.bin", os.urandom(1 << 20))

    client.meta.events.register("after-call.s3.HeadObject", replace_it)
    try:
        with pytest.raises(StorageError, match="changed while it was fetched"):
            store.fetch_file("ckpt/moving.bin", tmp_path / "out" / "moving.bin")
    finally:
        client.meta.events.unregister("after-call.s3.HeadObject", replace_it)
    assert _stray_files(tmp_path / "out") == []


def test_reopening_the_uri_sees_the_same_objects(backend: Backend) -> None:
    backend.store.put_bytes("results/r/thumbnail.png", b"png")
    again = backend.reopen()
    assert again.uri == backend.store.uri
    assert again.get_bytes("results/r/thumbnail.png") == b"png"


# -- put_if_absent -----------------------------------------------------------------------------


def test_put_if_absent_creates_once(store: BlobStore) -> None:
    key = "models/m/versions/v1/manifest.yaml"
    assert store.put_if_absent(key, b"first") is True
    assert store.put_if_absent(key, b"second") is False
    assert store.get_bytes(key) == b"first"


def test_put_if_absent_respects_objects_from_put_bytes(store: BlobStore) -> None:
    store.put_bytes("v", b"by put")
    assert store.put_if_absent("v", b"by create") is False
    store.delete("v")
    assert store.put_if_absent("v", b"by create") is True
    assert store.get_bytes("v") == b"by create"


def test_put_if_absent_has_one_winner_under_concurrency(store: BlobStore) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def create(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = store.put_if_absent("race/version", f"writer {i}".encode())
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1, results
    assert store.get_bytes("race/version") == f"writer {winners[0]}".encode()


# -- missing objects and atomic downloads ------------------------------------------------------


def test_missing_key_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    assert store.exists("no/such/key") is False
    with pytest.raises(NotFound, match="no/such/key"):
        store.get_bytes("no/such/key")
    with pytest.raises(NotFound):
        store.get_file("no/such/key", tmp_path / "out")
    assert _stray_files(tmp_path) == []


def test_failed_get_file_leaves_the_old_file(store: BlobStore, tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old weights")
    with pytest.raises(NotFound):
        store.get_file("missing.safetensors", target)
    assert target.read_bytes() == b"old weights"
    assert _stray_files(tmp_path) == ["model.safetensors"]


def test_get_file_onto_a_folder_fails_without_leftovers(store: BlobStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"data")
    (tmp_path / "target" / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        store.get_file("k", tmp_path / "target")  # the download completes, the rename fails
    assert _stray_files(tmp_path) == ["target"]
    assert _stray_files(tmp_path / "target") == ["inside"]


def test_write_file_atomically_removes_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken_download(out: BinaryIO) -> None:
        out.write(b"half of it")
        raise ConnectionError("connection reset mid-download")

    with pytest.raises(ConnectionError):
        write_file_atomically(target, broken_download)
    assert target.read_bytes() == b"old"
    assert _stray_files(tmp_path) == ["out.bin"]


# -- list and delete ---------------------------------------------------------------------------


def test_list_by_prefix(store: BlobStore) -> None:
    keys = [
        "results/gen_1/video.mp4",
        "results/gen_1/thumbnail.png",
        "results/gen_10/video.mp4",
        "results/gen_2/video.mp4",
        "results2/x",
        "models/m/active.yaml",
        "top",
    ]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert store.list() == sorted(keys)
    assert store.list("") == sorted(keys)
    assert store.list("results/") == sorted(k for k in keys if k.startswith("results/"))
    assert store.list("results/gen_1") == [
        "results/gen_1/thumbnail.png",
        "results/gen_1/video.mp4",
        "results/gen_10/video.mp4",
    ]
    assert store.list("results/gen_1/") == [
        "results/gen_1/thumbnail.png",
        "results/gen_1/video.mp4",
    ]
    assert store.list("results") == sorted(k for k in keys if k.startswith("results"))
    assert store.list("t") == ["top"]
    assert store.list("nothing/") == []
    assert store.list("results/gen_1/video.mp4") == ["results/gen_1/video.mp4"]


def test_delete(store: BlobStore) -> None:
    store.put_bytes("a/b/c", b"1")
    store.put_bytes("a/d", b"2")
    store.delete("a/b/c")
    assert not store.exists("a/b/c")
    with pytest.raises(NotFound):
        store.get_bytes("a/b/c")
    assert store.list() == ["a/d"]
    store.delete("a/b/c")  # already gone: no error
    store.delete("never/was")
    store.delete("a")  # a "folder", not an object: nothing happens
    assert store.list() == ["a/d"]


def test_folders_are_not_objects(store: BlobStore) -> None:
    store.put_bytes("a/b", b"x")
    assert store.exists("a") is False
    with pytest.raises(NotFound):
        store.get_bytes("a")


def test_a_deleted_folder_name_can_become_an_object(store: BlobStore) -> None:
    store.put_bytes("x/y/z", b"deep")
    store.delete("x/y/z")
    store.put_bytes("x", b"now a file")
    assert store.get_bytes("x") == b"now a file"


# -- keys and URIs -----------------------------------------------------------------------------

BAD_KEYS = ["", "/etc/passwd", "a/../../etc/passwd", "../sibling/x", "a//b", "C:\\x", "a\x00b"]


def _call(store: BlobStore, method: str, key: str, tmp_path: Path) -> object:
    source = tmp_path / "src"
    source.write_bytes(b"x")
    calls: dict[str, Callable[[], object]] = {
        "put_bytes": lambda: store.put_bytes(key, b"x"),
        "put_file": lambda: store.put_file(key, source),
        "put_if_absent": lambda: store.put_if_absent(key, b"x"),
        "get_bytes": lambda: store.get_bytes(key),
        "get_file": lambda: store.get_file(key, tmp_path / "dst"),
        "exists": lambda: store.exists(key),
        "delete": lambda: store.delete(key),
        "uri_for": lambda: store.uri_for(key),
    }
    return calls[method]()


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize(
    "method",
    [
        "put_bytes",
        "put_file",
        "put_if_absent",
        "get_bytes",
        "get_file",
        "exists",
        "delete",
        "uri_for",
    ],
)
def test_bad_keys_are_refused_everywhere(
    store: BlobStore, tmp_path: Path, method: str, key: str
) -> None:
    with pytest.raises(InvalidRequest):
        _call(store, method, key, tmp_path)
    assert store.list() == []
    assert _stray_files(tmp_path) == ["src"]


@pytest.mark.parametrize("prefix", ["/", "../", "a/../..", "a//"])
def test_bad_list_prefixes_are_refused(store: BlobStore, prefix: str) -> None:
    with pytest.raises(InvalidRequest):
        store.list(prefix)


def test_percent_dots_are_a_literal_name_inside_the_store(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("%2e%2e/x", b"inside")
    assert store.list() == ["%2e%2e/x"]
    assert store.get_bytes("%2e%2e/x") == b"inside"
    assert store.uri_for("%2e%2e/x").startswith(store.uri + "/")
    if isinstance(store, LocalBlobStore):
        assert (store.root / "%2e%2e" / "x").read_bytes() == b"inside"


def test_uri_for_format(backend: Backend) -> None:
    store = backend.store
    key = "results/gen_abc/video.mp4"
    assert store.uri_for(key) == f"{store.uri}/{key}"
    prefix = {"local": "file:///", "memory": "memory://", "s3": f"s3://{BUCKET}/t-"}
    assert store.uri.startswith(prefix[backend.name])
    assert not store.uri.endswith("/")
    assert not store.exists(key)  # uri_for names a key; it stores nothing


def test_every_backend_satisfies_the_protocol(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


# -- open_store --------------------------------------------------------------------------------


def test_open_store_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "with space"
    by_uri = open_store(root.as_uri())
    assert isinstance(by_uri, LocalBlobStore)
    assert by_uri.root == root.resolve()
    assert open_store(str(root)).uri == by_uri.uri
    assert open_store(f"file://localhost{root}").uri == by_uri.uri
    monkeypatch.chdir(tmp_path)
    assert open_store("with space").uri == by_uri.uri
    assert by_uri.uri.startswith("file:///")


@pytest.mark.parametrize(
    ("uri", "options", "words"),
    [
        ("", {}, "empty"),
        ("ftp://host/x", {}, "unsupported scheme"),
        ("file://otherhost/x", {}, "no host"),
        ("s3://", {}, "bucket"),
        ("s3://ab", {}, "bucket"),
        ("s3://user:secret@bucket/x", {}, "never in the uri"),
        ("s3://bucket/a/../b", {}, "'..'"),
        ("s3://bucket?x=1", {}, "query"),
        ("/tmp/x", {"endpoint_url": "http://127.0.0.1:1"}, "only to s3"),
        ("/tmp/x", {"access_key": "k"}, "only to s3"),
        ("s3://bucket", {"acess_key": "typo"}, "unknown s3 options"),
    ],
)
def test_open_store_refuses_bad_uris(uri: str, options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        open_store(uri, **options)
    assert words.lower() in str(info.value).lower()


def test_importing_storage_does_not_import_boto3() -> None:
    code = "import sys, luma_ray.storage; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- S3 only -----------------------------------------------------------------------------------


def test_s3_missing_bucket_is_a_config_error(s3_options: dict[str, Any]) -> None:
    store = open_store(f"s3://luma-missing-{uuid.uuid4().hex[:8]}/p", **s3_options)
    with pytest.raises(ConfigError, match="create_bucket=True"):
        store.put_bytes("k", b"x")
    with pytest.raises(ConfigError):
        store.get_bytes("k")


def test_s3_creates_the_bucket_only_when_asked(s3_options: dict[str, Any]) -> None:
    uri = f"s3://luma-new-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError):
        open_store(uri, **s3_options).put_bytes("k", b"x")
    store = open_store(uri, create_bucket=True, **s3_options)
    store.put_bytes("k", b"x")
    again = open_store(uri, create_bucket=True, **s3_options)  # already there: fine
    assert again.get_bytes("k") == b"x"


def test_s3_put_if_absent_without_conditional_writes(s3_options: dict[str, Any]) -> None:
    store = open_store(
        f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", conditional_writes=False, **s3_options
    )
    assert store.put_if_absent("v", b"first") is True
    assert store.put_if_absent("v", b"second") is False
    assert store.get_bytes("v") == b"first"


def test_s3_bad_credentials_fail_without_echoing_the_secret(s3_options: dict[str, Any]) -> None:
    options = {**s3_options, "secret_key": "not-the-secret-1234", "max_attempts": 1}
    store = open_store(f"s3://{BUCKET}/p", **options)
    with pytest.raises(StorageError) as info:
        store.put_bytes("k", b"x")
    assert "not-the-secret-1234" not in str(info.value)
    assert "not-the-secret-1234" not in repr(store)
    assert s3_options["secret_key"] not in repr(store)


def test_s3_unreachable_endpoint_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    store = open_store(
        "s3://bucket/p",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="k",
        secret_key="s",
        max_attempts=1,
        connect_timeout_s=2.0,
    )
    with pytest.raises(StorageError, match="127.0.0.1"):
        store.get_bytes("k")


def test_size_and_ranged_reads(store: BlobStore) -> None:
    """What the asset route reads for ``Range`` requests, the same on every backend."""
    data = bytes(range(256)) * 4
    store.put_bytes("r/video.mp4", data)
    assert store.size("r/video.mp4") == 1024
    assert store.get_range("r/video.mp4", 0, 10) == data[:10]
    assert store.get_range("r/video.mp4", 1000, 5000) == data[1000:]  # clipped at the end
    assert store.get_range("r/video.mp4", 1024, 1030) == b""  # at the end: nothing
    assert store.get_range("r/video.mp4", 7, 7) == b""
    store.put_bytes("r/empty", b"")
    assert store.size("r/empty") == 0
    for read in (lambda: store.size("r/missing"), lambda: store.get_range("r/missing", 0, 5)):
        with pytest.raises(NotFound):
            read()
    with pytest.raises(InvalidRequest):
        store.get_range("r/video.mp4", 5, 4)


def test_s3_presigned_url_serves_the_object_and_its_ranges(seaweedfs: Any) -> None:
    """``asset_urls: s3_presigned``: a browser fetches the presigned URL from S3 itself."""
    import httpx

    from luma_ray.storage.s3 import S3BlobStore

    store = S3BlobStore(seaweedfs.bucket_store.client, BUCKET, f"p-{uuid.uuid4().hex[:12]}")
    data = os.urandom(5000)
    store.put_bytes("results/gen_a/1/video.mp4", data)
    url = store.presigned_url("results/gen_a/1/video.mp4", 60, "video/mp4", "private, max-age=60")
    assert url.startswith(seaweedfs.endpoint_url + "/")
    whole = httpx.get(url, timeout=10)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    part = httpx.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:200]
    other = url.replace("gen_a/1/video.mp4", "gen_b/1/video.mp4")  # the signature is per key
    assert httpx.get(other, timeout=10).status_code == 403
