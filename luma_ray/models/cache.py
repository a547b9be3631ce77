"""Per-node cache of verified model versions, so each node downloads a version once.

Who calls this: a worker, before loading a repository version, calls
``ModelCache(root, repository, max_bytes).fetch(name, version)`` and loads the model from the
folder it returns; ``fetch`` calls ``evict`` after each download. Several worker processes on
one node may share ``root``: a per-version lock file (``fcntl.flock``, which also serialises
threads) makes concurrent fetches of one version download it once.

Layout under ``root``::

    files/<name>/<version>/...        # the version's files, exactly as in the manifest
    index/<name>@<version>.json       # the marker: manifest + size/mtime/sha256 per file;
                                      # its mtime is the last use, for LRU eviction
    locks/<name>@<version>.lock
    tmp/                              # downloads in progress, renamed into files/ when verified

A file is never returned unverified. A download goes to ``tmp/``, every file is checked against
the manifest's sha256 and size, and the folder is renamed into place; a mismatch there means the
store's copy is bad (``ConfigError`` naming the file, nothing left in the cache). A cached copy
is checked cheaply on each fetch (each file's size and mtime against the index); a file that
changed, or every file when the index is missing, is re-hashed, and a bad copy is deleted and
downloaded again. Not caught cheaply: a same-size change that keeps the mtime (bit rot).

A download is hashed while it streams (``BlobStore.fetch_file``: parallel ranged GETs on S3)
and is not flushed to disk, so a cold fetch runs at network speed. The index records the boot
it was written in (``/proc/sys/kernel/random/boot_id``); after a reboot (which a power loss
implies) the cheap check is not trusted and every file is re-hashed once, so a file cut short by
a power loss is found and downloaded again. Where the boot id cannot be read (not Linux), each
download is flushed (``fsync``) instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from luma_ray.errors import ConfigError
from luma_ray.jobs.request import validate_name
from luma_ray.models.manifest import (
    FileEntry,
    Manifest,
    dump_manifest,
    load_manifest,
    sha256_file,
)
from luma_ray.models.repository import ModelRepository
from luma_ray.storage.base import FILE_MODE, make_folders
from luma_ray.storage.fetch import Fetched
from luma_ray.storage.keys import validate_key

logger = logging.getLogger(__name__)


class ModelCache:
    """Verified local copies of repository versions, at most ``max_bytes`` beyond the latest."""

    def __init__(
        self,
        root: Path,
        repository: ModelRepository,
        max_bytes: int,
        boot_id: str | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ConfigError(f"model cache max_bytes is {max_bytes}; use 0 or more")
        self.root = Path(root)
        self.repository = repository
        self.max_bytes = max_bytes
        self.boot_id = current_boot_id() if boot_id is None else boot_id
        for sub in ("files", "index", "locks", "tmp"):
            make_folders(self.root / sub)
        self._last_fetched: str | None = None
        self._lock = threading.Lock()

    # -- public ----------------------------------------------------------------------------

    def fetch(self, name: str, version: str) -> Path:
        """Return the local folder of ``name@version``, downloading and verifying it if needed.

        Raises ``NotFound`` for an unknown version and ``ConfigError`` when a stored file does
        not match the manifest (publish a new version; ``luma-ray models verify`` lists them).
        """
        validate_name(name)
        validate_name(version, what="version")
        version_id = f"{name}@{version}"
        with self._version_lock(version_id):
            folder = self._files_dir(name, version)
            manifest = self._cached_manifest(version_id) if folder.is_dir() else None
            if folder.is_dir() and self._check_cached(version_id, folder, manifest):
                self._touch(version_id)
                logger.debug("model cache hit %s", version_id)
                downloaded = False
            else:
                self._discard(version_id)
                self._download(name, version, folder)
                downloaded = True
            self._last_fetched = version_id
        if downloaded:
            self.evict()
        return folder

    def evict(self) -> list[str]:
        """Remove least-recently-used versions until the cache fits ``max_bytes``.

        Never removes the version this cache fetched last, nor one another process is fetching
        right now (its lock is held). Returns the evicted ``name@version`` ids, oldest first.
        """
        entries = []
        for index in (self.root / "index").glob("*.json"):
            info = _read_json(index)
            if info is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                entries.append((index.stat().st_mtime_ns, index.stem, int(info["size_bytes"])))
        entries.sort()
        total = sum(size for _, _, size in entries)
        evicted = []
        for _, version_id, size_bytes in entries:
            if total <= self.max_bytes:
                break
            if version_id == self._last_fetched:
                continue
            with self._version_lock(version_id, blocking=False) as held:
                if not held:
                    continue
                self._discard(version_id)
            total -= size_bytes
            evicted.append(version_id)
            logger.info("model cache evicted %s (%d bytes)", version_id, size_bytes)
        return evicted

    # -- checking a cached copy ----------------------------------------------------------

    def _cached_manifest(self, version_id: str) -> Manifest | None:
        info = _read_json(self._index_path(version_id))
        if info is None:
            return None
        try:
            return load_manifest(info["manifest"].encode("utf-8"), version_id)
        except Exception:  # noqa: BLE001 - a damaged index only costs a full re-hash
            return None

    def _check_cached(self, version_id: str, folder: Path, manifest: Manifest | None) -> bool:
        """Whether ``folder`` matches the manifest; cheap with an index, else a full re-hash."""
        info = _read_json(self._index_path(version_id)) if manifest is not None else None
        if manifest is None or info is None:
            name, version = version_id.split("@")
            manifest = self.repository.manifest(name, version)
            info = {"stats": {}}
        stats: dict[str, Any] = info.get("stats") or {}
        if info.get("boot", "") != self.boot_id:
            logger.info("model cache %s: written before a reboot; re-hashing it", version_id)
            stats = {}
        fresh = {}
        for entry in manifest.files:
            path = folder / entry.path
            try:
                stat = path.stat()
            except OSError:
                logger.warning("model cache %s: %s is missing", version_id, entry.path)
                return False
            if stat.st_size != entry.size_bytes:
                logger.warning("model cache %s: %s has the wrong size", version_id, entry.path)
                return False
            known = stats.get(entry.path)
            if known == [stat.st_size, stat.st_mtime_ns, entry.sha256]:
                fresh[entry.path] = known
                continue
            if sha256_file(path) != entry.sha256:
                logger.warning("model cache %s: %s is corrupt", version_id, entry.path)
                return False
            fresh[entry.path] = [stat.st_size, stat.st_mtime_ns, entry.sha256]
        if fresh != stats or info.get("boot", "") != self.boot_id:
            self._write_index(version_id, manifest, fresh)
        return True

    # -- downloading ------------------------------------------------------------------------

    def _download(self, name: str, version: str, folder: Path) -> None:
        manifest = self.repository.manifest(name, version)
        staging = Path(tempfile.mkdtemp(prefix=f"{name}@{version}-", dir=self.root / "tmp"))
        try:
            stats = {}
            for entry in manifest.files:
                local = staging / _safe_relpath(entry)
                fetched = self.repository.download(name, version, entry.path, local)
                stats[entry.path] = _verify_download(name, version, entry, fetched)
                if not self.boot_id:
                    _flush(local)
            make_folders(folder.parent)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._write_index(f"{name}@{version}", manifest, stats)
        logger.info(
            "model cache downloaded %s@%s (%d files, %d bytes)",
            name,
            version,
            len(manifest.files),
            manifest.size_bytes,
        )

    def _discard(self, version_id: str) -> None:
        """Remove a version: index first (so it no longer counts as cached), then files."""
        with contextlib.suppress(FileNotFoundError):
            self._index_path(version_id).unlink()
        name, version = version_id.split("@")
        folder = self._files_dir(name, version)
        if folder.exists():
            trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.root / "tmp"))
            os.replace(folder, trash / "v")
            shutil.rmtree(trash, ignore_errors=True)

    # -- index, locks, paths ---------------------------------------------------------------

    def _write_index(self, version_id: str, manifest: Manifest, stats: dict[str, Any]) -> None:
        doc = {
            "manifest": dump_manifest(manifest).decode("utf-8"),
            "size_bytes": manifest.size_bytes,
            "stats": stats,
            "boot": self.boot_id,
        }
        path = self._index_path(version_id)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out)
        os.replace(tmp, path)

    def _touch(self, version_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._index_path(version_id))

    @contextlib.contextmanager
    def _version_lock(self, version_id: str, blocking: bool = True) -> Iterator[bool]:
        """An exclusive ``flock`` on the version's lock file; yields whether it is held."""
        path = self.root / "locks" / f"{version_id}.lock"
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE), "a+b") as handle:
            flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
            try:
                fcntl.flock(handle.fileno(), flags)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _index_path(self, version_id: str) -> Path:
        return self.root / "index" / f"{version_id}.json"

    def _files_dir(self, name: str, version: str) -> Path:
        return self.root / "files" / name / version


def _safe_relpath(entry: FileEntry) -> str:
    """A manifest path as a local relative path; the key rules forbid '..' and absolute paths."""
    return validate_key(entry.path)


def current_boot_id() -> str:
    """This boot's id on Linux (changes at every boot); empty where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _flush(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _verify_download(name: str, version: str, entry: FileEntry, fetched: Fetched) -> list[Any]:
    """Check a download's streamed hash against the manifest; ``ConfigError`` if the store copy
    is bad."""
    stat = fetched.path.stat()
    digest = fetched.sha256
    if stat.st_size != entry.size_bytes or digest != entry.sha256:
        raise ConfigError(
            f"stored file {entry.path} of {name}@{version} does not match its manifest "
            f"({stat.st_size} bytes, sha256 {digest[:16]}...; expected {entry.size_bytes} "
            f"bytes, {entry.sha256[:16]}...); the repository copy is corrupt: run "
            f"`luma-ray models verify {name} {version}` and publish a new version"
        )
    return [stat.st_size, stat.st_mtime_ns, entry.sha256]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and "size_bytes" in raw else None
