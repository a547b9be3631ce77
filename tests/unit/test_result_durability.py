"""A stored result survives a power loss: its file is flushed, and so is every folder entry
that names it (the rename, and each folder created on the way).

``os.fsync`` is wrapped (the operating system's, not our code) to record which folders were
flushed and what they held at that moment.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from luma_ray.storage import LocalBlobStore, write_file_atomically


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> dict[Path, list[set[str]]]:
    """Folder → what it held each time it was flushed."""
    seen: dict[Path, list[set[str]]] = {}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            folder = Path(os.readlink(f"/proc/self/fd/{fd}"))
            seen.setdefault(folder, []).append(set(os.listdir(folder)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def flushed_with(synced: dict[Path, list[set[str]]], folder: Path, name: str) -> bool:
    """Whether ``folder`` was flushed while it held ``name``."""
    return any(name in held for held in synced.get(folder.resolve(), []))


def test_a_stored_result_is_named_durably_in_new_folders(
    tmp_path: Path, synced: dict[Path, list[set[str]]]
) -> None:
    store = LocalBlobStore(tmp_path / "store")
    synced.clear()
    store.put_bytes("results/gen_a/1/video.mp4", b"video")
    root = tmp_path / "store"
    assert flushed_with(synced, root / "results/gen_a/1", "video.mp4")  # after the rename
    assert flushed_with(synced, root / "results/gen_a", "1")  # each new folder's entry
    assert flushed_with(synced, root / "results", "gen_a")
    assert flushed_with(synced, root, "results")


def test_an_uploaded_file_and_a_created_object_are_named_durably(
    tmp_path: Path, synced: dict[Path, list[set[str]]]
) -> None:
    store = LocalBlobStore(tmp_path / "store")
    (tmp_path / "upload.mp4").write_bytes(b"video")
    store.put_file("results/gen_b/2/video.mp4", tmp_path / "upload.mp4")
    assert store.put_if_absent("models/m/v1/model.yaml", b"name: m\n")
    root = tmp_path / "store"
    assert flushed_with(synced, root / "results/gen_b/2", "video.mp4")
    assert flushed_with(synced, root / "models/m/v1", "model.yaml")
    assert flushed_with(synced, root / "models", "m")


def test_a_download_is_named_durably(tmp_path: Path, synced: dict[Path, list[set[str]]]) -> None:
    target = tmp_path / "cache" / "m" / "weights.bin"
    write_file_atomically(target, lambda out: out.write(b"weights"))
    assert flushed_with(synced, target.parent, "weights.bin")
    assert flushed_with(synced, tmp_path / "cache", "m")
    assert flushed_with(synced, tmp_path, "cache")
