"""A job's inputs reach the model decoded: the pull loop against the real scheduler service,
the real store sink over an in-memory blob store, and a fake model that keeps the
``Conditioning`` it receives. No Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_ray.config import parse_config
from luma_ray.jobs.request import INPUT_KINDS, GenerationInputs
from luma_ray.models.interface import Conditioning, GenerationRequest, ModelLimits
from luma_ray.models.media import decode_image, decode_video, fit_frame, fit_video
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import InMemoryBlobStore
from luma_ray.workers.adapters import StoreSink
from luma_ray.workers.host import _generate
from luma_ray.workers.loop import WorkerLoop
from tests.unit.media_samples import image_bytes, mp4_bytes
from tests.unit.test_worker_loop import Clock, ServicePort

LIMITS = ModelLimits(64, 128, 128, 50, 2, 8, 8, inputs=INPUT_KINDS)


class ConditionedModel:
    """Takes ``conditioning`` and keeps what it got."""

    name = "luma-tiny"
    limits = LIMITS

    def __init__(self) -> None:
        self.got: list[Conditioning | None] = []

    def generate(
        self, request: GenerationRequest, on_step: Any, conditioning: Conditioning | None = None
    ) -> np.ndarray:
        self.got.append(conditioning)
        for step in range(1, request.steps + 1):
            on_step(step, request.steps)
        return np.zeros((request.frames, request.height, request.width, 3), np.uint8)


class TextOnlyModel:
    """The interface before inputs: ``generate(request, on_step)`` and nothing more."""

    name = "luma-tiny"
    limits = LIMITS

    def generate(self, request: GenerationRequest, on_step: Any) -> np.ndarray:
        on_step(1, 1)
        return np.zeros((request.frames, request.height, request.width, 3), np.uint8)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    svc = SchedulerService(
        parse_config({}), Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, Clock()
    )
    store = InMemoryBlobStore()
    return {"svc": svc, "store": store, "sink": StoreSink(store), "tmp": tmp_path}


def run_one(world: dict[str, Any], model: Any, inputs: GenerationInputs | None, **req: Any):
    job = world["svc"].submit(
        SubmitRequest(prompt="a fox", tier="api", size="64x32", inputs=inputs, **req)
    )
    loop = WorkerLoop(ServicePort(world["svc"]), model, world["sink"], pull_wait_s=0.0)
    stats = loop.run(max_jobs=1)
    return world["svc"].get(job.id), stats


def test_images_arrive_center_cropped_and_resized_to_the_request(world) -> None:
    store = world["store"]
    store.put_bytes("inputs/t/a/first_frame", image_bytes(40, 60, seed=1))
    store.put_bytes("inputs/t/a/last_frame", image_bytes(90, 30, "JPEG", seed=2))
    model = ConditionedModel()
    inputs = GenerationInputs(
        first_frame="inputs/t/a/first_frame", last_frame="inputs/t/a/last_frame"
    )
    job, stats = run_one(world, model, inputs)
    assert job.state == "succeeded", job.error
    got = model.got[0]
    assert got is not None and not got.extended and got.source_video is None
    assert got.first_frame.shape == (32, 64, 3) and got.first_frame.dtype == np.uint8
    want = fit_frame(decode_image(image_bytes(40, 60, seed=1)), 64, 32)
    assert np.array_equal(got.first_frame, want)
    assert got.last_frame.shape == (32, 64, 3)


def test_a_source_video_is_resampled_to_the_requests_frames(world) -> None:
    video = mp4_bytes(6, tmp=world["tmp"])
    world["store"].put_bytes("inputs/t/b/source_video", video)
    model = ConditionedModel()
    inputs = GenerationInputs(source_video="inputs/t/b/source_video", strength=0.4)
    job, _ = run_one(world, model, inputs, frames=12)
    assert job.state == "succeeded", job.error
    got = model.got[0]
    assert got.source_video.shape == (12, 32, 64, 3) and got.strength == 0.4
    assert np.array_equal(got.source_video, fit_video(decode_video(video), 12, 64, 32))


def test_extending_gives_the_previous_videos_last_frame_as_first_frame(world) -> None:
    video = mp4_bytes(5, tmp=world["tmp"])
    world["store"].put_bytes("results/gen_prev/1/video.mp4", video)
    model = ConditionedModel()
    job, _ = run_one(world, model, GenerationInputs(extend_video="results/gen_prev/1/video.mp4"))
    assert job.state == "succeeded", job.error
    got = model.got[0]
    assert got.extended and got.first_frame.shape == (32, 64, 3)
    assert np.array_equal(got.first_frame, fit_frame(decode_video(video)[-1], 64, 32))


def test_a_request_without_inputs_never_passes_conditioning(world) -> None:
    job, stats = run_one(world, TextOnlyModel(), None)
    assert job.state == "succeeded" and stats.succeeded == 1


def test_an_input_gone_from_the_store_fails_the_job_once_naming_it(world) -> None:
    model = ConditionedModel()
    inputs = GenerationInputs(extend_video="results/gen_deleted/1/video.mp4")
    job, stats = run_one(world, model, inputs)
    assert job.state == "failed" and job.attempts == 1 and stats.failed == 1
    assert job.error.code == "input_unavailable" and not job.error.retryable
    assert job.error.message.startswith("extend_video: the input is gone")
    assert model.got == []  # the model never ran


def test_an_input_that_no_longer_decodes_fails_the_job_naming_it(world) -> None:
    world["store"].put_bytes("inputs/t/c/first_frame", b"\x89PNG\r\n\x1a\n broken")
    job, _ = run_one(
        world, ConditionedModel(), GenerationInputs(first_frame="inputs/t/c/first_frame")
    )
    assert job.state == "failed" and job.error.code == "input_unavailable"
    assert job.error.message.startswith("first_frame: the image does not decode")


def test_every_rank_calls_generate_with_resume_and_conditioning_only_when_given() -> None:
    """``host._generate`` is how rank 0 and every follower call the model."""
    calls: list[dict[str, Any]] = []

    class Model:
        def generate(self, request: GenerationRequest, on_step: Any, **kw: Any) -> None:
            calls.append(kw)

    request = GenerationRequest("p")
    cond = Conditioning(first_frame=np.zeros((8, 8, 3), np.uint8))
    _generate(Model(), request, None, None)
    _generate(Model(), request, None, b"state", cond)
    _generate(Model(), request, None, None, cond)
    assert calls == [{}, {"resume": b"state", "conditioning": cond}, {"conditioning": cond}]
