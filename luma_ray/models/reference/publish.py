"""Publish the reference model as a real repository version: ``luma-tiny@v2``, the trained one.

Who calls this: ``launch.start`` (so ``luma-ray up`` serves the reference model from the
repository on first start, like any other model) and tests that need a published version.

``v2`` is made from the weights shipped in the package (``weights/``, written by train.py), so
every machine publishes the same bytes. ``v1`` was the random-weights stand-in of older
installs: an install whose active version is still that ``v1`` (ours, by its metadata) moves
to ``v2`` once, the first time ``v2`` is published; if an operator then promotes ``v1`` again,
or promotes any version of their own, that choice is left alone.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import yaml

from luma_ray.errors import ConfigError, Conflict
from luma_ray.models.manifest import Manifest
from luma_ray.models.reference.model import CONFIG_FILE, MODEL_NAME, WEIGHTS_FILE, make_checkpoint
from luma_ray.models.repository import ModelRepository

ENTRYPOINT = "luma_ray.models.reference.model:LumaTiny"
FIRST_VERSION = "v1"
"""The random-weights version older installs published."""
TRAINED_VERSION = "v2"
"""The version made from the shipped trained weights; what a first start serves."""
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"
"""The trained checkpoint in the package (``model.safetensors`` + ``config.json``)."""
SOURCE = "luma_ray reference weights"


def write_reference_folder(folder: Path, weights: Path | None = None, **model_yaml: object) -> Path:
    """A publishable folder for the reference model: ``model.yaml`` and ``checkpoints/``.

    ``weights`` is a checkpoint folder to copy (``SHIPPED_WEIGHTS`` for the trained model);
    without it the checkpoint is ``make_checkpoint``'s random weights (quick, for tests).
    ``model_yaml`` entries (``entrypoint``, ``params``, ``metadata``, ``limits``) override the
    defaults; tests use this to build versions with their own code.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if weights is None:
        make_checkpoint(folder / "checkpoints")
    else:
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.copyfile(weights / name, folder / "checkpoints" / name)
    doc: dict[str, object] = {
        "entrypoint": ENTRYPOINT,
        "metadata": {"source": SOURCE, "weights": "random" if weights is None else "trained"},
    }
    doc.update(model_yaml)
    if isinstance(doc.get("limits"), dict):  # YAML has no tuples (ModelLimits.inputs is one)
        limits = dict(doc["limits"])  # type: ignore[call-overload]
        doc["limits"] = {k: list(v) if isinstance(v, tuple) else v for k, v in limits.items()}
    (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return folder


def ensure_reference(repository: ModelRepository, name: str = MODEL_NAME) -> str:
    """On first start: publish ``v2`` (trained) of the reference model and promote it; return
    the active version. An active version is left alone, except our own ``v1`` while no
    ``v2`` exists (an older install: it moves to ``v2`` once). Versions published by hand but
    none promoted: ``ConfigError`` (which one to serve is the operator's call, not a guess)."""
    pointer = repository.active(name)
    versions: dict[str, Manifest] = {m.version: m for m in repository.versions(name)}
    if pointer.active is not None:
        older = versions.get(FIRST_VERSION)
        upgrade = pointer.active == FIRST_VERSION and TRAINED_VERSION not in versions
        if not (upgrade and older is not None and older.metadata.get("source") == SOURCE):
            return pointer.active
    elif versions and not {FIRST_VERSION, TRAINED_VERSION} & set(versions):
        listed = ", ".join(versions)
        raise ConfigError(
            f"model {name} has versions ({listed}) but none is active; promote one first: "
            f"luma-ray models promote {name} {list(versions)[-1]}"
        )
    if TRAINED_VERSION not in versions:
        with (
            tempfile.TemporaryDirectory(prefix="luma-reference-") as tmp,
            contextlib.suppress(Conflict),  # another start published it just now
        ):
            folder = write_reference_folder(Path(tmp), weights=SHIPPED_WEIGHTS)
            repository.publish(name, TRAINED_VERSION, folder)
    return repository.promote(name, TRAINED_VERSION).active or TRAINED_VERSION
