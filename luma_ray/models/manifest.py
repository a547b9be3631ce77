"""Version manifests: names, file entries with sha256 and size, and their YAML form.

Shared by the repository (which writes manifests) and the per-node cache (which verifies
against them). Pure: no I/O beyond hashing a local file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from luma_ray.errors import Conflict

_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: ``path`` relative to the version folder, e.g. ``checkpoints/a``."""

    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.yaml`` says about one version; the cache verifies downloads against it."""

    model: str
    version: str
    entrypoint: str  # "package.module:Class", loaded with registry.import_entrypoint
    params: dict[str, Any]  # keyword arguments for the model, from model.yaml
    files: tuple[FileEntry, ...]  # every file of the version except manifest.yaml, sorted
    requirements: tuple[str, ...]  # pip requirement lines from requirements.txt
    created_at_s: float  # clock() at publish
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form, from model.yaml
    limits: dict[str, int | list[str]] | None = None
    """``ModelLimits`` fields from model.yaml (numbers, and ``inputs`` as a list of input
    kinds); None: the entrypoint is a built-in model whose class says them. The scheduler
    validates requests against these without importing code."""

    @property
    def size_bytes(self) -> int:
        """Total size of the version's files."""
        return sum(entry.size_bytes for entry in self.files)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a local file, read in chunks (checkpoints can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def dump_manifest(manifest: Manifest) -> bytes:
    """The stored form of a manifest (YAML); the cache keeps a copy in its index."""
    doc = {
        "model": manifest.model,
        "version": manifest.version,
        "entrypoint": manifest.entrypoint,
        "params": manifest.params,
        "requirements": list(manifest.requirements),
        "created_at_s": manifest.created_at_s,
        "metadata": manifest.metadata,
        "limits": manifest.limits,
        "files": [
            {"path": e.path, "sha256": e.sha256, "size_bytes": e.size_bytes} for e in manifest.files
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode("utf-8")


def _safe_mapping(data: bytes, key: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise Conflict(f"{key} in the repository is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise Conflict(f"{key} in the repository is not a YAML mapping")
    return raw


def load_manifest(data: bytes, key: str) -> Manifest:
    """Parse stored manifest bytes (``key`` names them in errors); malformed: ``Conflict``."""
    raw = _safe_mapping(data, key)
    try:
        files = tuple(
            FileEntry(str(f["path"]), str(f["sha256"]), int(f["size_bytes"])) for f in raw["files"]
        )
        return Manifest(
            model=str(raw["model"]),
            version=str(raw["version"]),
            entrypoint=str(raw["entrypoint"]),
            params=dict(raw.get("params") or {}),
            files=files,
            requirements=tuple(str(r) for r in raw.get("requirements") or ()),
            created_at_s=float(raw["created_at_s"]),
            metadata=dict(raw.get("metadata") or {}),
            limits=dict(raw["limits"]) if raw.get("limits") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Conflict(f"{key} in the repository is malformed ({exc!r})") from None
