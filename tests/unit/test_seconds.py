"""A request in seconds (the native ``seconds``, OpenAI's and Dream Machine's durations) gets
the frame count the model takes that is nearest that duration, and a duration the model
cannot make is refused in seconds, the unit the caller used."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.requests import SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from tests.unit.served_app import openai_client, run, served_app

LIMITS = {
    "luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8),
    # A video VAE's model: 4k+1 frames, at most 65, 16 fps by default.
    "wan": ModelLimits(65, 64, 64, 50, 4, 16, 16, default_frames=17, frame_step=4),
}


@pytest.fixture
def svc(tmp_path: Path) -> SchedulerService:
    return SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, lambda: 1e9)


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [(1, 17), (2, 33), (4, 65), (0.25, 5), (0.01, 1), (4.1, 65)],
)
def test_seconds_give_the_nearest_frame_count_the_model_takes(
    svc: SchedulerService, seconds: float, frames: int
) -> None:
    view = svc.submit(SubmitRequest(prompt="p", model="wan", seconds=seconds))
    assert view.params.frames == frames and view.params.fps == 16


def test_a_model_that_takes_any_count_gets_seconds_times_fps(svc: SchedulerService) -> None:
    assert svc.submit(SubmitRequest(prompt="p", seconds=2.0, fps=8)).params.frames == 16
    assert svc.submit(SubmitRequest(prompt="p", seconds=6.0, fps=8)).params.frames == 48


def test_a_duration_the_model_cannot_make_is_refused_in_seconds(svc: SchedulerService) -> None:
    with pytest.raises(
        InvalidRequest,
        match=r"seconds is 12, 96 frames at 8 fps; luma-tiny makes at most 48 frames "
        r"\(6 s at 8 fps\): ask for fewer seconds",
    ):
        svc.submit(SubmitRequest(prompt="p", seconds=12.0, fps=8))
    with pytest.raises(InvalidRequest, match=r"seconds is 4.5, 72 frames at 16 fps; wan makes"):
        svc.submit(SubmitRequest(prompt="p", model="wan", seconds=4.5))
    with pytest.raises(InvalidRequest, match="seconds must be greater than 0 and at most 600"):
        svc.submit(SubmitRequest(prompt="p", seconds=601.0))
    # With an fps out of range the duration is not judged in seconds: fps is named.
    with pytest.raises(InvalidRequest, match=r"fps is 1000; it must be between 1 and 60$"):
        svc.submit(SubmitRequest(prompt="p", seconds=2.0, fps=1000))
    assert svc.list(limit=10) == []  # nothing was queued


def test_the_openai_sdk_hears_about_seconds(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    served = served_app(tmp_path)
    client = openai_client(served, "alice")
    with pytest.raises(openai.BadRequestError, match="seconds is 12, 96 frames at 8 fps"):
        run(client.videos.create(prompt="a red circle", seconds="12"))
    assert run(client.videos.create(prompt="a red circle", seconds="6")).seconds == "6"
