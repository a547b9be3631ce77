"""Diffusers pipelines as model versions (Wan 2.x, LTX-Video), on tiny scaffolded weights:
text- and image-to-video give the requested frames, a cancel lands within one step, a run
parked at step k and resumed equals the uninterrupted run bit for bit (UniPC's multistep
history included), bad frame counts and sizes are refused naming the fix, and the scaffold
command writes a folder that publishes. No Ray."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch  # noqa: E402

from luma_ray.cli import main  # noqa: E402
from luma_ray.errors import ConfigError, InvalidRequest  # noqa: E402
from luma_ray.jobs.request import limits_from_yaml  # noqa: E402
from luma_ray.models.diffusers import DiffusersVideoModel  # noqa: E402
from luma_ray.models.diffusers.scaffold import write_tiny_folder  # noqa: E402
from luma_ray.models.interface import (  # noqa: E402
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ParkedStateInvalid,
    StepAnswer,
    can_park,
    validate_request,
)

FAMILIES = ["WanPipeline", "LTXPipeline"]
ASK = GenerationRequest("a heron over a lake", frames=9, height=32, width=32, steps=3, seed=7)
IMAGE = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Loaded:
    """A scaffolded version, its loaded model, and its uninterrupted outputs (computed once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.params = yaml.safe_load((folder / "model.yaml").read_text())["params"]
        self.model = DiffusersVideoModel(**self.params)
        self.model.load(folder / "checkpoints", torch.device("cpu"))
        self.seen: list[tuple[int, int]] = []
        calls: list[int] = []
        hook = real_transformer_runs(self, calls)
        try:
            self.t2v = self.model.generate(ASK, self._record)
        finally:
            hook.remove()
        assert calls and len(calls) % ASK.steps == 0
        self.runs_per_step = len(calls) // ASK.steps
        self.i2v = self.model.generate(ASK, lambda s, t: True, conditioning=first_frame())

    def _record(self, step: int, total: int) -> StepAnswer:
        self.seen.append((step, total))
        return None  # a logging-only callback goes on


def first_frame() -> Conditioning:
    return Conditioning(first_frame=IMAGE)


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    folder = write_tiny_folder(tmp_path_factory.mktemp(request.param), request.param)
    return Loaded(folder)


def park_at(step_to_park: int) -> Any:
    seen: list[int] = []

    def on_step(step: int, total: int) -> StepAnswer:
        seen.append(step)
        return PARK if step == step_to_park else True

    on_step.seen = seen  # type: ignore[attr-defined]
    return on_step


def real_transformer_runs(loaded: Loaded, calls: list[int]) -> Any:
    """Count the transformer's real runs: its output projection runs in every real forward
    and never in the fast-forward stub (Wan and LTX both call it ``proj_out``)."""
    return loaded.model.pipeline.transformer.proj_out.register_forward_hook(
        lambda *args: calls.append(1)
    )


def test_text_to_video_gives_the_requested_frames_and_reports_every_step(
    loaded: Loaded,
) -> None:
    assert loaded.t2v.shape == (9, 32, 32, 3) and loaded.t2v.dtype == np.uint8
    assert loaded.seen == [(1, 3), (2, 3), (3, 3)]
    assert loaded.t2v.std() > 0  # not a blank video
    again = loaded.model.generate(ASK, lambda s, t: True)
    assert np.array_equal(again, loaded.t2v)  # the seed fixes the output
    other = loaded.model.generate(replace(ASK, seed=8), lambda s, t: True)
    assert not np.array_equal(other, loaded.t2v)


def test_image_to_video_uses_the_first_frame(loaded: Loaded) -> None:
    assert loaded.i2v.shape == (9, 32, 32, 3) and loaded.i2v.dtype == np.uint8
    assert not np.array_equal(loaded.i2v, loaded.t2v)
    other_image = Conditioning(first_frame=255 - IMAGE)
    other = loaded.model.generate(ASK, lambda s, t: True, conditioning=other_image)
    assert not np.array_equal(other, loaded.i2v)


def test_a_cancel_stops_the_pipeline_at_that_step(loaded: Loaded) -> None:
    per_step, calls = loaded.runs_per_step, []
    hook = real_transformer_runs(loaded, calls)
    try:
        answers: list[int] = []

        def stop_after_one(step: int, total: int) -> StepAnswer:
            answers.append(step)
            return False

        with pytest.raises(GenerationCancelled) as info:
            loaded.model.generate(ASK, stop_after_one)
    finally:
        hook.remove()
    assert (info.value.step, info.value.total) == (1, 3)
    assert answers == [1]
    assert len(calls) == per_step  # the transformer ran for step 1 only


@pytest.mark.parametrize("k", [1, 2])
def test_park_at_step_k_and_resume_equals_the_uninterrupted_run(loaded: Loaded, k: int) -> None:
    assert can_park(loaded.model)
    on_step = park_at(k)
    with pytest.raises(GenerationParked) as info:
        loaded.model.generate(ASK, on_step)
    assert (info.value.step, info.value.total) == (k, 3) and on_step.seen == list(range(1, k + 1))
    later: list[int] = []
    per_step, calls = loaded.runs_per_step, []
    hook = real_transformer_runs(loaded, calls)
    try:
        resumed = loaded.model.generate(
            ASK, lambda s, t: later.append(s) or True, resume=info.value.state
        )
    finally:
        hook.remove()
    assert later == list(range(k + 1, 4))  # callbacks go on from k + 1
    assert len(calls) == per_step * (3 - k)  # steps 1..k were fast-forwarded
    assert np.array_equal(resumed, loaded.t2v)  # bit for bit on CPU


def test_an_image_to_video_run_parks_and_resumes_bit_for_bit(loaded: Loaded) -> None:
    with pytest.raises(GenerationParked) as info:
        loaded.model.generate(ASK, park_at(1), conditioning=first_frame())
    resumed = loaded.model.generate(
        ASK, lambda s, t: True, resume=info.value.state, conditioning=first_frame()
    )
    assert np.array_equal(resumed, loaded.i2v)


def test_a_state_of_another_request_is_refused(loaded: Loaded) -> None:
    with pytest.raises(GenerationParked) as info:
        loaded.model.generate(ASK, park_at(1))
    with pytest.raises(ParkedStateInvalid, match="another request"):
        loaded.model.generate(replace(ASK, seed=99), lambda s, t: True, resume=info.value.state)
    with pytest.raises(ParkedStateInvalid, match="not a"):
        loaded.model.generate(ASK, lambda s, t: True, resume=b"not a state")


def test_bad_frame_counts_and_sizes_are_refused_naming_the_fix(loaded: Loaded) -> None:
    wan = loaded.params["pipeline_class"] == "WanPipeline"
    step, multiple = (4, 16) if wan else (8, 32)
    with pytest.raises(InvalidRequest, match=rf"{step}k\+1 frames; use 9 or {9 + step}"):
        loaded.model.generate(replace(ASK, frames=10), lambda s, t: True)
    bad = multiple + 8
    with pytest.raises(InvalidRequest, match=rf"height {bad} is not a multiple of {multiple}"):
        loaded.model.generate(replace(ASK, height=bad), lambda s, t: True)
    with pytest.raises(InvalidRequest, match=r"first_frame must be uint8 RGB \[32, 32, 3\]"):
        loaded.model.generate(ASK, lambda s, t: True, conditioning=Conditioning(IMAGE[:16]))
    # The scheduler refuses the same at intake, from model.yaml's limits alone.
    doc = yaml.safe_load((loaded.folder / "model.yaml").read_text())
    limits = limits_from_yaml(doc["limits"], "model.yaml")
    with pytest.raises(InvalidRequest, match=rf"{step}k\+1 frames"):
        validate_request(replace(ASK, frames=10), limits)


def test_the_entrypoint_imports_as_a_video_model() -> None:
    from luma_ray.models.registry import import_entrypoint

    cls = import_entrypoint("luma_ray.models.diffusers:DiffusersVideoModel")
    assert cls is DiffusersVideoModel and can_park(cls)


def test_a_folder_without_a_pipeline_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="model_index.json is missing"):
        DiffusersVideoModel().load(tmp_path / "checkpoints", torch.device("cpu"))
    with pytest.raises(ConfigError, match="params.cpu_offload"):
        DiffusersVideoModel(cpu_offload="sometimes")


def test_scaffold_command_writes_a_folder_that_publishes(tmp_path: Path, capsys) -> None:
    out, repo = tmp_path / "tiny-wan", (tmp_path / "repo").as_uri()
    assert (
        main(["models", "scaffold", "--pipeline", "WanPipeline", "--tiny", "--out", str(out)]) == 0
    )
    assert (out / "checkpoints" / "pipeline" / "model_index.json").is_file()
    assert main(["models", "publish", "tiny-wan", "v1", str(out), "--repo", repo]) == 0
    assert main(["models", "promote", "tiny-wan", "v1", "--repo", repo]) == 0
    printed = capsys.readouterr().out
    assert "entrypoint luma_ray.models.diffusers:DiffusersVideoModel" in printed
    assert (
        main(["models", "scaffold", "--pipeline", "SoraPipeline", "--tiny", "--out", str(out)]) == 2
    )
    assert "exists and is not an empty folder" in capsys.readouterr().err
    other = tmp_path / "other"
    assert (
        main(["models", "scaffold", "--pipeline", "SoraPipeline", "--tiny", "--out", str(other)])
        == 2
    )
    assert "use one of WanPipeline, LTXPipeline" in capsys.readouterr().err


def test_publish_reads_the_optional_limits_and_refuses_bad_ones(tmp_path: Path) -> None:
    from luma_ray.models.repository import ModelRepository
    from luma_ray.storage import open_store

    repo = ModelRepository(open_store((tmp_path / "repo").as_uri()), lambda: 0.0)
    folder = tmp_path / "v"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "weights.bin").write_bytes(b"w")
    base = {"max_frames": 33, "max_height": 64, "max_width": 64, "max_steps": 8}
    base |= {"default_steps": 2, "default_fps": 8, "size_multiple": 16}
    for extra, message in [
        ({"frame_step": 0}, r"limits \['frame_step'\] must be positive integers"),
        ({"inputs": ["sound"]}, "limits.inputs must be a list of"),
        ({"colour": 1}, r"unknown limits \['colour'\]"),
    ]:
        doc = {"entrypoint": "m:M", "limits": base | extra}
        (folder / "model.yaml").write_text(yaml.safe_dump(doc))
        with pytest.raises(InvalidRequest, match=message):
            repo.publish("m", "v1", folder)
    doc = {"entrypoint": "m:M", "limits": base | {"frame_step": 4, "inputs": ["first_frame"]}}
    (folder / "model.yaml").write_text(yaml.safe_dump(doc))
    manifest = repo.publish("m", "v1", folder)
    assert manifest.limits is not None
    assert manifest.limits["frame_step"] == 4 and manifest.limits["inputs"] == ["first_frame"]
    assert manifest.limits["default_frames"] == 16  # a defaulted field, filled in
