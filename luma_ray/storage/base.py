"""The blob store port: what the result store and the model repository need from storage.

Who calls this: workers store results (``put_file``/``put_bytes``) and the API serves them
(``get_bytes``, or ``size`` and ``get_range`` for a range request; ``uri_for``); the model
repository writes immutable versions (``put_if_absent``), rewrites ``active.yaml``
(``put_bytes``, atomic on every backend) and downloads checkpoints
(``fetch_file``, which hashes while it downloads).
Implementations: ``LocalBlobStore`` (``file://``), ``S3BlobStore`` (``s3://``) and
``InMemoryBlobStore`` (unit tests). ``open_store`` in ``luma_ray.storage`` picks one from a URI.

Errors: ``InvalidRequest`` for a bad key (see ``keys.py``), ``NotFound`` for a missing object,
``StorageError`` when the backend fails (network, permissions, server), ``ConfigError`` when
the store itself is misconfigured (e.g. the S3 bucket does not exist).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from luma_ray.errors import InvalidRequest, LumaError
from luma_ray.storage.keys import RESERVED_PREFIX

if TYPE_CHECKING:
    from luma_ray.storage.fetch import Fetched


class StorageError(LumaError):
    """The storage backend failed (unreachable, refused, out of space); often worth a retry."""

    code = "storage_error"


@runtime_checkable
class BlobStore(Protocol):
    """Objects addressed by relative POSIX keys such as ``results/gen_abc/video.mp4``."""

    uri: str
    """Where the store lives: ``file:///abs/root``, ``s3://bucket/prefix`` or ``memory://name``."""

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` under ``key`` (replacing any old object atomically); return its URI."""
        ...

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        """Upload the local file ``path`` under ``key``; return the object's URI."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if it does not exist; False (and no change) if it does."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Return the object's content; ``NotFound`` if there is none."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes; ``NotFound`` if there is none."""
        ...

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``start`` up to (not including) ``stop`` of the object (fewer if it is
        shorter; ``0 <= start <= stop``); ``NotFound`` if there is none. Serves HTTP range
        requests without reading the whole object."""
        ...

    def get_file(self, key: str, path: str | Path) -> Path:
        """Download to ``path`` via a temporary file and a rename; ``NotFound`` if missing.

        On any error ``path`` is left as it was (absent, or its old content).
        """
        ...

    def fetch_file(self, key: str, path: str | Path) -> Fetched:
        """Download to ``path`` as :meth:`get_file` does, hashing the bytes as they stream
        (S3: parallel ranged reads); the answer carries the size and sha256 of what was written.
        Not flushed to disk (see ``fetch.py``); ``NotFound`` if missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under exactly ``key`` (a "folder" is not an object)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if it is missing."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with ``prefix`` (a string prefix, as in S3), sorted."""
        ...

    def uri_for(self, key: str) -> str:
        """The URI of ``key`` in this store (it need not exist)."""
        ...


FILE_MODE = 0o600
"""Permissions of every file the system creates under its data directory: its owner's only
(results hold what users asked for; the journal, prompts and callback URLs)."""
FOLDER_MODE = 0o700
"""Permissions of every folder the system creates, for the same reason."""


def write_file_atomically(path: str | Path, fill: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` by letting ``fill`` write a temporary file beside it, then renaming.

    Used by every backend's ``get_file`` and by the local store's writes: if ``fill`` raises
    (missing object, broken connection), the temporary file is removed and ``path`` keeps
    whatever it had before. Once it returns, the file, its name and every folder it created
    are on disk (a power loss cannot leave a journal that names a missing file).
    """
    target = Path(path)
    make_folders(target.parent)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f"{RESERVED_PREFIX}-", suffix=".part")
    fill_durably(fd, tmp_name, fill)
    try:
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    sync_folder(target.parent)
    return target


def make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents (as ``mkdir -p``), each one private
    (``FOLDER_MODE``) and durably: the folder that names a new one is flushed after it."""
    missing: list[Path] = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(mode=FOLDER_MODE, exist_ok=True)
        sync_folder(new.parent)


def make_private_file(path: Path, *companions: Path) -> None:
    """Create ``path`` (empty) with ``FILE_MODE`` if it is missing, in folders made by
    :func:`make_folders`; narrow it, and any ``companions`` that exist, to ``FILE_MODE`` if
    an earlier version left them open to others. SQLite gives a database's ``-wal`` and
    ``-shm`` files its mode, so it is called before SQLite opens a file.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock the process holds on it, so opening and closing a database that a connection of
    this process has open would silently release that connection's SQLite locks (another
    process could then checkpoint and remove the WAL under it)."""
    make_folders(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for file in (path, *companions):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(file).st_mode & 0o077:
                os.chmod(file, FILE_MODE)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk (after a rename into it, or a file or folder created
    in it): ``fsync`` of the file alone does not make its name durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fill_durably(fd: int, name: str, fill: Callable[[BinaryIO], object]) -> None:
    """Let ``fill`` write the new temporary file ``name`` (open as ``fd``), then flush it to
    disk; on any failure the file is removed and the error raised."""
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            fill(out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def check_range(start: int, stop: int) -> None:
    """Refuse a byte range ``get_range`` cannot mean (negative, or ending before it starts)."""
    if start < 0 or stop < start:
        raise InvalidRequest(f"byte range [{start}, {stop}) is not 0 <= start <= stop")
