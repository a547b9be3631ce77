"""The reference model's first-start publish (``luma-ray up``) on an in-memory repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from luma_ray.errors import ConfigError
from luma_ray.models.reference.publish import ENTRYPOINT, ensure_reference
from luma_ray.models.repository import ModelRepository
from luma_ray.storage.memory import InMemoryBlobStore


class Clock:
    now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def repo() -> ModelRepository:
    return ModelRepository(InMemoryBlobStore(), Clock())


def test_first_start_publishes_and_promotes_v1_then_leaves_it(repo: ModelRepository) -> None:
    assert ensure_reference(repo) == "v1"
    (manifest,) = repo.versions("luma-tiny")
    assert manifest.entrypoint == ENTRYPOINT
    assert any(f.path == "checkpoints/model.safetensors" for f in manifest.files)
    assert repo.verify("luma-tiny", "v1") == []
    assert ensure_reference(repo) == "v1" and len(repo.active("luma-tiny").history) == 1


def test_a_promoted_version_is_left_alone(repo: ModelRepository, tmp_path: Path) -> None:
    ensure_reference(repo)
    folder = tmp_path / "v2"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": ENTRYPOINT}))
    (folder / "checkpoints" / "w.bin").write_bytes(b"weights")
    repo.publish("luma-tiny", "v2", folder)
    repo.promote("luma-tiny", "v2")
    assert ensure_reference(repo) == "v2"


def test_versions_published_by_hand_but_none_promoted_is_an_error(
    repo: ModelRepository, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": ENTRYPOINT}))
    (folder / "checkpoints" / "w.bin").write_bytes(b"weights")
    repo.publish("luma-tiny", "v7", folder)
    with pytest.raises(
        ConfigError, match="promote one first: luma-ray models promote luma-tiny v7"
    ):
        ensure_reference(repo)
    assert repo.active("luma-tiny").active is None


def test_a_version_declaring_every_limit_with_its_input_kinds_publishes(
    repo: ModelRepository, tmp_path: Path
) -> None:
    """model.yaml limits as ``asdict(LIMITS)`` writes them (``inputs`` a list of kinds): the
    integration session publishes its test models so; the repository refused ``inputs``."""
    from dataclasses import asdict

    from luma_ray.models.reference.model import LIMITS
    from luma_ray.models.reference.publish import write_reference_folder

    folder = write_reference_folder(tmp_path / "v1", limits=asdict(LIMITS))
    repo.publish("tiny-x", "v1", folder)
    assert repo.manifest("tiny-x", "v1").limits == {**asdict(LIMITS), "inputs": list(LIMITS.inputs)}
