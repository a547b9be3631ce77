"""The reference model's first-start publish (``luma-ray up``) on an in-memory repository."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import pytest
import yaml

from luma_ray.errors import ConfigError
from luma_ray.models.reference.model import WEIGHTS_FILE
from luma_ray.models.reference.publish import (
    ENTRYPOINT,
    SHIPPED_WEIGHTS,
    ensure_reference,
    write_reference_folder,
)
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


def test_first_start_publishes_and_promotes_the_trained_v2_then_leaves_it(
    repo: ModelRepository,
) -> None:
    assert ensure_reference(repo) == "v2"
    (manifest,) = repo.versions("luma-tiny")
    assert manifest.entrypoint == ENTRYPOINT
    assert manifest.metadata["weights"] == "trained"
    shipped = sha256((SHIPPED_WEIGHTS / WEIGHTS_FILE).read_bytes()).hexdigest()
    (entry,) = [f for f in manifest.files if f.path == "checkpoints/model.safetensors"]
    assert entry.sha256 == shipped
    assert repo.verify("luma-tiny", "v2") == []
    assert ensure_reference(repo) == "v2" and len(repo.active("luma-tiny").history) == 1


def _publish_old_v1(repo: ModelRepository, tmp_path: Path) -> None:
    """What an older install left: our random-weights v1, promoted."""
    repo.publish("luma-tiny", "v1", write_reference_folder(tmp_path / "v1"))
    repo.promote("luma-tiny", "v1")


def test_an_older_installs_v1_moves_to_v2_once(repo: ModelRepository, tmp_path: Path) -> None:
    _publish_old_v1(repo, tmp_path)
    assert ensure_reference(repo) == "v2"
    assert [m.version for m in repo.versions("luma-tiny")] == ["v1", "v2"]
    repo.promote("luma-tiny", "v1")  # the operator rolls back on purpose
    assert ensure_reference(repo) == "v1"


def test_an_operators_own_v1_is_not_replaced(repo: ModelRepository, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": ENTRYPOINT}))
    (folder / "checkpoints" / "w.bin").write_bytes(b"weights")
    repo.publish("luma-tiny", "v1", folder)
    repo.promote("luma-tiny", "v1")
    assert ensure_reference(repo) == "v1"
    assert [m.version for m in repo.versions("luma-tiny")] == ["v1"]


def test_a_promoted_version_is_left_alone(repo: ModelRepository, tmp_path: Path) -> None:
    ensure_reference(repo)
    folder = tmp_path / "v3"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": ENTRYPOINT}))
    (folder / "checkpoints" / "w.bin").write_bytes(b"weights")
    repo.publish("luma-tiny", "v3", folder)
    repo.promote("luma-tiny", "v3")
    assert ensure_reference(repo) == "v3"


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
