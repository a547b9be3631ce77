"""Requests with image or video inputs: what intake refuses before anything is queued."""

from __future__ import annotations

import pytest

from luma_ray.errors import InvalidRequest
from luma_ray.jobs import GenerationInputs, GenerationRequest, Job, ModelLimits, TenantId
from luma_ray.jobs.codec import job_from_json, job_to_json
from luma_ray.jobs.model import new_job_id
from luma_ray.jobs.request import validate_request

TEXT_ONLY = ModelLimits(48, 128, 128, 50, 8, 8, 8)
ALL_INPUTS = ModelLimits(
    48, 128, 128, 50, 8, 8, 8, inputs=("first_frame", "last_frame", "source_video", "extend_video")
)


def _request(**inputs: object) -> GenerationRequest:
    return GenerationRequest("a red circle", inputs=GenerationInputs(**inputs))  # type: ignore[arg-type]


def test_a_text_only_model_refuses_an_image_input_and_says_what_it_takes() -> None:
    with pytest.raises(InvalidRequest, match="first_frame is not supported.*text-to-video only"):
        validate_request(_request(first_frame="t/in/a.png"), TEXT_ONLY)


def test_a_model_that_takes_inputs_accepts_each_kind() -> None:
    validate_request(_request(first_frame="a", last_frame="b"), ALL_INPUTS)
    validate_request(_request(source_video="v", strength=0.3), ALL_INPUTS)
    validate_request(_request(extend_video="v", last_frame="b"), ALL_INPUTS)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"first_frame": "a", "extend_video": "v"}, "first_frame or extend_video, not both"),
        ({"source_video": "v"}, "strength is None"),
        ({"source_video": "v", "strength": 1.5}, "strength is 1.5"),
        ({"source_video": "v", "strength": 0.0}, "strength is 0.0"),
        ({"first_frame": "a", "strength": 0.5}, "strength applies to source_video only"),
    ],
)
def test_contradictory_inputs_are_refused(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_request(_request(**inputs), ALL_INPUTS)


def test_inputs_survive_the_journal_row() -> None:
    job = Job(
        id=new_job_id(1.0),
        tenant=TenantId("t"),
        tier="free",
        model="luma-tiny",
        model_version=None,
        params=_request(source_video="t/inputs/v.mp4", strength=0.3),
        created_at_s=1.0,
        enqueued_at_s=1.0,
    )
    assert job_from_json(job_to_json(job)).params == job.params


def test_model_yaml_limits_read_inputs_and_refuse_unknown_kinds() -> None:
    from luma_ray.errors import ConfigError
    from luma_ray.jobs.request import limits_from_yaml

    numbers = {"max_frames": 48, "max_height": 128, "max_width": 128, "max_steps": 50}
    numbers |= {"default_steps": 8, "default_fps": 8, "size_multiple": 8}
    limits = limits_from_yaml({**numbers, "inputs": ["first_frame"]}, "m@v1")
    assert limits.inputs == ("first_frame",)
    with pytest.raises(ConfigError, match="m@v1: limits.inputs must be a list of"):
        limits_from_yaml({**numbers, "inputs": ["depth_map"]}, "m@v1")
    with pytest.raises(ConfigError, match="unknown limits"):
        limits_from_yaml({**numbers, "max_fames": 3}, "m@v1")
