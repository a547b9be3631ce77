"""Local checkpoints for workers until the model repository serves versions.

The reference model's weights are made deterministically on first use and cached per node
under ``checkpoint_root/<model>/``; a marker file written last makes a half-written folder
(a crash mid-write) get rebuilt rather than loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from luma_ray.errors import NotFound

READY = ".ready"


def ensure_checkpoint(model: str, checkpoint_root: Path) -> Path:
    """The folder holding ``model``'s checkpoint, made if it is missing."""
    folder = checkpoint_root / model
    if (folder / READY).exists():
        return folder
    if model != "luma-tiny":
        raise NotFound(f"no local checkpoint for model {model!r} under {checkpoint_root}")
    from luma_ray.models.reference.model import make_checkpoint

    checkpoint_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{model}-", dir=checkpoint_root))
    make_checkpoint(scratch)
    (scratch / READY).write_text("ok\n")
    try:
        os.replace(scratch, folder)  # atomic when folder is absent
    except OSError:  # another process won the race, or a stale folder is in the way
        if not (folder / READY).exists():
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(scratch, folder)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder
