"""Publish the reference model as a real repository version (``luma-tiny@v1``).

Who calls this: ``launch.start`` (so ``luma-ray up`` serves the reference model from the
repository on first start, like any other model) and tests that need a published version.
The weights are made deterministically, so every machine publishes the same bytes.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import yaml

from luma_ray.errors import ConfigError, Conflict
from luma_ray.models.manifest import Manifest
from luma_ray.models.reference.model import MODEL_NAME, make_checkpoint
from luma_ray.models.repository import ModelRepository

ENTRYPOINT = "luma_ray.models.reference.model:LumaTiny"
FIRST_VERSION = "v1"


def write_reference_folder(folder: Path, **model_yaml: object) -> Path:
    """A publishable folder for the reference model: ``model.yaml`` and ``checkpoints/``.

    ``model_yaml`` entries (``entrypoint``, ``params``, ``metadata``) override the defaults;
    tests use this to build versions with their own code.
    """
    folder.mkdir(parents=True, exist_ok=True)
    make_checkpoint(folder / "checkpoints")
    doc: dict[str, object] = {
        "entrypoint": ENTRYPOINT,
        "metadata": {"source": "luma_ray reference weights"},
    }
    doc.update(model_yaml)
    (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return folder


def ensure_reference(repository: ModelRepository, name: str = MODEL_NAME) -> str:
    """On first start: publish ``v1`` of the reference model and promote it; return the
    active version. An active version is left alone. Versions published by hand but none
    promoted: ``ConfigError`` (which one to serve is the operator's call, not a guess)."""
    pointer = repository.active(name)
    if pointer.active is not None:
        return pointer.active
    versions: list[Manifest] = repository.versions(name)
    if versions and FIRST_VERSION not in {m.version for m in versions}:
        listed = ", ".join(m.version for m in versions)
        raise ConfigError(
            f"model {name} has versions ({listed}) but none is active; promote one first: "
            f"luma-ray models promote {name} {versions[-1].version}"
        )
    if not versions:
        with (
            tempfile.TemporaryDirectory(prefix="luma-reference-") as tmp,
            contextlib.suppress(Conflict),  # another start published it just now
        ):
            repository.publish(name, FIRST_VERSION, write_reference_folder(Path(tmp)))
    return repository.promote(name, FIRST_VERSION).active or FIRST_VERSION
