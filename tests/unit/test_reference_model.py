"""The model interface, the registry and the reference model luma-tiny, with real torch.

Generations use few frames and steps where the test does not need more, so the file runs in
seconds on two CPU cores.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from luma_ray.errors import ConfigError, InvalidRequest, NotFound
from luma_ray.models import (
    MODELS,
    GenerationCancelled,
    GenerationRequest,
    VideoModel,
    get_model_class,
    import_entrypoint,
    validate_request,
)
from luma_ray.models.reference import LIMITS, LumaTiny, local_token_slice, make_checkpoint
from luma_ray.models.reference.network import LumaTinyNet, NetworkConfig, init_weights
from luma_ray.models.reference.text import NULL_TOKEN, tokenize

SMALL = GenerationRequest(prompt="a red fox running through snow", frames=4, steps=2)


def _always(step: int, total: int) -> bool:
    return True


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run this module's torch on one thread, then restore the setting.

    On a shared two-core machine a second OpenMP thread that has to wait for a busy core makes
    every small op many times slower; one thread keeps the file fast and its timing stable.
    """
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


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_parameters(model: LumaTiny) -> None:
    fresh = LumaTinyNet(NetworkConfig())
    init_weights(fresh, seed=0)
    loaded = model.network.state_dict()
    assert loaded.keys() == fresh.state_dict().keys()
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(loaded[name], tensor), name


def test_checkpoint_files_are_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    first = make_checkpoint(tmp_path / "a")
    second = make_checkpoint(tmp_path / "b")
    other = make_checkpoint(tmp_path / "c", seed=1)
    weights = [(d / "model.safetensors").read_bytes() for d in (first, second, other)]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]
    assert json.loads((first / "config.json").read_text())["model"] == "luma-tiny"


def test_parameter_count_is_small(model: LumaTiny) -> None:
    count = sum(p.numel() for p in model.network.parameters())
    assert 1_000_000 <= count <= 5_000_000


def test_given_frame_flags_change_only_a_network_built_for_them(tmp_path: Path) -> None:
    x = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    flags = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    for given_frames in (0, 1):
        cfg = NetworkConfig(dim=32, depth=1, heads=2, given_frames=given_frames)
        net = LumaTinyNet(cfg).eval()
        init_weights(net, 0)
        if given_frames:
            with torch.no_grad():
                net.given.fill_(0.5)  # a trained offset; a fresh one is zero
        ids, mask = torch.tensor([[5, 6]]), torch.tensor([[True, True]])
        with torch.no_grad():
            text, pooled = net.text(ids, mask)
            plain = net(x, torch.tensor([0.5]), text, mask, pooled)
            flagged = net(x, torch.tensor([0.5]), text, mask, pooled, given=flags)
        assert torch.equal(plain, flagged) is (not given_frames)
    folder = make_checkpoint(tmp_path, network=NetworkConfig(dim=32, depth=1, given_frames=1))
    assert json.loads((folder / "config.json").read_text())["network"]["given_frames"] == 1
    loaded = LumaTiny()
    loaded.load(folder, torch.device("cpu"))
    assert loaded.network.cfg.given_frames == 1


def test_frame_channels_place_a_frame_by_its_time_in_the_clip() -> None:
    net = LumaTinyNet(NetworkConfig(dim=64, frame_channels=16))
    eight, fifteen = net._positions(0, 8, 8, 4, 4), net._positions(0, 15, 15, 4, 4)
    assert torch.allclose(fifteen[::2], eight)  # 15 frames span the same time as 8
    assert torch.equal(net._positions(5, 4, 15, 4, 4), fifteen[5:9])  # a rank's frames
    assert torch.equal(eight[0, :, :48], eight[7, :, :48])  # patch channels do not see time
    assert not torch.equal(eight[0, :, 48:], eight[7, :, 48:])
    legacy = LumaTinyNet(NetworkConfig(dim=64))._positions(0, 8, 8, 4, 4)
    assert not torch.equal(legacy[0], legacy[7]) and legacy.shape == eight.shape


def test_scaled_input_reads_nothing_from_pure_noise_but_keeps_given_frames() -> None:
    cfg = NetworkConfig(dim=32, depth=1, heads=2, given_frames=1, frame_channels=8,
                        scale_input=1, frame_condition=1)  # fmt: skip
    net = LumaTinyNet(cfg).eval()
    init_weights(net, 0)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 1, 4, 3, 16, 16, generator=gen)
    ids, mask = torch.tensor([[5, 6]]), torch.tensor([[True, True]])
    one, half = torch.tensor([1.0]), torch.tensor([0.5])
    flags = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        text, pooled = net.text(ids, mask)
        assert torch.equal(net(a, one, text, mask, pooled), net(b, one, text, mask, pooled))
        assert not torch.equal(net(a, half, text, mask, pooled), net(b, half, text, mask, pooled))
        given_a = net(a, one, text, mask, pooled, given=flags)
        given_b = net(b, one, text, mask, pooled, given=flags)
        assert not torch.equal(given_a, given_b)  # the given first frame is read at t = 1
        b_first = torch.cat([a[:, :1], b[:, 1:]], dim=1)
        assert torch.equal(given_a, net(b_first, one, text, mask, pooled, given=flags))


def test_load_refuses_a_folder_without_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.json is missing"):
        LumaTiny().load(tmp_path, torch.device("cpu"))


def test_load_refuses_another_models_config(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model": "other"}))
    with pytest.raises(ConfigError, match="not a luma-tiny checkpoint"):
        LumaTiny().load(folder, torch.device("cpu"))


def test_load_refuses_weights_that_do_not_match_the_config(tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["network"]["dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="does not match"):
        LumaTiny().load(folder, torch.device("cpu"))


def test_generate_before_load_says_to_load() -> None:
    with pytest.raises(RuntimeError, match="call load"):
        LumaTiny().generate(SMALL, _always)


# --- generation ----------------------------------------------------------------------------


def test_output_is_uint8_rgb_frames_of_the_requested_shape(model: LumaTiny) -> None:
    video = model.generate(replace(SMALL, frames=3, height=32, width=48), _always)
    assert video.shape == (3, 32, 48, 3)
    assert video.dtype == np.uint8
    assert video.min() < 64 and video.max() > 192  # uses the range, not a constant image


def test_same_request_gives_identical_frames(model: LumaTiny, checkpoint: Path) -> None:
    other = LumaTiny()
    other.load(checkpoint, torch.device("cpu"))
    first = model.generate(SMALL, _always)
    assert np.array_equal(first, model.generate(SMALL, _always))
    assert np.array_equal(first, other.generate(SMALL, _always))


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"prompt": "a city at night with neon lights"}, {"negative_prompt": "blurry"}],
    ids=["seed", "prompt", "negative_prompt"],
)
def test_seed_prompt_and_negative_prompt_change_the_video(
    model: LumaTiny, change: dict[str, object]
) -> None:
    base = model.generate(SMALL, _always).astype(np.int16)
    changed = model.generate(replace(SMALL, **change), _always).astype(np.int16)  # type: ignore[arg-type]
    assert np.abs(base - changed).mean() > 5.0  # grey levels out of 255: visibly different


def test_frames_change_over_time(model: LumaTiny) -> None:
    video = model.generate(SMALL, _always).astype(np.int16)
    assert np.abs(np.diff(video, axis=0)).mean() > 2.0


def test_callback_sees_every_step(model: LumaTiny) -> None:
    calls: list[tuple[int, int]] = []

    def record(step: int, total: int) -> bool:
        calls.append((step, total))
        return True

    model.generate(replace(SMALL, frames=2, steps=3), record)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_a_callback_returning_none_does_not_cancel(model: LumaTiny) -> None:
    calls: list[int] = []

    def log_only(step: int, total: int) -> None:
        calls.append(step)

    model.generate(replace(SMALL, frames=1, steps=2), log_only)  # type: ignore[arg-type]
    assert calls == [1, 2]


def test_cancellation_stops_within_one_step(model: LumaTiny) -> None:
    calls: list[int] = []

    def stop_at_two(step: int, total: int) -> bool:
        calls.append(step)
        return step < 2

    with pytest.raises(GenerationCancelled) as raised:
        model.generate(replace(SMALL, frames=2, steps=8), stop_at_two)
    assert calls == [1, 2]
    assert (raised.value.step, raised.value.total) == (2, 8)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.step, copy.total, str(copy)) == (2, 8, "generation cancelled after step 2 of 8")


def test_generate_refuses_a_request_outside_the_limits(model: LumaTiny) -> None:
    with pytest.raises(InvalidRequest, match="frames"):
        model.generate(replace(SMALL, frames=LIMITS.max_frames + 1), _always)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"prompt": "x" * 2001}, "shorten it to at most 2000"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt has 2001 characters"),
        ({"frames": 0}, "frames is 0; it must be between 1 and 48"),
        ({"frames": 49}, "frames is 49"),
        ({"height": 60}, "height 60 is not a multiple of 8; use for example 64"),
        ({"width": 256}, "width is 256; it must be between 8 and 128"),
        ({"steps": 0}, "steps is 0"),
        ({"steps": 51}, "steps is 51; it must be between 1 and 50"),
        ({"fps": 0}, "fps is 0"),
        ({"seed": -1}, "seed is -1"),
    ],
)
def test_validate_request_says_what_to_fix(change: dict[str, object], expected: str) -> None:
    request = replace(GenerationRequest(prompt="a fox"), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=expected):
        validate_request(request, LIMITS)


def test_validate_request_lists_every_problem() -> None:
    request = GenerationRequest(prompt="", frames=0, steps=0)
    with pytest.raises(InvalidRequest) as raised:
        validate_request(request, LIMITS)
    assert all(word in str(raised.value) for word in ("prompt", "frames", "steps"))


def test_validate_request_accepts_the_defaults_and_the_largest_request() -> None:
    validate_request(GenerationRequest(prompt="a fox"), LIMITS)
    largest = GenerationRequest(
        prompt="x" * 2000, frames=48, height=128, width=128, steps=50, fps=60, seed=2**63 - 1
    )
    validate_request(largest, LIMITS)


# --- registry, interface, text, sequence parallel ------------------------------------------


def test_registry_finds_luma_tiny() -> None:
    assert get_model_class("luma-tiny") is LumaTiny
    assert set(MODELS) == {"luma-tiny"}
    assert isinstance(LumaTiny(), VideoModel)
    assert (LumaTiny.limits.default_fps, LumaTiny.limits.default_steps) == (8, 4)


def test_registry_names_the_known_models_for_an_unknown_name() -> None:
    with pytest.raises(NotFound, match="no model named 'sora'; known models: luma-tiny"):
        get_model_class("sora")


@pytest.mark.parametrize(
    "entrypoint", ["no_colon", "luma_ray.nope:Model", "luma_ray.models.registry:MODELS"]
)
def test_import_entrypoint_refuses_bad_entrypoints(entrypoint: str) -> None:
    with pytest.raises(NotFound, match="entrypoint"):
        import_entrypoint(entrypoint)


def test_interface_imports_no_torch_and_reference_keeps_thread_settings() -> None:
    code = (
        "import sys\n"
        "import luma_ray.models\n"
        "assert 'torch' not in sys.modules, 'luma_ray.models imported torch'\n"
        "import torch\n"
        "before = (torch.get_num_threads(), torch.get_num_interop_threads())\n"
        "import luma_ray.models.reference\n"
        "assert before == (torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tokenize_is_stable_and_gives_the_null_token_for_an_empty_prompt() -> None:
    assert tokenize("", 4096, 32) == [NULL_TOKEN]
    ids = tokenize("A red fox, a RED fox!", 4096, 32)
    assert ids[:3] == ids[3:] and len(ids) == 6 and all(0 < i < 4096 for i in ids)
    assert len(tokenize("word " * 100, 4096, 32)) == 32


@pytest.mark.parametrize(("frames", "world"), [(16, 1), (16, 2), (16, 3), (5, 4), (2, 4)])
def test_local_token_slices_cover_the_sequence_in_whole_frames(frames: int, world: int) -> None:
    patches = 64
    slices = [local_token_slice(rank, world, frames, patches) for rank in range(world)]
    owned = [i for s in slices for i in range(s.start, s.stop)]
    assert owned == list(range(frames * patches))  # disjoint, in order, nothing missing
    sizes = [(s.stop - s.start) // patches for s in slices]
    assert all((s.start % patches, s.stop % patches) == (0, 0) for s in slices)
    assert max(sizes) - min(sizes) <= 1


def test_local_token_slice_refuses_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        local_token_slice(2, 2, 16, 64)
