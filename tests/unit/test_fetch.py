"""fetch_stream / fetch_into: the bytes written, their size and their sha256 in one pass."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from luma_ray.storage.fetch import HashingWriter, fetch_into, fetch_stream


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
    """boto3's transfer manager writes parts in order only to a stream it cannot seek."""
    read, write = os.pipe()
    try:
        writer = HashingWriter(write)
        assert not hasattr(writer, "seek") and not hasattr(writer, "seekable")
        assert writer.write(b"abc") == 3 and os.read(read, 3) == b"abc"
    finally:
        os.close(read)
        os.close(write)
