"""Downloads that hash while they stream: what ``BlobStore.fetch_file`` returns, on every backend.

Who calls this: each backend's ``fetch_file`` (S3 through :func:`fetch_parts`, parallel ranged
GETs; the local and in-memory stores through :func:`fetch_stream`); the model repository and
cache call ``fetch_file`` to load checkpoints and compare the :class:`Fetched` digest with the
manifest, without reading the file a second time.

:class:`HashingWriter` is a write-only stream (no ``seek``): bytes are hashed in file order.
:func:`fetch_parts` keeps ``concurrency`` ranged reads in flight; each thread writes its part at
its offset (``pwrite``), and the caller's thread hashes the parts in file order as they come, so
the hash runs beside the downloads and at most ``concurrency`` parts are held in memory.

The file is written beside ``path`` and renamed into place, as ``get_file`` does, but it is not
flushed to disk (no ``fsync``, which would cost as much as the download): a caller that must
survive a power loss flushes it, or re-checks it after a reboot (``ModelCache`` does that).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from luma_ray.storage.base import FILE_MODE, StorageError, make_folders
from luma_ray.storage.keys import RESERVED_PREFIX


@dataclass(frozen=True)
class Fetched:
    """A downloaded file: where it is, its length and the sha256 of the bytes written."""

    path: Path
    size_bytes: int
    sha256: str


class HashingWriter:
    """Writes bytes, in the order given, to an open file descriptor and into a sha256."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._digest = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> int:
        self.hash_next(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)

    def write_at(self, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` without hashing it (any thread; parts in any order):
        :meth:`hash_next` must then see every part once, in file order."""
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def hash_next(self, data: bytes) -> None:
        """Hash the next bytes of the file (in file order) and count them."""
        self._digest.update(data)
        self.size_bytes += len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def fetch_into(path: str | Path, fill: Callable[[HashingWriter], object]) -> Fetched:
    """Let ``fill`` write a temporary file beside ``path`` through a :class:`HashingWriter`,
    then rename it into place. If ``fill`` raises, the temporary file is removed and ``path``
    keeps whatever it had."""
    target = Path(path)
    make_folders(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{RESERVED_PREFIX}-", suffix=".part")
    writer = HashingWriter(fd)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            fill(writer)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Fetched(target, writer.size_bytes, writer.hexdigest())


def fetch_stream(chunks: Iterable[bytes], path: str | Path) -> Fetched:
    """Write ``chunks`` in order to ``path``, hashing them as they pass."""

    def fill(writer: HashingWriter) -> None:
        for chunk in chunks:
            writer.write(chunk)

    return fetch_into(path, fill)


def fetch_parts(
    out: HashingWriter,
    size_bytes: int,
    read: Callable[[int, int], bytes],
    part_bytes: int,
    concurrency: int,
    name: str = "the object",
) -> None:
    """Write ``size_bytes`` to ``out`` as parts of ``part_bytes``, each read by ``read(start,
    stop)`` and written at its offset on one of ``concurrency`` threads, and hashed in file
    order here. A part of the wrong length (the object changed meanwhile) raises
    ``StorageError``; any error cancels the reads not yet started and is raised once the
    running ones return."""

    def fetch(start: int, stop: int) -> bytes:
        data = read(start, stop)
        if len(data) != stop - start:
            raise StorageError(
                f"{name} changed while it was downloaded: bytes {start}-{stop - 1} "
                f"came back as {len(data)} bytes; fetch it again"
            )
        out.write_at(data, start)
        return data

    part_bytes, concurrency = max(1, part_bytes), max(1, concurrency)
    spans = deque(
        (start, min(start + part_bytes, size_bytes)) for start in range(0, size_bytes, part_bytes)
    )
    with ThreadPoolExecutor(concurrency, thread_name_prefix="fetch") as pool:
        flight: deque[Future[bytes]] = deque()
        try:
            while spans or flight:
                while spans and len(flight) < concurrency:
                    start, stop = spans.popleft()
                    flight.append(pool.submit(fetch, start, stop))
                out.hash_next(flight.popleft().result())
        finally:
            for future in flight:
                future.cancel()
