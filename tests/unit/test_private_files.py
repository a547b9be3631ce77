"""Files the system creates under its data directory hold prompts, callback URLs, key hashes and
secrets: each file is 0600 and each folder 0700, whatever the umask lets through.

Each one is made by the real code (journal, webhook outbox, local store, keys file, webhook
secret, model cache), then its mode is read with ``stat``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from luma_ray.api.keys import KeyStore, keys_path
from luma_ray.launch import ensure_webhook_secret
from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.notify.events import WebhookEvent
from luma_ray.notify.outbox import WebhookOutbox
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.storage import InMemoryBlobStore, LocalBlobStore
from tests.unit.test_service import Clock, service


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022): left alone, new files would be 0644 and folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(*paths: Path) -> None:
    for path in paths:
        assert path.exists(), path
        wanted = 0o700 if path.is_dir() else 0o600
        assert oct(mode(path)) == oct(wanted), path


def test_the_journal_and_its_wal_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    svc = service(data / "journal.sqlite", Clock())
    svc.submit(SubmitRequest(prompt="a private prompt"))  # the -wal and -shm files exist now
    assert_private(
        data,
        data / "journal.sqlite",
        data / "journal.sqlite-wal",
        data / "journal.sqlite-shm",
    )


def test_a_journal_made_before_is_made_private_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    service(path, Clock()).journal.close()
    path.chmod(0o644)
    svc = service(path, Clock())
    svc.submit(SubmitRequest(prompt="p"))
    assert_private(path, Path(f"{path}-wal"))


def test_the_webhook_outbox_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outbox = WebhookOutbox(data / "journal.webhooks.sqlite")
    event = WebhookEvent("ev1", "https://hooks.example/secret-path", "gen_1", "queued", {}, 1.0)
    outbox.put(event)
    assert_private(
        data,
        data / "journal.webhooks.sqlite",
        data / "journal.webhooks.sqlite-wal",
        data / "journal.webhooks.sqlite-shm",
    )


def test_local_store_files_and_folders_are_private(tmp_path: Path) -> None:
    root = tmp_path / "data" / "results"
    store = LocalBlobStore(root)
    store.put_bytes("results/gen_a/1/video.mp4", b"video")
    (tmp_path / "upload.png").write_bytes(b"png")
    store.put_file("results/gen_a/1/thumbnail.png", tmp_path / "upload.png")
    assert store.put_if_absent("models/m/v1/model.yaml", b"name: m\n")
    copy = store.get_file("results/gen_a/1/video.mp4", tmp_path / "copies" / "a" / "video.mp4")
    assert_private(
        tmp_path / "data",
        root,
        root / "results",
        root / "results/gen_a",
        root / "results/gen_a/1",
        root / "results/gen_a/1/video.mp4",
        root / "results/gen_a/1/thumbnail.png",
        root / "models/m/v1",
        root / "models/m/v1/model.yaml",
        copy,
        copy.parent,
        tmp_path / "copies",
    )


def test_the_keys_file_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with KeyStore(keys_path(data), ["free"]) as keys:
        keys.create("acme", "free", now_s=1.0)
        assert_private(data, keys.path, Path(f"{keys.path}-wal"), Path(f"{keys.path}-shm"))


def test_the_webhook_secret_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secret = Path(ensure_webhook_secret(data / "webhook.secret"))
    assert_private(data, secret)


def test_the_model_cache_folders_are_private(tmp_path: Path) -> None:
    root = tmp_path / "data" / "model-cache"
    ModelCache(root, ModelRepository(InMemoryBlobStore(), Clock()), max_bytes=0)
    assert_private(tmp_path / "data", root, *(root / sub for sub in ("files", "index", "tmp")))
    assert_private(root / "locks")


def test_the_asset_url_secret_is_private_and_kept(tmp_path: Path) -> None:
    from luma_ray.launch import ensure_asset_secret

    data = tmp_path / "data"
    secret = Path(ensure_asset_secret(data / "asset.secret"))
    assert_private(data, secret)
    first = secret.read_bytes()
    assert len(first.strip()) == 64  # 32 random bytes, hex
    ensure_asset_secret(secret)  # a restart keeps it: issued URLs stay valid
    assert secret.read_bytes() == first
