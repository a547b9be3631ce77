"""ModelCache: one verified download per version, re-download on local damage, LRU eviction."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from luma_ray.errors import ConfigError
from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.storage import InMemoryBlobStore
from luma_ray.storage.fetch import Fetched

CHECKPOINT_BYTES = 4096


class CountingStore(InMemoryBlobStore):
    """An in-memory store that counts reads per key (and can slow them down)."""

    def __init__(self, read_delay_s: float = 0.0) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.read_delay_s = read_delay_s
        self._count_lock = threading.Lock()

    def get_bytes(self, key: str) -> bytes:
        with self._count_lock:
            self.reads[key] += 1
        time.sleep(self.read_delay_s)
        return super().get_bytes(key)

    def checkpoint_reads(self) -> int:
        return sum(n for key, n in self.reads.items() if "/checkpoints/" in key)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        self.now_s += 1.0
        return self.now_s


def publish(
    repo: ModelRepository, tmp_path: Path, version: str, size: int = CHECKPOINT_BYTES
) -> None:
    folder = tmp_path / "src" / version
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": "m.model:M"}))
    (folder / "checkpoints" / "w.bin").write_bytes(os.urandom(size))
    (folder / "code").mkdir()
    (folder / "code" / "m.py").write_text(f"VERSION = {version!r}\n")
    repo.publish("m", version, folder)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def repo(store: CountingStore) -> ModelRepository:
    return ModelRepository(store, Clock())


def cache_files(cache_root: Path) -> list[str]:
    return sorted(
        p.relative_to(cache_root).as_posix() for p in cache_root.rglob("*") if p.is_file()
    )


def test_fetch_downloads_once_and_returns_the_files(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    publish(repo, tmp_path, "v1")
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=10**6)
    folder = cache.fetch("m", "v1")
    stored = store.get_bytes("models/m/versions/v1/checkpoints/w.bin")
    assert (folder / "checkpoints" / "w.bin").read_bytes() == stored
    assert (folder / "code" / "m.py").read_text() == "VERSION = 'v1'\n"
    assert (folder / "model.yaml").is_file()
    store.reads.clear()
    assert cache.fetch("m", "v1") == folder
    assert store.reads == Counter()  # a verified cached copy needs no store reads at all
    # A new cache object on the same folder (a restarted worker) trusts the index too.
    assert ModelCache(tmp_path / "cache", repo, max_bytes=10**6).fetch("m", "v1") == folder
    assert store.checkpoint_reads() == 0


def test_a_corrupted_cached_file_is_downloaded_again(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    publish(repo, tmp_path, "v1")
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=10**6)
    weights = cache.fetch("m", "v1") / "checkpoints" / "w.bin"
    good = weights.read_bytes()
    store.reads.clear()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # same size, other content
    os.utime(weights, ns=(1, 1))  # a different mtime than the index recorded
    assert (cache.fetch("m", "v1") / "checkpoints" / "w.bin").read_bytes() == good
    assert store.checkpoint_reads() == 1
    weights.write_bytes(good[:100])  # truncated
    assert (cache.fetch("m", "v1") / "checkpoints" / "w.bin").read_bytes() == good
    assert store.checkpoint_reads() == 2


def test_a_missing_marker_means_a_full_rehash(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    publish(repo, tmp_path, "v1")
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=10**6)
    weights = cache.fetch("m", "v1") / "checkpoints" / "w.bin"
    good = weights.read_bytes()
    stat = weights.stat()
    (tmp_path / "cache" / "index" / "m@v1.json").unlink()
    # Intact copy: re-hashed and kept, no download.
    assert cache.fetch("m", "v1") == weights.parents[1]
    assert store.checkpoint_reads() == 1
    # Bit rot that keeps size and mtime is only caught by the full re-hash.
    (tmp_path / "cache" / "index" / "m@v1.json").unlink()
    weights.write_bytes(bytes(b ^ 1 for b in good))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (cache.fetch("m", "v1") / "checkpoints" / "w.bin").read_bytes() == good
    assert store.checkpoint_reads() == 2


def test_a_corrupted_store_file_is_refused_and_nothing_stays(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    publish(repo, tmp_path, "v1")
    key = "models/m/versions/v1/checkpoints/w.bin"
    store.put_bytes(key, store.get_bytes(key)[:-10])  # truncated in the store
    root = tmp_path / "cache"
    cache = ModelCache(root, repo, max_bytes=10**6)
    with pytest.raises(ConfigError, match="checkpoints/w.bin of m@v1 does not match"):
        cache.fetch("m", "v1")
    leftovers = [f for f in cache_files(root) if not f.startswith("locks/")]
    assert leftovers == []
    assert not (root / "files" / "m" / "v1").exists()


def test_least_recently_used_versions_are_evicted(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    for version in ("v1", "v2", "v3"):
        publish(repo, tmp_path, version)
    version_bytes = repo.manifest("m", "v1").size_bytes
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=2 * version_bytes + 100)
    v1 = cache.fetch("m", "v1")
    cache.fetch("m", "v2")
    os.utime(tmp_path / "cache" / "index" / "m@v2.json", ns=(1, 1))  # v2 used long ago
    os.utime(tmp_path / "cache" / "index" / "m@v1.json", ns=(2, 2))
    cache.fetch("m", "v1")  # a cache hit makes v1 the most recent again
    cache.fetch("m", "v3")  # over budget: v2 (least recently used) goes
    assert not (tmp_path / "cache" / "files" / "m" / "v2").exists()
    assert v1.is_dir()
    assert cache.evict() == []
    tiny = ModelCache(tmp_path / "cache", repo, max_bytes=0)
    tiny.fetch("m", "v3")  # a cache hit: nothing evicted yet
    assert tiny.evict() == ["m@v1"]
    assert tiny.evict() == []  # never the version it just fetched, even over budget
    assert (tmp_path / "cache" / "files" / "m" / "v3").is_dir()
    assert not v1.exists()


def test_concurrent_fetches_download_once(repo: ModelRepository, tmp_path: Path) -> None:
    store = CountingStore(read_delay_s=0.05)
    repo = ModelRepository(store, Clock())
    publish(repo, tmp_path, "v1")
    store.reads.clear()
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=10**6)
    results: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def fetch() -> None:
        barrier.wait()
        try:
            results.append(cache.fetch("m", "v1"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    assert store.reads["models/m/versions/v1/checkpoints/w.bin"] == 1


def test_a_copy_from_before_a_reboot_is_rehashed_once(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    """Downloads are not fsynced, so a power loss can leave a file of the right size and mtime
    with other bytes: after a reboot (a new boot id) the cheap check is not trusted."""
    publish(repo, tmp_path, "v1")
    weights = ModelCache(tmp_path / "cache", repo, 10**6, boot_id="boot-a").fetch("m", "v1")
    weights = weights / "checkpoints" / "w.bin"
    good, stat = weights.read_bytes(), weights.stat()
    weights.write_bytes(bytes(len(good)))  # zeros, as a lost write-back leaves them
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store.reads.clear()
    same_boot = ModelCache(tmp_path / "cache", repo, 10**6, boot_id="boot-a")
    assert same_boot.fetch("m", "v1") == weights.parents[1]
    assert store.checkpoint_reads() == 0  # within one boot the cheap check holds
    rebooted = ModelCache(tmp_path / "cache", repo, 10**6, boot_id="boot-b")
    assert (rebooted.fetch("m", "v1") / "checkpoints" / "w.bin").read_bytes() == good
    assert store.checkpoint_reads() == 1
    rebooted.fetch("m", "v1")  # the index now names this boot: cheap again
    assert store.checkpoint_reads() == 1


def test_the_download_is_verified_by_the_hash_taken_while_streaming(
    repo: ModelRepository, store: CountingStore, tmp_path: Path
) -> None:
    """The cache compares the digest the store computed while writing; it does not read the
    downloaded file again."""
    publish(repo, tmp_path, "v1")

    class LyingStore(CountingStore):
        def fetch_file(self, key: str, path: str | Path) -> Fetched:
            fetched = super().fetch_file(key, path)
            return Fetched(fetched.path, fetched.size_bytes, "0" * 64)

    liar = LyingStore()
    for key in store.list():
        liar.put_bytes(key, store.get_bytes(key))
    cache = ModelCache(tmp_path / "cache", ModelRepository(liar, Clock()), max_bytes=10**6)
    with pytest.raises(ConfigError, match="does not match its manifest"):
        cache.fetch("m", "v1")
