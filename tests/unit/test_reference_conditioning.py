"""luma-tiny@v2 follows a request's images and videos (guide.py): a given first or last frame
is the output's, a source video at low strength keeps its colours, and an extension carries
the object on from where the previous video left it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from luma_ray.errors import InvalidRequest
from luma_ray.models.interface import Conditioning, GenerationRequest
from luma_ray.models.reference import LIMITS, LumaTiny
from luma_ray.models.reference.check import measure
from luma_ray.models.reference.grammar import Scene, render
from luma_ray.models.reference.publish import SHIPPED_WEIGHTS

FRAME_TOLERANCE = 2.0
"""The documented bound (docs/models.md) on the mean absolute pixel difference between a given
first/last frame and the output's."""


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> LumaTiny:
    loaded = LumaTiny()
    loaded.load(SHIPPED_WEIGHTS, torch.device("cpu"))
    return loaded


def _ask(prompt: str, seed: int = 0) -> GenerationRequest:
    return GenerationRequest(prompt, frames=LIMITS.default_frames, height=64, width=64, seed=seed)


def _go(step: int, total: int) -> None:
    return None


def test_the_model_lists_every_input_kind() -> None:
    assert LIMITS.inputs == ("first_frame", "last_frame", "source_video", "extend_video")


def test_a_given_first_and_last_frame_are_the_outputs(model: LumaTiny) -> None:
    scene = Scene("yellow", "circle", "right", "blue")
    source = render(scene, LIMITS.default_frames, 64, 64, np.random.default_rng(3))
    given = Conditioning(first_frame=source[0], last_frame=source[-1])
    video = model.generate(_ask(scene.prompt()), _go, conditioning=given)
    first = np.abs(video[0].astype(float) - source[0]).mean()
    last = np.abs(video[-1].astype(float) - source[-1]).mean()
    assert first <= FRAME_TOLERANCE and last <= FRAME_TOLERANCE
    plain = model.generate(_ask(scene.prompt()), _go)
    assert np.abs(plain[0].astype(float) - source[0]).mean() > FRAME_TOLERANCE


def test_a_source_video_at_low_strength_keeps_its_colours(model: LumaTiny) -> None:
    scene = Scene("red", "square", "still", "blue")
    source = render(scene, LIMITS.default_frames, 64, 64, np.random.default_rng(4))  # off-centre
    given = Conditioning(source_video=source, strength=0.3)
    video = model.generate(_ask(scene.prompt()), _go, conditioning=given)
    measured = measure(video)
    assert (measured.background, measured.colour) == ("blue", "red")
    plain = model.generate(_ask(scene.prompt()), _go)  # the canonical layout, centred
    kept = np.abs(video.astype(float) - source).mean()
    assert kept < 0.6 * np.abs(plain.astype(float) - source).mean()  # measured: 8 vs 27


MODIFIED = [
    (Scene("red", "square", "still", "blue"), "a yellow circle moving left on a white background"),
    (Scene("green", "triangle", "up", "black"), "a magenta square growing on a red background"),
    (
        Scene("white", "circle", "right", "magenta"),
        "a blue triangle moving down on a cyan background",
    ),
    (Scene("cyan", "square", "growing", "yellow"), "a black circle still on a green background"),
]


def test_a_source_video_at_low_strength_keeps_its_colours_under_another_prompt(
    model: LumaTiny,
) -> None:
    kept = 0
    for i, (scene, prompt) in enumerate(MODIFIED):
        source = render(scene, LIMITS.default_frames, 64, 64, np.random.default_rng(10 + i))
        low = Conditioning(source_video=source, strength=0.3)
        measured = measure(model.generate(_ask(prompt, seed=i), _go, conditioning=low))
        kept += (measured.background, measured.colour) == (scene.background, scene.colour)
        high = Conditioning(source_video=source, strength=1.0)  # ignores the source
        repainted = measure(model.generate(_ask(prompt, seed=i), _go, conditioning=high))
        assert (repainted.background, repainted.colour) != (scene.background, scene.colour)
    assert kept >= 3, f"{kept} of {len(MODIFIED)} modified videos kept their colours"


def test_an_extension_carries_the_object_on(model: LumaTiny) -> None:
    prompt = "a red circle moving right on a black background"
    before = model.generate(_ask(prompt, seed=5), _go)
    given = Conditioning(first_frame=before[-1], extended=True)
    after = model.generate(_ask(prompt, seed=6), _go, conditioning=given)
    end, start = measure(before).centroids[-1], measure(after).centroids[0]
    assert abs(end[0] - start[0]) <= 3 and abs(end[1] - start[1]) <= 3
    assert measure(after).displacement[0] > 3  # it goes on moving right


def test_conditioning_of_the_wrong_size_is_refused(model: LumaTiny) -> None:
    small = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(InvalidRequest, match=r"first_frame must be uint8 \[64, 64, 3\]"):
        model.generate(_ask("a red circle"), _go, conditioning=Conditioning(first_frame=small))
    video = np.zeros((LIMITS.default_frames, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(InvalidRequest, match="strength"):
        model.generate(
            _ask("a red circle"), _go, conditioning=Conditioning(source_video=video, strength=2.0)
        )
