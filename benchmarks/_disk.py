"""A small disk for the soak's journal, and a way to fill it: a size-limited tmpfs (needs root;
the soak says so and runs without the disk-full fault where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

FILLER = "filler.bin"
CHUNK = b"\0" * (1 << 20)


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[str | None]:
    """Mount a ``size_mb`` tmpfs at ``path``; yields None when mounted, else why not."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    try:
        yield None if mounted.returncode == 0 else (mounted.stderr.strip() or "mount failed")
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> int:
    """Write a filler file until the disk is full; returns the bytes it took."""
    written = 0
    with open(path / FILLER, "wb", buffering=0) as out:
        while True:
            try:
                written += out.write(CHUNK)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
    while True:  # the last, partial pages too
        try:
            with open(path / FILLER, "ab", buffering=0) as out:
                written += out.write(b"\0" * 4096)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            return written


def free(path: Path) -> None:
    (path / FILLER).unlink(missing_ok=True)
