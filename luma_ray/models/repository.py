"""The model repository: immutable model versions and an ``active.yaml`` pointer per model.

Who calls this: the ``luma-ray models ...`` commands (``repository_cli.py``) publish, promote,
roll back and verify; ``ModelCache`` (``cache.py``) reads manifests and downloads files for a
worker; workers read ``active()`` to notice a promotion. Layout in the blob store
(docs/repository.md)::

    models/<name>/active.yaml
    models/<name>/versions/<version>/manifest.yaml   # written LAST: the version now exists
    models/<name>/versions/<version>/model.yaml, code/..., checkpoints/..., requirements.txt

A version is never overwritten: ``publish`` uploads every file first and then creates the
manifest with ``put_if_absent``, so readers see a version only once it is complete. Pure logic:
no Ray, no torch, time comes from the injected ``clock``; YAML via ``safe_load``/``safe_dump``.

Known limit: two publishes of the same new version at the same moment both upload their files
before one of them wins the manifest; the loser gets ``Conflict`` but may have overwritten some
of the winner's files, which ``verify`` then reports. Publish each version from one place.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from luma_ray.errors import ConfigError, Conflict, InvalidRequest, NotFound
from luma_ray.jobs.request import NAME_RE, limits_from_yaml, validate_name
from luma_ray.models.interface import ModelLimits
from luma_ray.models.manifest import (
    FileEntry,
    Manifest,
    _safe_mapping,
    dump_manifest,
    load_manifest,
    sha256_file,
)
from luma_ray.scheduler.rollouts import validate_max_unavailable
from luma_ray.storage.base import BlobStore
from luma_ray.storage.fetch import Fetched
from luma_ray.storage.keys import join_key

DEFAULT_MAX_UNAVAILABLE = "25%"
MAX_HISTORY = 200
"""``active.yaml`` keeps this many most recent promote/rollback entries."""
_MANIFEST = "manifest.yaml"


@dataclass(frozen=True)
class ActivePointer:
    """The content of ``active.yaml``: which version workers should serve."""

    active: str | None  # None: never promoted
    previous: str | None  # what rollback returns to
    history: tuple[dict[str, Any], ...]  # {"version", "at_s", "action"}, oldest first
    max_unavailable: str  # how much of a pool may swap at once, e.g. "25%" or "1"


class ModelRepository:
    """Publish, list, promote, roll back and verify model versions in one blob store."""

    def __init__(self, store: BlobStore, clock: Callable[[], float]) -> None:
        self.store = store
        self._clock = clock

    # -- keys --------------------------------------------------------------------------------

    def version_key(self, name: str, version: str, path: str) -> str:
        """The object key of ``path`` (relative to the version folder) in ``name@version``."""
        validate_name(name)
        validate_name(version, what="version")
        return join_key("models", name, "versions", version, path)

    def _active_key(self, name: str) -> str:
        return join_key("models", validate_name(name), "active.yaml")

    # -- publish -----------------------------------------------------------------------------

    def publish(self, name: str, version: str, folder: Path) -> Manifest:
        """Upload ``folder`` as ``name@version``; the manifest goes last, with put_if_absent.

        ``folder`` holds ``model.yaml`` (``entrypoint: module:Class``, optional ``params`` and
        ``metadata`` mappings), ``checkpoints/`` with at least one file, and optionally ``code/``
        and ``requirements.txt``. ``Conflict`` if the version exists, ``InvalidRequest`` for a
        malformed folder (the message says what to fix).
        """
        manifest_key = self.version_key(name, version, _MANIFEST)
        root = Path(folder)
        if not root.is_dir():
            raise InvalidRequest(f"{root} is not a folder; publish takes a model folder")
        if self.store.exists(manifest_key):
            raise _exists(name, version)
        model = _read_model_yaml(root)
        paths = _collect_files(root)
        if not any(p.startswith("checkpoints/") for p in paths):
            raise InvalidRequest(f"{root}/checkpoints has no files; add at least one checkpoint")
        entries = []
        for rel in paths:
            local = root / rel
            size_bytes = local.stat().st_size
            entries.append(FileEntry(rel, sha256_file(local), size_bytes))
            self.store.put_file(self.version_key(name, version, rel), local)
        requirements = root / "requirements.txt"
        manifest = Manifest(
            model=name,
            version=version,
            entrypoint=model["entrypoint"],
            params=model["params"],
            files=tuple(entries),
            requirements=_read_requirements(requirements) if requirements.is_file() else (),
            created_at_s=float(self._clock()),
            metadata=model["metadata"],
            limits=model["limits"],
        )
        data = dump_manifest(manifest)
        if not self.store.put_if_absent(manifest_key, data) and not self._is_ours(
            manifest_key, data
        ):
            raise _exists(name, version)
        return manifest

    def _is_ours(self, key: str, data: bytes) -> bool:
        """Whether ``key`` holds exactly ``data``: a retried conditional PUT whose first try
        succeeded reports "exists" (seen with SeaweedFS after a read timeout)."""
        try:
            return self.store.get_bytes(key) == data
        except NotFound:
            return False

    # -- reading -----------------------------------------------------------------------------

    def manifest(self, name: str, version: str) -> Manifest:
        """The manifest of ``name@version``; ``NotFound`` if that version was never published."""
        key = self.version_key(name, version, _MANIFEST)
        try:
            data = self.store.get_bytes(key)
        except NotFound:
            raise NotFound(
                f"no version {version!r} of model {name!r}; "
                f"`luma-ray models list {name}` shows the published ones"
            ) from None
        return load_manifest(data, key)

    def versions(self, name: str) -> list[Manifest]:
        """Every complete version of ``name`` (those with a manifest), oldest first."""
        prefix = join_key("models", validate_name(name), "versions") + "/"
        found = []
        for key in self.store.list(prefix):
            parts = key[len(prefix) :].split("/")
            if len(parts) == 2 and parts[1] == _MANIFEST and re.fullmatch(NAME_RE, parts[0]):
                found.append(load_manifest(self.store.get_bytes(key), key))
        return sorted(found, key=lambda m: (m.created_at_s, m.version))

    def active(self, name: str) -> ActivePointer:
        """The pointer in ``active.yaml``; ``active=None`` if ``name`` was never promoted."""
        key = self._active_key(name)
        try:
            data = self.store.get_bytes(key)
        except NotFound:
            return ActivePointer(None, None, (), DEFAULT_MAX_UNAVAILABLE)
        raw = _safe_mapping(data, key)
        rollout = raw.get("rollout") or {}
        return ActivePointer(
            active=raw.get("active"),
            previous=raw.get("previous"),
            history=tuple(dict(h) for h in raw.get("history") or ()),
            max_unavailable=str(rollout.get("max_unavailable", DEFAULT_MAX_UNAVAILABLE)),
        )

    def download(self, name: str, version: str, path: str, dest: Path) -> Fetched:
        """Download one file of a version to ``dest`` (atomic rename), hashed as it streams."""
        return self.store.fetch_file(self.version_key(name, version, path), dest)

    # -- promote / rollback --------------------------------------------------------------------

    def promote(self, name: str, version: str, max_unavailable: str | None = None) -> ActivePointer:
        """Make ``version`` active; the old active becomes ``previous``. Called by an operator.

        ``max_unavailable`` (``"25%"`` or a count such as ``"2"``) sets how much of each pool
        may swap at once, from this rollout on. Promoting the active version again changes
        only the pace, if given. ``active.yaml`` is rewritten with one ``put_bytes`` (atomic
        per object); concurrent promotes: the last one wins.
        """
        if max_unavailable is not None:
            validate_max_unavailable(max_unavailable)
        self.manifest(name, version)  # NotFound if it does not exist
        stored = self.active(name)
        current = stored
        if max_unavailable is not None:
            current = replace(stored, max_unavailable=max_unavailable)
        if current.active == version:
            if current.max_unavailable == stored.max_unavailable:
                return current
            return self._write_active(name, version, current.previous, current, "pace")
        return self._write_active(name, version, current.active, current, "promote")

    def rollback(self, name: str) -> ActivePointer:
        """Swap back to ``previous`` (a second rollback returns to where it started)."""
        current = self.active(name)
        if current.active is None:
            raise NotFound(f"model {name!r} has no active version; promote one first")
        if current.previous is None:
            raise Conflict(
                f"model {name!r} has no previous version to roll back to (active is "
                f"{current.active!r}); promote the version you want instead"
            )
        self.manifest(name, current.previous)
        return self._write_active(name, current.previous, current.active, current, "rollback")

    def _write_active(
        self, name: str, active: str, previous: str | None, old: ActivePointer, action: str
    ) -> ActivePointer:
        entry = {"version": active, "at_s": float(self._clock()), "action": action}
        history = (*old.history, entry)[-MAX_HISTORY:]
        pointer = ActivePointer(active, previous, history, old.max_unavailable)
        doc = {
            "active": active,
            "previous": previous,
            "rollout": {"max_unavailable": pointer.max_unavailable},
            "history": [dict(h) for h in history],
        }
        self.store.put_bytes(
            self._active_key(name), yaml.safe_dump(doc, sort_keys=False).encode(), "text/yaml"
        )
        return pointer

    # -- rollout status ------------------------------------------------------------------------

    def write_rollout(self, name: str, status: Mapping[str, object]) -> None:
        """Store the scheduler's view of a rollout (``rollout.yaml``); the scheduler calls this
        when a worker starts or finishes a swap, so ``models status`` shows it without Ray."""
        doc = {**status, "updated_at_s": float(self._clock())}
        self.store.put_bytes(
            join_key("models", validate_name(name), "rollout.yaml"),
            yaml.safe_dump(doc, sort_keys=False).encode(),
            "text/yaml",
        )

    def rollout(self, name: str) -> dict[str, Any] | None:
        """The last rollout status the scheduler stored, or None if there was none."""
        key = join_key("models", validate_name(name), "rollout.yaml")
        try:
            return _safe_mapping(self.store.get_bytes(key), key)
        except NotFound:
            return None

    # -- verify / status -----------------------------------------------------------------------

    def verify(self, name: str, version: str) -> list[str]:
        """Re-hash every stored file against the manifest; one line per problem (empty: ok).

        Also reports objects under the version that the manifest does not list (a version is
        immutable, so something wrote into it). Files are downloaded to a temporary folder.
        """
        manifest = self.manifest(name, version)
        problems = []
        prefix = self.version_key(name, version, _MANIFEST)[: -len(_MANIFEST)]
        listed = {entry.path for entry in manifest.files}
        with tempfile.TemporaryDirectory(prefix="luma-verify-") as tmp:
            for entry in manifest.files:
                local = Path(tmp) / "file"
                try:
                    fetched = self.download(name, version, entry.path, local)
                except NotFound:
                    problems.append(f"{entry.path}: missing from the store")
                    continue
                size_bytes, digest = fetched.size_bytes, fetched.sha256
                local.unlink()
                if size_bytes != entry.size_bytes:
                    problems.append(
                        f"{entry.path}: size {size_bytes} bytes, manifest says {entry.size_bytes}"
                    )
                elif digest != entry.sha256:
                    problems.append(
                        f"{entry.path}: sha256 {digest[:16]}..., manifest says "
                        f"{entry.sha256[:16]}..."
                    )
        for key in self.store.list(prefix):
            rel = key[len(prefix) :]
            if rel != _MANIFEST and rel not in listed:
                problems.append(f"{rel}: stored but not listed in the manifest")
        return problems

    def status(self, name: str) -> dict[str, Any]:
        """Active, previous, versions (oldest first) and history; for ``models status``."""
        pointer = self.active(name)
        return {
            "model": name,
            "active": pointer.active,
            "previous": pointer.previous,
            "max_unavailable": pointer.max_unavailable,
            "versions": [
                {
                    "version": m.version,
                    "created_at_s": m.created_at_s,
                    "files": len(m.files),
                    "size_bytes": m.size_bytes,
                    "entrypoint": m.entrypoint,
                }
                for m in self.versions(name)
            ],
            "history": [dict(h) for h in pointer.history],
            "rollout": self.rollout(name),
        }


# -- helpers ---------------------------------------------------------------------------------


def _exists(name: str, version: str) -> Conflict:
    return Conflict(f"version {version} of {name} already exists; publish a new version")


def _read_model_yaml(root: Path) -> dict[str, Any]:
    path = root / "model.yaml"
    if not path.is_file():
        raise InvalidRequest(f"{path} is missing; it must say 'entrypoint: package.module:Class'")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{path} must be a mapping with an 'entrypoint' key")
    entrypoint = raw.get("entrypoint")
    module, sep, cls = str(entrypoint or "").partition(":")
    if not isinstance(entrypoint, str) or not sep or not module or not cls:
        raise InvalidRequest(f"{path}: 'entrypoint' must be 'package.module:Class'")
    params = raw.get("params") or {}
    metadata = raw.get("metadata") or {}
    if not isinstance(params, dict) or not isinstance(metadata, dict):
        raise InvalidRequest(f"{path}: 'params' and 'metadata' must be mappings")
    return {
        "entrypoint": entrypoint,
        "params": params,
        "metadata": metadata,
        "limits": _read_limits(raw.get("limits"), path),
    }


def _read_limits(raw: object, path: Path) -> dict[str, int | list[str]] | None:
    """model.yaml's optional ``limits``: ``ModelLimits`` fields (those without a default
    required), numbers positive integers, ``inputs`` a list of input kinds."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{path}: 'limits' must be a mapping of ModelLimits fields")
    try:
        limits = limits_from_yaml(raw, str(path))
    except ConfigError as exc:
        raise InvalidRequest(str(exc)) from None
    bad = [k for k, v in raw.items() if k != "inputs" and v < 1]
    if bad:
        raise InvalidRequest(f"{path}: limits {sorted(bad)} must be positive integers")
    out: dict[str, int | list[str]] = {}
    for f in fields(ModelLimits):
        value = getattr(limits, f.name)
        out[f.name] = list(value) if f.name == "inputs" else int(value)
    return out


def _collect_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root``, sorted; refuses escaping symlinks."""
    resolved_root = root.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in list(dirnames):
            link = Path(dirpath) / name
            if link.is_symlink():
                raise InvalidRequest(
                    f"{link} is a symlinked folder; copy its content into the model folder"
                )
        for name in filenames:
            path = Path(dirpath) / name
            if not path.resolve().is_relative_to(resolved_root):
                raise InvalidRequest(f"{path} is a symlink pointing outside {root}; copy the file")
            if not path.is_file():
                raise InvalidRequest(f"{path} is not a regular file (broken symlink?)")
            rel = path.relative_to(root).as_posix()
            if rel == _MANIFEST:
                raise InvalidRequest(f"{path}: manifest.yaml is written by publish; remove it")
            try:
                join_key(rel)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{path} cannot be stored: {exc}") from None
            found.append(rel)
    return sorted(found)


def _read_requirements(path: Path) -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return tuple(line for line in lines if line)
