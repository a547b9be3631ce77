"""Version swaps between jobs, without Ray: the real scheduler service, repository (memory
store) and node cache; the model launcher is a fake that records what it started."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from luma_ray.config import parse_config
from luma_ray.models.cache import ModelCache
from luma_ray.models.interface import GenerationRequest, ModelLimits
from luma_ray.models.manifest import Manifest
from luma_ray.models.repository import ModelRepository
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage.memory import InMemoryBlobStore
from luma_ray.workers.loop import WorkerLoop
from luma_ray.workers.versions import VersionManager

from .test_worker_loop import Clock, ServicePort, Sink

LIMITS = ModelLimits(64, 128, 128, 50, 4, 8, 8)


class VersionedModel:
    name = "m"
    limits = LIMITS

    def __init__(self, version: str, hook=None) -> None:
        self.version = version
        self.hook = hook

    def load(self, checkpoint_dir: Path, device: object, process_group: object = None) -> None:
        pass

    def generate(self, request: GenerationRequest, on_step) -> np.ndarray:
        if self.hook is not None:
            self.hook(request.prompt)
        on_step(1, 1)
        return np.zeros((1, 8, 8, 3), np.uint8)


class FakeLoaded:
    def __init__(self, version: str, log: list[str], hook=None) -> None:
        self.model = VersionedModel(version, hook)
        self.log = log

    def warmup(self) -> None:
        if self.model.version == "warmfail":
            raise RuntimeError("warm-up produced NaN")

    def close(self) -> None:
        self.log.append(f"close {self.model.version}")


class Launcher:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.hook = None

    def __call__(self, manifest: Manifest, folder: Path) -> FakeLoaded:
        assert (folder / "checkpoints" / "w.bin").is_file()  # only verified folders
        self.log.append(f"start {manifest.version}")
        if manifest.version == "v3":
            raise RuntimeError("v3 refuses to load")
        return FakeLoaded(manifest.version, self.log, self.hook)


def publish(repo: ModelRepository, tmp_path: Path, version: str) -> None:
    folder = tmp_path / "src" / version
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({"entrypoint": "m:M"}))
    (folder / "checkpoints" / "w.bin").write_bytes(version.encode() * 100)
    repo.publish("m", version, folder)


@pytest.fixture
def setup(tmp_path: Path):
    clock = Clock()
    store = InMemoryBlobStore()
    repo = ModelRepository(store, clock)
    for version in ("v1", "v2", "v3", "v4", "warmfail"):
        publish(repo, tmp_path, version)
    repo.promote("m", "v1")
    svc = SchedulerService(
        parse_config({}),
        Journal(tmp_path / "j.sqlite"),
        {"m": LIMITS},
        clock,
        lambda name: repo.active(name).active,
    )
    return svc, repo, store, tmp_path


def worker(setup, name: str = "w1", pool_size: int = 1, hook=None):
    svc, repo, _, tmp_path = setup
    launcher = Launcher()
    launcher.hook = hook
    port = ServicePort(svc, name)
    vm = VersionManager(
        "m",
        repo,
        ModelCache(tmp_path / f"cache-{name}", repo, 10**9),
        launcher,
        port,
        pool_size=pool_size,
        clock=lambda: 0.0,
    )
    port.pulls_for = lambda: ["m", f"m@{vm.version}"]
    first = vm.start()
    loop = WorkerLoop(port, first, Sink(), pull_wait_s=0.0, versions=vm)
    return vm, loop, launcher


def submit(svc: SchedulerService, n: int, model: str = "m") -> list[str]:
    return [svc.submit(SubmitRequest(prompt=f"p{i}", model=model)).id for i in range(n)]


def test_swap_between_jobs_and_results_record_the_version(setup) -> None:
    svc, repo, _, _ = setup
    vm, loop, launcher = worker(setup)
    before = submit(svc, 2)
    loop.run(max_jobs=2)
    repo.promote("m", "v2")
    vm.poll()  # the watcher thread's step: notices v2 and downloads it
    after = submit(svc, 2)
    loop.run(max_jobs=4)
    assert [svc.get(i).model_version for i in before + after] == ["v1", "v1", "v2", "v2"]
    assert launcher.log == ["start v1", "close v1", "start v2"]
    assert svc.rollout_status("m")["events"][-1]["error"] is None


def test_a_version_that_fails_to_load_halts_the_rollout_and_the_worker_stays(setup) -> None:
    svc, repo, _, _ = setup
    vm, loop, launcher = worker(setup)
    repo.promote("m", "v3")
    vm.poll()
    jobs = submit(svc, 3)
    loop.run(max_jobs=3)
    assert [svc.get(i).state for i in jobs] == ["succeeded"] * 3
    assert {svc.get(i).model_version for i in jobs} == {"v1"}
    assert launcher.log == ["start v1", "close v1", "start v3", "start v1"]
    status = svc.rollout_status("m")
    assert status["halted"]["v3"]["error"] == "RuntimeError: v3 refuses to load"
    assert vm.version == "v1" and "v3" in vm.failed and not vm.wants_swap()
    # A worker that starts now does not try v3 at all: it starts on the previous version.
    other, other_loop, other_launcher = worker(setup, "w2")
    other.poll()
    assert other.version == "v1" and not other.wants_swap()
    assert other_launcher.log == ["start v1"] and "halted" in other.failed["v3"]


def test_warm_up_failure_keeps_the_old_version(setup) -> None:
    svc, repo, _, _ = setup
    vm, loop, launcher = worker(setup)
    repo.promote("m", "warmfail")
    vm.poll()
    vm.swap()
    assert vm.version == "v1"
    assert launcher.log == ["start v1", "close v1", "start warmfail", "close warmfail", "start v1"]
    assert "NaN" in svc.rollout_status("m")["halted"]["warmfail"]["error"]


def test_a_corrupt_stored_checkpoint_is_never_loaded(setup) -> None:
    svc, repo, store, _ = setup
    vm, loop, launcher = worker(setup)
    store.put_bytes("models/m/versions/v4/checkpoints/w.bin", b"v4" * 99 + b"XX")
    repo.promote("m", "v4")
    vm.poll()
    assert not vm.wants_swap() and vm.version == "v1"
    assert launcher.log == ["start v1"]
    assert "sha256" in svc.rollout_status("m")["halted"]["v4"]["error"]


def test_at_most_max_unavailable_swap_at_once(setup) -> None:
    svc, repo, _, _ = setup
    a, _, _ = worker(setup, "a", pool_size=2)
    b, _, b_launcher = worker(setup, "b", pool_size=2)
    repo.promote("m", "v2")  # max_unavailable 25% of 2 workers: one at a time
    a.poll()
    b.poll()
    assert svc.request_swap("a", "m", "v2", 2, "25%") == "go"  # a holds the slot
    b.swap()
    assert b.version == "v1" and b_launcher.log == ["start v1"]  # b waits its turn
    a.swap()
    b._next_ask = 0.0
    b.swap()
    assert (a.version, b.version) == ("v2", "v2")


def test_a_prefetched_job_pinned_to_the_old_version_is_handed_back(setup) -> None:
    svc, repo, _, _ = setup
    box = {}

    def promote_during_first_job(prompt: str) -> None:
        if prompt == "first":
            repo.promote("m", "v2")
            box["vm"].poll()

    vm, loop, _ = worker(setup, hook=promote_during_first_job)
    box["vm"] = vm
    first = svc.submit(SubmitRequest(prompt="first", model="m")).id
    pinned = svc.submit(SubmitRequest(prompt="pinned", model="m@v1")).id
    later = svc.submit(SubmitRequest(prompt="later", model="m")).id
    loop.run(max_jobs=2)  # the pinned job is prefetched during "first", then handed back
    assert [svc.get(i).model_version for i in (first, later)] == ["v1", "v2"]
    view = svc.get(pinned)
    assert (view.state, view.attempts) == ("queued", 1)
