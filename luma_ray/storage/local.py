"""``file://`` blob store: objects are files under one root directory.

Who calls this: ``open_store("file:///abs/root")`` or ``open_store("/abs/root")``; it is the
default result store on one machine and works for the model repository on a shared filesystem.

Every write goes to a temporary file in the object's own directory and is renamed into place
(``os.replace``), so a reader sees the old object or the new one, never half of one; the file
and then its folder are flushed to disk, and so is every folder a write creates;
``put_if_absent`` publishes its temporary file with ``os.link``, which fails if the name exists.
Temporary names start with ``.luma-tmp`` (reserved by ``keys.py``) and ``list`` skips them.
``content_type`` is accepted and ignored: files carry no metadata.

Limits of a filesystem that S3 does not have: ``a`` and ``a/b`` cannot both be objects
(``Conflict``), and a segment may be at most 255 bytes (``InvalidRequest``).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from luma_ray.errors import Conflict, InvalidRequest, NotFound
from luma_ray.storage.base import (
    FILE_MODE,
    StorageError,
    check_range,
    fill_durably,
    make_folders,
    sync_folder,
    write_file_atomically,
)
from luma_ray.storage.fetch import Fetched, fetch_stream
from luma_ray.storage.keys import RESERVED_PREFIX, validate_key, validate_prefix

logger = logging.getLogger(__name__)

MAX_SEGMENT_BYTES = 255
_COPY_CHUNK_BYTES = 1024 * 1024
_MKDIR_RACE_RETRIES = 3


class LocalBlobStore:
    """Objects as files under ``root`` (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        try:
            make_folders(self.root)
        except OSError as exc:
            raise StorageError(f"cannot create the store root {self.root}: {exc}") from exc
        self.uri: str = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalBlobStore({self.uri!r})"

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        path = self._path(key)
        self._write(key, path, lambda out: out.write(data))
        logger.debug("stored %s (%d bytes) in %s", key, len(data), self.uri)
        return self.uri_for(key)

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        target = self._path(key)
        with open(path, "rb") as source:
            self._write(key, target, lambda out: shutil.copyfileobj(source, out, _COPY_CHUNK_BYTES))
        logger.debug("stored %s from file %s in %s", key, path, self.uri)
        return self.uri_for(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.is_dir():
            raise self._folder_conflict(key)
        tmp_name = self._stage(key, path, lambda out: out.write(data))
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise StorageError(f"cannot create {key!r} in {self.uri}: {exc}") from exc
            return self._create_exclusive(path, data)  # filesystem without hard links
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        sync_folder(path.parent)  # the new name, and the temporary one gone
        logger.debug("created %s (%d bytes) in %s", key, len(data), self.uri)
        return True

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise self._not_found(key)
        return path.stat().st_size

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        check_range(start, stop)
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(stop - start)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None

    def get_file(self, key: str, path: str | Path) -> Path:
        source_path = self._path(key)
        try:
            source = open(source_path, "rb")  # noqa: SIM115 - closed below, before any rename
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        with source:
            return write_file_atomically(
                path, lambda out: shutil.copyfileobj(source, out, _COPY_CHUNK_BYTES)
            )

    def fetch_file(self, key: str, path: str | Path) -> Fetched:
        try:
            source = open(self._path(key), "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        with source:
            return fetch_stream(iter(lambda: source.read(_COPY_CHUNK_BYTES), b""), path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except PermissionError:
            if path.is_dir():  # macOS refuses unlink on a folder with EPERM
                return
            raise
        self._prune_empty_parents(path.parent)
        logger.debug("deleted %s from %s", key, self.uri)

    def list(self, prefix: str = "") -> builtins.list[str]:
        validate_prefix(prefix)
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not folder.resolve().is_relative_to(self.root):
            return []
        keys: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(RESERVED_PREFIX):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def uri_for(self, key: str) -> str:
        return self._path(key).as_uri()

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file for ``key``, after checking it cannot leave the root (the second guard)."""
        validate_key(key)
        for segment in key.split("/"):
            if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
                raise InvalidRequest(
                    f"key {key[:80]!r} has a segment over {MAX_SEGMENT_BYTES} bytes, "
                    "too long for a file name; shorten it"
                )
        path = self.root / key
        resolved = path.resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise InvalidRequest(f"key {key!r} resolves outside the store root {self.uri}")
        return path

    def _write(self, key: str, path: Path, fill: Callable[[BinaryIO], object]) -> None:
        for attempt in range(_MKDIR_RACE_RETRIES):
            try:
                write_file_atomically(path, lambda out: _ignore_result(fill, out))
                return
            except (NotADirectoryError, FileExistsError, IsADirectoryError):
                raise self._folder_conflict(key) from None
            except FileNotFoundError:
                # A concurrent delete pruned the folder between mkdir and mkstemp: try again.
                if attempt == _MKDIR_RACE_RETRIES - 1:
                    raise

    def _stage(self, key: str, path: Path, fill: Callable[[BinaryIO], object]) -> str:
        """Write a complete temporary file beside ``path``; return its name."""
        for attempt in range(_MKDIR_RACE_RETRIES):
            try:
                make_folders(path.parent)
                fd, tmp_name = tempfile.mkstemp(
                    dir=path.parent, prefix=f"{RESERVED_PREFIX}-", suffix=".part"
                )
                break
            except (NotADirectoryError, FileExistsError):
                raise self._folder_conflict(key) from None
            except FileNotFoundError:
                if attempt == _MKDIR_RACE_RETRIES - 1:
                    raise
        fill_durably(fd, tmp_name, fill)
        return tmp_name

    def _create_exclusive(self, path: Path, data: bytes) -> bool:
        """``O_EXCL`` fallback: atomic creation, but a reader may see a partial file."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        sync_folder(path.parent)
        return True

    def _prune_empty_parents(self, folder: Path) -> None:
        """Remove folders left empty by a delete, so ``a`` can later become an object."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"no object {key!r} in {self.uri}")

    def _folder_conflict(self, key: str) -> Conflict:
        return Conflict(
            f"cannot store {key!r} in {self.uri}: a file store cannot hold both 'a' and 'a/b'; "
            "one of the key's folders is an object or the key is a folder"
        )


def _ignore_result(fill: Callable[[BinaryIO], object], out: BinaryIO) -> None:
    fill(out)
