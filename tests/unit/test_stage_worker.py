"""Stage workers without Ray: the real pull loop, ``SchedulerLeases`` over the in-process
service, an in-memory result store, the real encoder. A generate loop and one loop per stage
(each pulling only its stage's queue) carry a job through generate → qa → caption → thumbnail
(docs/pipelines.md)."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from luma_ray.config import parse_config
from luma_ray.jobs import GenerationRequest, JobState
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Op, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage.memory import InMemoryBlobStore
from luma_ray.workers.adapters import SchedulerLeases, StoreSink
from luma_ray.workers.loop import WorkerLoop
from luma_ray.workers.stage_worker import StageRunner, StageSink
from luma_ray.workers.stages import (
    Captioner,
    QualityCheck,
    StageInputs,
    StageResult,
    Thumbnailer,
    load_stage,
)

LIMITS = ModelLimits(
    max_frames=16,
    max_height=32,
    max_width=32,
    max_steps=4,
    default_steps=2,
    default_fps=8,
    size_multiple=8,
)


class Locked:
    def __init__(self, svc: SchedulerService) -> None:
        self.svc, self.lock = svc, threading.Lock()

    def call(self, op: Op):  # type: ignore[no-untyped-def]
        with self.lock:
            return self.svc.call(op)


class SeededModel:
    """Frames whose brightness is the seed (so QA can tell the videos apart)."""

    name = "luma-tiny"

    def __init__(self) -> None:
        self.seeds: list[int] = []

    def generate(self, request: GenerationRequest, on_step):  # type: ignore[no-untyped-def]
        self.seeds.append(request.seed)
        on_step(1, 1)
        value = min(255, request.seed * 40)
        return np.full((request.frames, request.height, request.width, 3), value, np.uint8)


@dataclass
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()


def dark_check(frames: np.ndarray, prompt: str) -> Verdict:
    """A stand-in for ``luma_ray.models.reference.check.check``: rejects dark videos."""
    if frames.mean() < 100:
        return Verdict(False, (f"too dark (mean {frames.mean():.0f})",))
    return Verdict(True)


def run_loops(svc: SchedulerService, blobs: InMemoryBlobStore, model: SeededModel) -> None:
    """One pass of each pool until the job is done (each loop runs one job at a time)."""
    port = Locked(svc)
    gen = WorkerLoop(
        SchedulerLeases(port, "g", "local", ["luma-tiny"]),  # type: ignore[arg-type]
        model,
        StoreSink(blobs),
        prefetch=False,
        pull_wait_s=0.0,
    )
    stages = {
        name: WorkerLoop(
            SchedulerLeases(port, name, "stages", [f"luma-tiny:{name}"]),  # type: ignore[arg-type]
            StageRunner(stage, blobs),
            StageSink(blobs),  # type: ignore[arg-type]
            prefetch=False,
            pull_wait_s=0.0,
        )
        for name, stage in (
            ("qa", QualityCheck(dark_check)),
            ("caption", Captioner(lambda f: f"{len(f)} frames of grey")),
            ("thumbnail", Thumbnailer()),
        )
    }
    loops = {"luma-tiny": gen, **{f"luma-tiny:{n}": loop for n, loop in stages.items()}}
    for _ in range(12):  # generate and QA may run more than once (rejections)
        for key, loop in loops.items():
            if queued(svc, key):  # a loop with nothing queued would wait for ever
                loop.run(max_jobs=loop.stats.started + 1)


def queued(svc: SchedulerService, key: str) -> int:
    return sum(q.live for (_, m), q in svc.core.queues.queues.items() if m == key)


def service(tmp_path: Path, **cfg: object) -> SchedulerService:
    config = parse_config(
        {"pipelines": {"luma-tiny": ["generate", "qa", "caption", "thumbnail"]}, **cfg}
    )
    return SchedulerService(
        config, Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, lambda: 1e9
    )


def test_stage_pools_carry_a_job_through_the_pipeline(tmp_path: Path) -> None:
    svc, blobs, model = service(tmp_path), InMemoryBlobStore(), SeededModel()
    job_id = svc.submit(SubmitRequest(prompt="p", frames=4, size="16x16", seed=1)).id
    run_loops(svc, blobs, model)
    view = svc.get(job_id)
    assert view.state is JobState.SUCCEEDED, view
    # Seed 1 is too dark for QA (40): regenerated with 2 (80), then 3 (120) passes.
    assert model.seeds == [1, 2, 3] and view.params.seed == 3 and view.regenerations == 2
    assert view.caption == "4 frames of grey"
    assert set(view.result_uris) == {"video", "thumbnail", "spritesheet"}
    # The thumbnail and spritesheet lie next to the MP4 that passed QA, under the job's results.
    folders = {uri.rsplit("/", 1)[0].split(job_id)[1] for uri in view.result_uris.values()}
    assert all(f.startswith("/") for f in folders)
    sheet = blobs.get_bytes(view.result_uris["spritesheet"].split(blobs.uri + "/")[1])
    assert sheet[:8] == b"\x89PNG\r\n\x1a\n"


def test_qa_rejections_run_out_and_the_job_fails_with_the_qa_reason(tmp_path: Path) -> None:
    svc, blobs, model = service(tmp_path, qa_regenerations=1), InMemoryBlobStore(), SeededModel()
    job_id = svc.submit(SubmitRequest(prompt="p", frames=4, size="16x16", seed=0)).id
    run_loops(svc, blobs, model)
    view = svc.get(job_id)
    assert model.seeds == [0, 1]
    assert view.state is JobState.FAILED and view.error is not None
    assert view.error.message.startswith("qa: too dark (mean ")  # the second video's mean


def test_without_a_thumbnail_stage_the_generate_worker_writes_the_thumbnail(
    tmp_path: Path,
) -> None:
    config = parse_config({"pipelines": {"luma-tiny": ["generate", "qa"]}})
    svc = SchedulerService(
        config, Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, lambda: 1e9
    )
    blobs = InMemoryBlobStore()
    svc.submit(SubmitRequest(prompt="p", frames=2, size="16x16", seed=5))
    lease = svc.pull("g", "local", ["luma-tiny"])
    assert lease is not None
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    assert set(StoreSink(blobs).store(lease, frames)) == {"video", "thumbnail"}


class Slow:
    name = "qa"

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, request: GenerationRequest, inputs: StageInputs) -> StageResult:
        self.release.wait(5)
        return StageResult()


def test_a_slow_stage_beats_its_lease_and_stops_when_told() -> None:
    from luma_ray.models.interface import GenerationCancelled
    from luma_ray.scheduler.protocol import Assignment

    stage = Slow()
    runner = StageRunner(stage, InMemoryBlobStore())
    a = Assignment(
        "j", 1, 0.0, "luma-tiny", GenerationRequest(prompt="p"), 1, 0.0, 0.15, stage="qa"
    )
    beats: list[int] = []

    def on_step(step: int, total: int) -> bool:
        beats.append(step)
        return len(beats) < 4  # the fourth beat says stop (cancelled or lease lost)

    with pytest.raises(GenerationCancelled):
        runner.run_stage(a, on_step)
    stage.release.set()
    assert len(beats) == 4


def test_load_stage_takes_a_factory_or_a_built_in() -> None:
    assert isinstance(load_stage("thumbnail"), Thumbnailer)
    assert isinstance(load_stage("qa", "luma_ray.workers.stages:Thumbnailer"), Thumbnailer)
    with pytest.raises(ValueError, match="no built-in stage"):
        load_stage("upscale")


def test_without_the_reference_check_qa_passes_and_caption_writes_nothing() -> None:
    """A pipeline must not stop generation when its check module cannot be imported (an
    install without it, a misnamed module): QA lets the video through, caption writes none."""
    inputs = StageInputs(InMemoryBlobStore(), {})  # never read: nothing to run
    request = GenerationRequest(prompt="p")
    missing = "luma_ray.models.reference.no_such_check"
    assert QualityCheck(module=missing).run(request, inputs) == StageResult()
    assert Captioner(module=missing).run(request, inputs).caption is None


def test_qa_judges_only_what_its_check_can_judge() -> None:
    """A prompt outside the check's grammar (no expected scene) and a video conditioned on the
    user's own media pass; a grammar prompt the video misses is rejected."""
    from types import SimpleNamespace

    from luma_ray.jobs import GenerationInputs

    calls: list[str] = []

    def check(frames: object, prompt: str) -> SimpleNamespace:
        calls.append(prompt)
        scene = None if prompt.startswith("a paper boat") else "scene"
        return SimpleNamespace(ok=False, reasons=("object is blue, not red",), expected=scene)

    store = InMemoryBlobStore()
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    from luma_ray.models.encode import encode_mp4

    with tempfile.TemporaryDirectory() as tmp:
        uri = store.put_file("r/v.mp4", encode_mp4(frames, 8, Path(tmp) / "v.mp4"))
    inputs = StageInputs(store, {"video": uri})
    qa = QualityCheck(check)
    assert qa.run(GenerationRequest(prompt="a paper boat on a river"), inputs) == StageResult()
    mine = GenerationRequest(prompt="a red circle", inputs=GenerationInputs(first_frame="k"))
    assert qa.run(mine, inputs) == StageResult()
    assert calls == ["a paper boat on a river"]  # the conditioned job was not judged
    missed = qa.run(GenerationRequest(prompt="a red circle moving right"), inputs)
    assert missed.rejected == ("object is blue, not red",)


def test_qa_with_the_reference_check_passes_a_prompt_outside_its_grammar() -> None:
    """The real check, not a stand-in: it answers a prompt it cannot parse with ``expected``
    None, and QA must let that video through (most users' prompts are outside the grammar);
    a grammar prompt the video misses is still rejected."""
    from luma_ray.models.encode import encode_mp4

    store = InMemoryBlobStore()
    frames = np.zeros((8, 64, 64, 3), dtype=np.uint8)  # black: no object anywhere
    with tempfile.TemporaryDirectory() as tmp:
        uri = store.put_file("r/v.mp4", encode_mp4(frames, 8, Path(tmp) / "v.mp4"))
    inputs = StageInputs(store, {"video": uri})
    qa = QualityCheck()  # luma_ray.models.reference.check
    outside = GenerationRequest(prompt="a paper boat drifting down a rainy street")
    assert qa.run(outside, inputs) == StageResult()
    missed = qa.run(GenerationRequest(prompt="a red circle moving right on white"), inputs)
    assert missed.rejected, missed
