"""Fixtures for the blob store contract suite: one suite, every backend.

``backend`` is parametrized over ``local`` (a tmp dir), ``memory`` (the in-memory stand-in) and
``s3`` (a real SeaweedFS on loopback, started once per session by ``scripts/seaweedfs.py``). Each
S3 test gets its own prefix in one session bucket, so tests never see each other's objects. If the
``weed`` binary is missing the S3 tests fail (not skip) and say how to install it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from luma_ray.storage import BlobStore, InMemoryBlobStore, LocalBlobStore, open_store
from luma_ray.storage.s3 import S3BlobStore
from tests.project_scripts import load_script

BUCKET = "luma-contract"


def _load_script() -> ModuleType:
    return load_script("scripts/seaweedfs.py")


@dataclass
class S3Server:
    """How tests reach the session's SeaweedFS."""

    endpoint_url: str
    options: dict[str, str]  # endpoint_url, access_key, secret_key: kwargs for open_store
    start_s: float
    bucket_store: S3BlobStore  # the session bucket; tests share its client (cheaper to set up)


@dataclass
class Backend:
    """One store under test and a way to open the same store again from its URI."""

    name: str
    store: BlobStore
    reopen: Callable[[], BlobStore]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    script = _load_script()
    problem = None
    try:
        script.find_weed()
    except script.SeaweedFSError as exc:
        problem = str(exc)
    if problem:  # fail, never skip: a missing server must not look like a passing suite
        pytest.fail(f"S3 contract tests need SeaweedFS: {problem}", pytrace=False)
    started = time.monotonic()
    server = script.start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), timeout_s=60.0)
    start_s = time.monotonic() - started
    try:
        options = server.connection()
        bucket_store = open_store(f"s3://{BUCKET}", create_bucket=True, **options)
        assert isinstance(bucket_store, S3BlobStore)
        yield S3Server(server.endpoint_url, options, start_s, bucket_store)
    finally:
        server.stop(grace_s=0.5)


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "local":
        local = LocalBlobStore(tmp_path_factory.mktemp("local-store"))
        return Backend("local", local, lambda: open_store(local.uri))
    if request.param == "memory":
        memory = InMemoryBlobStore()
        return Backend("memory", memory, lambda: memory)
    server: S3Server = request.getfixturevalue("seaweedfs")
    s3 = S3BlobStore(server.bucket_store.client, BUCKET, f"t-{uuid.uuid4().hex[:12]}")
    return Backend("s3", s3, lambda: open_store(s3.uri, **server.options))


@pytest.fixture
def store(backend: Backend) -> BlobStore:
    return backend.store


@pytest.fixture
def s3_options(seaweedfs: S3Server) -> dict[str, Any]:
    return dict(seaweedfs.options)
