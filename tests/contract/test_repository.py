"""The model repository on every blob store backend (local, in-memory, S3 via SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from luma_ray.errors import ConfigError, Conflict, InvalidRequest, NotFound
from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.storage import BlobStore


class FakeClock:
    """Seconds that advance by one on every call."""

    def __init__(self, start_s: float = 1_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        self.now_s += 1.0
        return self.now_s


def make_model(folder: Path, seed: str = "a", *, code: bool = True) -> Path:
    """A tiny model folder: model.yaml, two checkpoints, code/ and requirements.txt."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "entrypoint": "tiny_model.model:Tiny",
                "params": {"steps": 4},
                "metadata": {"owner": "video-team"},
            }
        )
    )
    (folder / "checkpoints" / "unet.safetensors").write_bytes(os.urandom(3000) + seed.encode())
    (folder / "checkpoints" / "vae.safetensors").write_bytes(seed.encode() * 500)
    if code:
        (folder / "code" / "tiny_model").mkdir(parents=True)
        # Not empty: SeaweedFS stalls a conditional PUT for the read timeout (60 s) once an empty
        # object exists (see the report); the store, not the repository, is what that tests.
        (folder / "code" / "tiny_model" / "__init__.py").write_text('"""Tiny."""\n')
        (folder / "code" / "tiny_model" / "model.py").write_text(f"class Tiny:  # {seed}\n")
    (folder / "requirements.txt").write_text("einops==0.8.0  # tensors\n\nsafetensors\n")
    return folder


@pytest.fixture
def repo(store: BlobStore) -> ModelRepository:
    return ModelRepository(store, FakeClock())


def test_publish_lists_every_file_with_hash_and_size(
    repo: ModelRepository, store: BlobStore, tmp_path: Path
) -> None:
    folder = make_model(tmp_path / "m")
    manifest = repo.publish("tiny", "v1", folder)
    assert manifest.entrypoint == "tiny_model.model:Tiny"
    assert manifest.params == {"steps": 4}
    assert manifest.metadata == {"owner": "video-team"}
    assert manifest.requirements == ("einops==0.8.0", "safetensors")
    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert [f.path for f in manifest.files] == local
    for entry in manifest.files:
        data = (folder / entry.path).read_bytes()
        assert entry.size_bytes == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        assert store.get_bytes(f"models/tiny/versions/v1/{entry.path}") == data
    assert repo.manifest("tiny", "v1") == manifest
    assert repo.verify("tiny", "v1") == []


def test_publishing_an_existing_version_is_a_conflict(
    repo: ModelRepository, store: BlobStore, tmp_path: Path
) -> None:
    repo.publish("tiny", "v1", make_model(tmp_path / "a", "a"))
    before = store.get_bytes("models/tiny/versions/v1/checkpoints/vae.safetensors")
    with pytest.raises(Conflict, match="version v1 of tiny already exists; publish a new"):
        repo.publish("tiny", "v1", make_model(tmp_path / "b", "b"))
    assert store.get_bytes("models/tiny/versions/v1/checkpoints/vae.safetensors") == before


@pytest.mark.parametrize("bad", ["../x", "..", "A", "a/b", "", "-a", "x" * 64, "a b"])
def test_bad_names_are_refused(repo: ModelRepository, tmp_path: Path, bad: str) -> None:
    folder = make_model(tmp_path / "m")
    with pytest.raises(InvalidRequest, match="a-z, 0-9"):
        repo.publish(bad, "v1", folder)
    with pytest.raises(InvalidRequest, match="a-z, 0-9"):
        repo.publish("tiny", bad, folder)
    with pytest.raises(InvalidRequest, match="a-z, 0-9"):
        repo.manifest(bad, "v1")


def test_malformed_folders_are_refused(repo: ModelRepository, tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", code=False)
    (folder / "model.yaml").write_text("params: {}\n")
    with pytest.raises(InvalidRequest, match="entrypoint"):
        repo.publish("tiny", "v1", folder)
    (folder / "model.yaml").unlink()
    with pytest.raises(InvalidRequest, match="model.yaml is missing"):
        repo.publish("tiny", "v1", folder)
    empty = make_model(tmp_path / "e", code=False)
    for path in (empty / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(InvalidRequest, match="checkpoints has no files"):
        repo.publish("tiny", "v1", empty)
    escaping = make_model(tmp_path / "s", code=False)
    (tmp_path / "secret").write_text("key")
    (escaping / "checkpoints" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidRequest, match="outside"):
        repo.publish("tiny", "v1", escaping)
    assert repo.versions("tiny") == []


def test_promote_rollback_and_history(repo: ModelRepository, tmp_path: Path) -> None:
    assert repo.active("tiny").active is None
    for version in ("v1", "v2", "v3"):
        repo.publish("tiny", version, make_model(tmp_path / version, version))
    assert [m.version for m in repo.versions("tiny")] == ["v1", "v2", "v3"]
    repo.promote("tiny", "v1")
    pointer = repo.promote("tiny", "v2")
    assert (pointer.active, pointer.previous, pointer.max_unavailable) == ("v2", "v1", "25%")
    back = repo.rollback("tiny")
    assert (back.active, back.previous) == ("v1", "v2")
    assert repo.active("tiny") == back
    actions = [(h["version"], h["action"]) for h in back.history]
    assert actions == [("v1", "promote"), ("v2", "promote"), ("v1", "rollback")]
    times = [h["at_s"] for h in back.history]
    assert times == sorted(times)
    status = repo.status("tiny")
    assert status["active"] == "v1"
    assert [v["version"] for v in status["versions"]] == ["v1", "v2", "v3"]
    with pytest.raises(NotFound, match="no version 'v9'"):
        repo.promote("tiny", "v9")
    # The rollout pace set at a promote stays for later promotes and rollbacks.
    assert repo.promote("tiny", "v3", max_unavailable="2").max_unavailable == "2"
    assert repo.rollback("tiny").max_unavailable == "2"
    assert repo.promote("tiny", "v1", max_unavailable="50%").max_unavailable == "50%"  # active
    assert repo.active("tiny").max_unavailable == "50%"
    for bad in ("0", "0%", "150%", "a lot", "-1"):
        with pytest.raises(InvalidRequest, match="max_unavailable"):
            repo.promote("tiny", "v2", max_unavailable=bad)
    assert repo.active("tiny").active == "v1"


def test_rollback_without_previous_is_a_clear_error(repo: ModelRepository, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no active version; promote one first"):
        repo.rollback("tiny")
    repo.publish("tiny", "v1", make_model(tmp_path / "m"))
    repo.promote("tiny", "v1")
    with pytest.raises(Conflict, match="no previous version to roll back to"):
        repo.rollback("tiny")


def test_verify_detects_a_corrupted_stored_file(
    repo: ModelRepository, store: BlobStore, tmp_path: Path
) -> None:
    repo.publish("tiny", "v1", make_model(tmp_path / "m"))
    key = "models/tiny/versions/v1/checkpoints/unet.safetensors"
    original = store.get_bytes(key)
    store.put_bytes(key, bytes(b ^ 1 for b in original))  # same size, other bytes
    store.put_bytes("models/tiny/versions/v1/checkpoints/extra.bin", b"x")
    store.delete("models/tiny/versions/v1/code/tiny_model/model.py")
    problems = repo.verify("tiny", "v1")
    assert any(p.startswith("checkpoints/unet.safetensors: sha256") for p in problems)
    assert "code/tiny_model/model.py: missing from the store" in problems
    assert "checkpoints/extra.bin: stored but not listed in the manifest" in problems
    assert len(problems) == 3


def test_the_model_cache_refuses_a_corrupted_stored_file(
    repo: ModelRepository, store: BlobStore, tmp_path: Path
) -> None:
    """The cache checks the sha256 taken while downloading (parallel ranged GETs on S3)
    against the manifest: a stored file with other bytes of the same size is refused and
    nothing of the version stays in the cache; the intact version loads."""
    repo.publish("tiny", "v1", make_model(tmp_path / "m"))
    cache = ModelCache(tmp_path / "cache", repo, max_bytes=10**6)
    good = cache.fetch("tiny", "v1") / "checkpoints" / "unet.safetensors"
    assert hashlib.sha256(good.read_bytes()).hexdigest() == next(
        f.sha256 for f in repo.manifest("tiny", "v1").files if f.path.endswith("unet.safetensors")
    )
    repo.publish("tiny", "v2", make_model(tmp_path / "m2", seed="b"))
    key = "models/tiny/versions/v2/checkpoints/unet.safetensors"
    original = store.get_bytes(key)
    store.put_bytes(key, bytes(b ^ 1 for b in original))  # same size, other bytes
    with pytest.raises(ConfigError, match="unet.safetensors of tiny@v2 does not match"):
        cache.fetch("tiny", "v2")
    assert not (tmp_path / "cache" / "files" / "tiny" / "v2").exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_version_is_invisible_until_its_manifest_exists(
    repo: ModelRepository, store: BlobStore, tmp_path: Path
) -> None:
    # A publish that crashed after uploading files but before writing the manifest:
    store.put_bytes("models/tiny/versions/v1/checkpoints/unet.safetensors", b"partial")
    store.put_bytes("models/tiny/versions/v1/model.yaml", b"entrypoint: a:B\n")
    assert repo.versions("tiny") == []
    with pytest.raises(NotFound):
        repo.manifest("tiny", "v1")
    with pytest.raises(NotFound):
        repo.promote("tiny", "v1")
    manifest = repo.publish("tiny", "v1", make_model(tmp_path / "m"))  # the retry completes it
    assert [m.version for m in repo.versions("tiny")] == ["v1"]
    assert repo.manifest("tiny", "v1") == manifest
    assert repo.verify("tiny", "v1") == []


def test_cli_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``luma-ray models ...`` against a file:// repository (one backend suffices here)."""
    import argparse

    from luma_ray.models.repository_cli import add_commands
    from luma_ray.storage import LocalBlobStore

    parser = argparse.ArgumentParser(prog="luma-ray")
    add_commands(parser.add_subparsers(dest="command", required=True))
    repo_uri = (tmp_path / "repo").as_uri()

    def run(*argv: str) -> int:
        args = parser.parse_args([*argv[:2], "--repo", repo_uri, *argv[2:]])
        return int(args.func(args))

    folder = make_model(tmp_path / "m")
    assert run("models", "publish", "tiny", "v1", str(folder)) == 0
    assert run("models", "publish", "tiny", "v2", str(folder)) == 0
    assert run("models", "promote", "tiny", "v1") == 0
    assert run("models", "promote", "tiny", "v2") == 0
    assert run("models", "rollback", "tiny") == 0
    capsys.readouterr()
    assert run("models", "list", "tiny") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:5] for line in lines] == ["* v1\t", "  v2\t"]
    assert run("models", "status", "tiny") == 0
    status = yaml.safe_load(capsys.readouterr().out)
    assert (status["active"], status["previous"]) == ("v1", "v2")
    assert run("models", "verify", "tiny", "v1") == 0
    store = LocalBlobStore(tmp_path / "repo")
    store.put_bytes("models/tiny/versions/v1/checkpoints/vae.safetensors", b"bad")
    capsys.readouterr()
    assert run("models", "verify", "tiny", "v1") == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["tiny@v1: checkpoints/vae.safetensors: size 3 bytes, manifest says 500"]
    with pytest.raises(Conflict):
        run("models", "publish", "tiny", "v1", str(folder))
