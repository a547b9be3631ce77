"""The worker parks and resumes: the real pull loop, the real scheduler service in process (fake
clock, temporary journal), the real reference model on CPU at tiny sizes and the real result
sink over an in-memory blob store. A parked job's video equals the unparked one, on the same
worker or another; its state is private to the job and deleted once the job is done."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from luma_ray.config import parse_config
from luma_ray.jobs import JobState
from luma_ray.models.interface import GenerationRequest, StepAnswer, StepCallback
from luma_ray.models.reference import LIMITS, LumaTiny, make_checkpoint
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, Op, Park, Pull, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage.memory import InMemoryBlobStore
from luma_ray.workers.adapters import SchedulerLeases, StoreSink
from luma_ray.workers.loop import WorkerLoop

FREE = SubmitRequest(
    prompt="a slow pan over hills", tier="free", frames=2, size="16x16", steps=20, seed=4
)
API = SubmitRequest(prompt="now please", tier="api", frames=2, size="16x16", steps=2, seed=5)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LumaTiny:
    model = LumaTiny()
    model.load(make_checkpoint(tmp_path_factory.mktemp("ckpt")), torch.device("cpu"))
    return model


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Locked:
    """The service behind a lock, as the actor serialises calls."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc, self.lock = svc, threading.Lock()

    def call(self, op: Op) -> object:
        with self.lock:
            return self.svc.call(op)


class Stepping:
    """The real model with a hook that runs before each step's callback (the test's clock
    and submits, as if time passed while the step computed)."""

    name = "luma-tiny"
    can_park = True

    def __init__(self, model: LumaTiny, hook: Callable[[GenerationRequest, int], None]) -> None:
        self.model, self.hook = model, hook

    def generate(
        self, request: GenerationRequest, on_step: StepCallback, resume: bytes | None = None
    ) -> np.ndarray:
        def hooked(step: int, total: int) -> StepAnswer:
            self.hook(request, step)
            return on_step(step, total)

        return self.model.generate(request, hooked, resume=resume)


class FramesSink(StoreSink):
    """The real sink (MP4 + thumbnail into the blob store) that also keeps the frames."""

    def __init__(self, blobs: InMemoryBlobStore) -> None:
        super().__init__(blobs)
        self.frames: dict[str, np.ndarray] = {}

    def store(self, a: Assignment, frames: np.ndarray) -> dict[str, str]:
        self.frames[a.job_id] = frames
        return super().store(a, frames)


class World:
    """One scheduler, one store; workers made on demand."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.svc = SchedulerService(
            parse_config({"preemption": {"enabled": True}}),
            Journal(tmp_path / "j.sqlite"),
            {"luma-tiny": LIMITS},
            self.clock,
        )
        self.blobs = InMemoryBlobStore()
        self.sink = FramesSink(self.blobs)

    def worker(self, name: str, model: object) -> WorkerLoop:
        port = SchedulerLeases(Locked(self.svc), name, "local", ["luma-tiny"])  # type: ignore[arg-type]
        return WorkerLoop(port, model, self.sink, prefetch=False, pull_wait_s=0.0)  # type: ignore[arg-type]

    def urgent_at(self, submit_step: int, tick_step: int):  # noqa: ANN201
        """A hook: 10 s per step of the free job; an api job arrives at ``submit_step`` and
        the timer runs at ``tick_step`` (it would wait 150 s behind the free job: park it)."""
        api: list[str] = []

        def hook(request: GenerationRequest, step: int) -> None:
            if request.prompt != FREE.prompt:
                return
            self.clock.now += 10.0
            if step == submit_step and not api:
                api.append(self.svc.submit(API).id)
            if step == tick_step:
                self.svc.tick()

        return hook, api

    def parked_keys(self, job_id: str) -> list[str]:
        return self.blobs.list(f"results/{job_id}/parked/")


def unparked(tiny: LumaTiny, request: SubmitRequest) -> np.ndarray:
    p = GenerationRequest(
        request.prompt,
        frames=request.frames,
        height=16,
        width=16,
        steps=request.steps,
        seed=request.seed,
    )
    return tiny.generate(p, lambda step, total: True)


def test_a_free_job_parks_for_an_api_job_and_resumes_to_the_same_video(
    tiny: LumaTiny, tmp_path: Path
) -> None:
    world = World(tmp_path)
    free = world.svc.submit(FREE).id
    hook, api = world.urgent_at(submit_step=3, tick_step=5)
    loop = world.worker("w1", Stepping(tiny, hook))
    stats = loop.run(max_jobs=3)
    assert stats.parked == {free: [5]} and stats.resumed == {free: 6}
    assert stats.succeeded == 2 and list(world.sink.frames) == [api[0], free]  # api went first
    view = world.svc.get(free)
    assert view.state is JobState.SUCCEEDED and view.preemptions == 1 and view.attempts == 1
    assert np.array_equal(world.sink.frames[free], unparked(tiny, FREE))
    assert world.parked_keys(free) == []  # the state went with the finished job
    reasons = [c.reason for c in world.svc.events(free)]
    assert "parked at step 5 of 20 by its worker" in reasons


def test_a_parked_job_resumes_on_another_worker(tiny: LumaTiny, tmp_path: Path) -> None:
    world = World(tmp_path)
    free = world.svc.submit(FREE).id
    hook, api = world.urgent_at(submit_step=2, tick_step=7)
    first = world.worker("w1", Stepping(tiny, hook))
    assert first.run(max_jobs=1).parked == {free: [7]}  # then w1 goes away
    (key,) = world.parked_keys(free)
    assert key.startswith(f"results/{free}/parked/") and key.endswith("/unversioned/state.bin")
    second = world.worker("w2", Stepping(tiny, lambda request, step: None))
    stats = second.run(max_jobs=2)
    assert stats.resumed == {free: 8} and stats.succeeded == 2
    leased = [c.reason for c in world.svc.events(free) if c.state is JobState.LEASED]
    assert leased == ["leased to w1", "leased to w2"]
    assert np.array_equal(world.sink.frames[free], unparked(tiny, FREE))
    assert world.parked_keys(free) == []


def test_a_model_that_cannot_park_runs_on(tiny: LumaTiny, tmp_path: Path) -> None:
    world = World(tmp_path)
    free = world.svc.submit(FREE).id
    hook, api = world.urgent_at(submit_step=2, tick_step=4)

    class NoParking(Stepping):
        can_park = False

    stats = world.worker("w1", NoParking(tiny, hook)).run(max_jobs=2)
    assert stats.parked == {} and list(world.sink.frames) == [free, api[0]]
    assert world.svc.get(free).preemptions == 0


def test_a_state_it_cannot_resume_from_runs_the_job_from_its_first_step(
    tiny: LumaTiny, tmp_path: Path
) -> None:
    world = World(tmp_path)
    free = world.svc.submit(FREE).id
    a = world.svc.call(Pull("w0", "local", ("luma-tiny",)))
    assert a is not None
    junk = world.blobs.put_bytes(f"results/{free}/parked/{a.token}/unversioned/state.bin", b"?")
    world.svc.call(Park(free, a.token, 3, 20, junk))
    steps: list[int] = []
    loop = world.worker("w1", Stepping(tiny, lambda request, step: steps.append(step)))
    assert loop.run(max_jobs=1).succeeded == 1
    assert steps == list(range(1, 21))  # from the first step, not from the bad state's
    assert np.array_equal(world.sink.frames[free], unparked(tiny, FREE))
    assert world.parked_keys(free) == []


def test_a_leaving_worker_hands_back_the_job_it_cannot_finish(
    tiny: LumaTiny, tmp_path: Path
) -> None:
    world = World(tmp_path)
    free = world.svc.submit(FREE).id
    loop: WorkerLoop

    def hook(request: GenerationRequest, step: int) -> None:
        if step == 6:
            loop.leave(loop.clock())  # the node goes now: no time for 14 more steps

    loop = world.worker("w1", Stepping(tiny, hook))
    stats = loop.run()
    assert stats.parked == {} and stats.handed_back == [free]
    view = world.svc.get(free)
    assert view.state is JobState.QUEUED and view.attempts == 1
    stats = world.worker("w2", Stepping(tiny, lambda request, step: None)).run(max_jobs=1)
    assert stats.resumed == {}  # from its first step
    assert np.array_equal(world.sink.frames[free], unparked(tiny, FREE))


def test_the_sink_reads_and_deletes_only_the_job_s_own_states_of_its_version() -> None:
    blobs = InMemoryBlobStore()
    sink = StoreSink(blobs)
    job = Assignment("gen_a", 3, 0.0, "luma-tiny", GenerationRequest("x"), 1, 0.0)
    uri = sink.store_parked(job, b"state", "v2")
    assert uri == f"{blobs.uri}/results/gen_a/parked/3/v2/state.bin"
    mine = Assignment("gen_a", 4, 0.0, "luma-tiny", GenerationRequest("x"), 1, 0.0, 60.0, uri)
    assert sink.load_parked(mine, "v2") == b"state"
    assert sink.load_parked(mine, "v3") is None  # another version's latent: start over
    other = blobs.put_bytes("results/gen_b/parked/1/v2/state.bin", b"theirs")
    elsewhere = "memory://another-store/results/gen_a/parked/3/v2/state.bin"
    for foreign in (other, elsewhere, f"{blobs.uri}/results/gen_a/3/video.mp4"):
        assert sink.load_parked(replace(mine, resume_uri=foreign), "v2") is None
        sink.delete_parked("gen_a", foreign)
    assert blobs.exists("results/gen_b/parked/1/v2/state.bin")
    sink.delete_parked("gen_a", uri)
    assert blobs.list("results/gen_a/") == []


def test_a_rank_host_passes_the_park_answer_to_its_model_and_resumes(tiny: LumaTiny) -> None:
    """Rank 0 of a gang, in this process (one rank: no group): the worker's answer to a step
    (``wait_step``) parks the model, and a resumed generation goes on from the state."""
    from luma_ray.models.interface import PARK, GenerationParked
    from luma_ray.workers.host import ModelHost

    host = ModelHost("luma-tiny", "v1", "unused", "unused", {}, torch.get_num_threads())
    host.model = tiny
    request = GenerationRequest("a harbour", frames=2, height=16, width=16, steps=6, seed=8)
    outcome: list[object] = []

    def run(generation: int, resume: bytes | None) -> None:
        try:
            outcome.append(host.generate(request, generation, resume))
        except GenerationParked as parked:
            outcome.append(parked)

    worker = threading.Thread(target=run, args=(1, None))
    worker.start()
    assert host.wait_step(1, 0, "go", 10.0) == (1, 6, False)
    assert host.wait_step(1, 1, "go", 10.0) == (2, 6, False)
    assert host.wait_step(1, 2, PARK, 10.0) == (2, 6, True)  # parked after step 2: ended
    worker.join(10)
    (parked,) = outcome
    assert isinstance(parked, GenerationParked) and parked.step == 2
    outcome.clear()
    worker = threading.Thread(target=run, args=(2, parked.state))
    worker.start()
    seen, step = [], 0
    while True:
        step, total, ended = host.wait_step(2, step, True, 10.0)
        if ended:
            break
        seen.append(step)
    worker.join(10)
    assert seen == [3, 4, 5, 6]
    assert np.array_equal(outcome[0], tiny.generate(request, lambda step, total: True))
