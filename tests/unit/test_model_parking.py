"""Parking the reference model at a step boundary and resuming it: the resumed video equals an
unparked run with the same seed, bit for bit on CPU, wherever it parked; a gang parks the whole
latent and a gang of another size (or one process) resumes it."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from luma_ray.models.interface import (
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ParkedStateInvalid,
    StepAnswer,
    can_park,
)
from luma_ray.models.reference import LumaTiny, make_checkpoint

ASK = GenerationRequest("a heron over a lake", frames=3, height=16, width=24, steps=6, seed=21)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("luma-tiny"))


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> LumaTiny:
    loaded = LumaTiny()
    loaded.load(checkpoint, torch.device("cpu"))
    return loaded


def park_at(*steps: int):  # noqa: ANN201 - a step callback
    """A callback that parks after each of ``steps`` (the first one it reaches, each time)."""
    seen: list[int] = []

    def on_step(step: int, total: int) -> StepAnswer:
        seen.append(step)
        return PARK if step in steps else True

    on_step.seen = seen  # type: ignore[attr-defined]
    return on_step


def run_parking(model: LumaTiny, request: GenerationRequest, *steps: int) -> np.ndarray:
    """Generate, parking at every step in ``steps`` and resuming from the state each time."""
    state, parked_at, left = None, [], steps
    while True:
        try:
            frames = model.generate(request, park_at(*left), resume=state)
            assert parked_at == sorted(steps)
            return frames
        except GenerationParked as parked:
            assert parked.total == request.steps and parked.step not in parked_at
            parked_at.append(parked.step)
            state = parked.state
            left = tuple(s for s in left if s != parked.step)


def test_the_reference_model_says_it_can_park(model: LumaTiny) -> None:
    assert can_park(model) and not can_park(object())


@pytest.mark.parametrize("steps", [(1,), (3,), (5,), (6,), (1, 2, 4)])
def test_resumed_video_equals_the_unparked_one_bit_for_bit(model: LumaTiny, steps) -> None:
    expected = model.generate(ASK, lambda step, total: True)
    got = run_parking(model, ASK, *steps)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_parking_stops_at_the_step_and_resume_runs_only_the_rest(model: LumaTiny) -> None:
    on_step = park_at(2)
    with pytest.raises(GenerationParked) as raised:
        model.generate(ASK, on_step)
    assert on_step.seen == [1, 2]  # type: ignore[attr-defined]
    parked = pickle.loads(pickle.dumps(raised.value))  # crosses Ray processes
    assert (parked.step, parked.total) == (2, 6) and parked.state == raised.value.state
    assert str(parked) == "generation parked after step 2 of 6"
    again: list[int] = []
    model.generate(ASK, lambda step, total: again.append(step) or True, resume=parked.state)
    assert again == [3, 4, 5, 6]


def test_cancel_still_wins_over_nothing_and_a_resumed_job_cancels(model: LumaTiny) -> None:
    with pytest.raises(GenerationParked) as raised:
        model.generate(ASK, park_at(1))
    with pytest.raises(GenerationCancelled) as stopped:
        model.generate(ASK, lambda step, total: step < 3, resume=raised.value.state)
    assert (stopped.value.step, stopped.value.total) == (3, 6)


def test_a_state_of_another_request_or_damaged_bytes_is_refused(model: LumaTiny) -> None:
    with pytest.raises(GenerationParked) as raised:
        model.generate(ASK, park_at(2))
    state = raised.value.state
    for other in (replace(ASK, seed=22), replace(ASK, prompt="a crane"), replace(ASK, steps=7)):
        with pytest.raises(ParkedStateInvalid, match="another request"):
            model.generate(other, park_at(), resume=state)
    for junk in (b"", b"\x00" * 16, state[:40], b"not safetensors at all"):
        with pytest.raises(ParkedStateInvalid):
            model.generate(ASK, park_at(), resume=junk)


def _conditioning(seed: int = 0, strength: float = 0.5) -> Conditioning:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (ASK.height, ASK.width, 3), dtype=np.uint8)
    video = rng.integers(0, 256, (ASK.frames, ASK.height, ASK.width, 3), dtype=np.uint8)
    return Conditioning(first_frame=frame, last_frame=frame[::-1].copy(), source_video=video,
                        strength=strength)  # fmt: skip


@pytest.mark.parametrize("steps", [(3,), (4, 5)])
def test_a_conditioned_run_parks_and_resumes_bit_for_bit(model: LumaTiny, steps) -> None:
    given = _conditioning()
    expected = model.generate(ASK, lambda step, total: True, conditioning=given)
    assert not np.array_equal(expected, model.generate(ASK, lambda step, total: True))
    state, left = None, steps
    while True:
        try:
            got = model.generate(ASK, park_at(*left), resume=state, conditioning=given)
            break
        except GenerationParked as parked:
            state, left = parked.state, tuple(s for s in left if s != parked.step)
    assert np.array_equal(got, expected)


def test_a_state_resumed_with_other_conditioning_is_refused(model: LumaTiny) -> None:
    given = _conditioning()
    with pytest.raises(GenerationParked) as raised:
        model.generate(ASK, park_at(4), conditioning=given)
    state = raised.value.state
    for other in (None, _conditioning(seed=1), replace(given, strength=0.6),
                  replace(given, extended=True)):  # fmt: skip
        with pytest.raises(ParkedStateInvalid, match="another request"):
            model.generate(ASK, park_at(), resume=state, conditioning=other)


# --- gangs ---------------------------------------------------------------------------------

GANG_ASK = replace(ASK, frames=5)


def _gang_rank(rank: int, world: int, ckpt: str, init: str, out: str, mode: str) -> None:
    """One rank: ``park`` parks at step 2 and saves the state (from every rank); ``runs``
    runs unparked, then resumes the saved state."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = LumaTiny()
        model.load(Path(ckpt), torch.device("cpu"), dist.group.WORLD)
        if mode == "park":
            try:
                model.generate(GANG_ASK, park_at(2))
            except GenerationParked as parked:
                Path(f"{out}.state.{rank}").write_bytes(parked.state)
            return
        np.save(f"{out}.plain.{rank}.npy", model.generate(GANG_ASK, lambda step, total: True))
        state = Path(f"{out}.state.0").read_bytes()
        video = model.generate(GANG_ASK, lambda step, total: True, resume=state)
        np.save(f"{out}.resume.{rank}.npy", video)
    finally:
        dist.destroy_process_group()


def _spawn(world: int, checkpoint: Path, tmp_path: Path, mode: str, tag: str) -> None:
    init = f"file://{tmp_path}/rendezvous-{tag}"
    mp.spawn(
        _gang_rank, args=(world, str(checkpoint), init, str(tmp_path / "v"), mode), nprocs=world
    )


def test_a_gang_parks_the_whole_latent_and_any_layout_resumes_it(
    model: LumaTiny, checkpoint: Path, tmp_path: Path
) -> None:
    _spawn(2, checkpoint, tmp_path, "park", "a")
    states = [(tmp_path / f"v.state.{r}").read_bytes() for r in range(2)]
    assert states[0] == states[1]  # every rank holds the whole latent after the gather
    _spawn(2, checkpoint, tmp_path, "runs", "b")
    plain, resumed = (np.load(tmp_path / f"v.{m}.0.npy") for m in ("plain", "resume"))
    assert np.array_equal(resumed, plain)  # the same layout: bit for bit
    # One process resumes the gang's state: equal to the one-process video within the
    # sequence-parallel tolerance (tests/unit/test_sequence_parallel.py).
    single = model.generate(GANG_ASK, lambda step, total: True, resume=states[0])
    expected = model.generate(GANG_ASK, lambda step, total: True)
    diff = np.abs(single.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001
