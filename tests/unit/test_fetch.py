"""fetch_stream / fetch_into / fetch_parts: the bytes written, their size and their sha256 in one
pass; parts read in parallel are written in file order."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import pytest

from luma_ray.storage import StorageError
from luma_ray.storage.fetch import HashingWriter, fetch_into, fetch_parts, fetch_stream


def test_fetch_stream_writes_the_chunks_and_their_hash(tmp_path: Path) -> None:
    chunks = [os.urandom(n) for n in (1, 0, 300_000, 7, 1 << 20)]
    fetched = fetch_stream(iter(chunks), tmp_path / "deep" / "out.bin")
    whole = b"".join(chunks)
    assert fetched.path.read_bytes() == whole
    assert fetched.size_bytes == len(whole)
    assert fetched.sha256 == hashlib.sha256(whole).hexdigest()
    assert fetched.path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in fetched.path.parent.iterdir()) == ["out.bin"]


def test_a_failed_fetch_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fill(writer: HashingWriter) -> None:
        writer.write(b"half of it")
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        fetch_into(target, fill)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_writer_is_not_seekable() -> None:
    """Bytes go to it in file order only: the hash is of the file as written."""
    read, write = os.pipe()
    try:
        writer = HashingWriter(write)
        assert not hasattr(writer, "seek") and not hasattr(writer, "seekable")
        assert writer.write(b"abc") == 3 and os.read(read, 3) == b"abc"
    finally:
        os.close(read)
        os.close(write)


def test_parts_read_in_parallel_are_written_in_order(tmp_path: Path) -> None:
    """Parts finish out of order (random delays); the file and its hash are the object's, the
    reads overlap, and no more than ``concurrency`` run at once."""
    data = os.urandom(1_000_003)
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(64)]
    running, most = [0], [0]
    lock = threading.Lock()

    def read(start: int, stop: int) -> bytes:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(delays[start // 16_384])
        with lock:
            running[0] -= 1
        return data[start:stop]

    fetched = fetch_into(
        tmp_path / "out.bin", lambda out: fetch_parts(out, len(data), read, 16_384, 4)
    )
    assert fetched.path.read_bytes() == data
    assert fetched.sha256 == hashlib.sha256(data).hexdigest()
    assert 2 <= most[0] <= 4


def test_a_short_part_fails_the_fetch_and_stops_the_reads(tmp_path: Path) -> None:
    asked: list[int] = []

    def read(start: int, stop: int) -> bytes:
        asked.append(start)
        return b"x" * ((stop - start) if start != 100 else 3)  # the object shrank

    with pytest.raises(StorageError, match="changed while it was downloaded"):
        fetch_into(tmp_path / "out.bin", lambda out: fetch_parts(out, 10_000, read, 100, 2))
    assert len(asked) < 100 and not (tmp_path / "out.bin").exists()


def test_an_empty_object_needs_no_read(tmp_path: Path) -> None:
    def read(start: int, stop: int) -> bytes:
        raise AssertionError("nothing to read")

    fetched = fetch_into(tmp_path / "empty", lambda out: fetch_parts(out, 0, read, 100, 2))
    assert fetched.size_bytes == 0 and fetched.path.read_bytes() == b""
