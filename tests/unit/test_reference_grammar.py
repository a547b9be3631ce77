"""The prompt grammar of luma-tiny@v2, its procedural videos, and the checker/captioner.

Every scene of the grammar is rendered; ``check`` must accept its own prompt and reject a wrong
colour, shape, motion and background, and ``caption`` must give the scene back.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from luma_ray.models.reference.check import caption, check, measure
from luma_ray.models.reference.grammar import (
    COLOURS,
    MOTIONS,
    SHAPES,
    Scene,
    all_scenes,
    parse,
    render,
)
from luma_ray.models.reference.text import tokenize

SCENES = all_scenes()


@pytest.mark.parametrize(
    ("prompt", "scene"),
    [
        ("a red circle moving right on a blue background", Scene("red", "circle", "right", "blue")),
        ("A Red circle, on a BLUE background.", Scene("red", "circle", "still", "blue")),
        ("a red circle growing on a green background", Scene("red", "circle", "growing", "green")),
        ("the black square moving up", Scene("black", "square", "up", "white")),
        (
            "yellow triangle going downwards against cyan",
            Scene("yellow", "triangle", "down", "cyan"),
        ),
        ("a magenta disc, not moving, on white", Scene("magenta", "circle", "still", "white")),
    ],
)
def test_parse_reads_the_grammar_whatever_the_case_punctuation_and_articles(
    prompt: str, scene: Scene
) -> None:
    assert parse(prompt) == scene
    assert parse(scene.prompt()) == scene


@pytest.mark.parametrize(
    "prompt",
    [
        "a red fox running through snow",
        "a circle moving right",  # no colour
        "a red circle and a blue square",  # two shapes
        "a red circle moving left and up on blue",  # two motions
        "a red circle on a red background",  # object and background alike
        "",
    ],
)
def test_parse_gives_none_outside_the_grammar(prompt: str) -> None:
    assert parse(prompt) is None


def test_the_grammar_has_every_combination_and_distinct_hashed_tokens() -> None:
    assert len(SCENES) == len(COLOURS) * len(SHAPES) * len(MOTIONS) * (len(COLOURS) - 1)
    words = {w for s in SCENES for w in s.prompt().split()}
    ids = {w: tokenize(w, 4096, 1)[0] for w in words}
    assert len(set(ids.values())) == len(words), "two grammar words share a hashed token id"


def test_render_is_seeded_and_keeps_the_object_inside_the_frame() -> None:
    scene = Scene("red", "square", "right", "blue")
    a = render(scene, 8, 64, 64, np.random.default_rng(5))
    b = render(scene, 8, 64, 64, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == (8, 64, 64, 3)
    assert np.array_equal(a, b)
    border = np.concatenate([a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1]], axis=1)
    assert (border == np.array([40, 60, 230], dtype=np.uint8)).all()


def test_the_canonical_layout_is_fixed_centred_and_passes_the_checker() -> None:
    for scene in SCENES[::3]:
        video = render(scene, 8, 64, 64)
        assert np.array_equal(video, render(scene, 8, 64, 64)), scene
        verdict = check(video, scene.prompt())
        assert verdict.ok, (scene, verdict.reasons)
        # a triangle's centroid sits lower than its box's centre, up to about 3 px here
        if scene.motion in {"still", "growing"}:
            for x, y in verdict.measured.centroids:
                assert abs(x - 32) <= 1.5 and abs(y - 32) <= 3.5, (scene, x, y)
        else:  # the path is centred: its midpoint is the frame's centre
            (x0, y0), (x1, y1) = verdict.measured.centroids[0], verdict.measured.centroids[-1]
            assert abs((x0 + x1) / 2 - 32) <= 1.5 and abs((y0 + y1) / 2 - 32) <= 3.5, scene


def test_a_free_layout_starts_inside_the_frame_and_may_leave_it() -> None:
    rng = np.random.default_rng(9)
    blue = np.array([40, 60, 230], dtype=np.uint8)
    left_the_frame = 0
    for _ in range(60):
        video = render(Scene("red", "circle", "right", "blue"), 8, 64, 64, rng, free=True)
        first = video[0]
        edges = np.concatenate([first[0], first[-1], first[:, 0], first[:, -1]])
        assert (edges == blue).all()  # wholly inside at the start
        last = video[-1]
        left_the_frame += int(not (np.concatenate([last[:, -1], last[0], last[-1]]) == blue).all())
    assert left_the_frame > 0  # some paths run off the right edge, as an extension's may


def _wrong(scene: Scene, i: int) -> list[str]:
    colour = [c for c in COLOURS if c not in {scene.colour, scene.background}][i % 6]
    shape = [s for s in SHAPES if s != scene.shape][i % 2]
    motion = [m for m in MOTIONS if m != scene.motion][i % 5]
    background = [c for c in COLOURS if c not in {scene.colour, scene.background}][(i + 1) % 6]
    return [
        Scene(colour, scene.shape, scene.motion, scene.background).prompt(),
        Scene(scene.colour, shape, scene.motion, scene.background).prompt(),
        Scene(scene.colour, scene.shape, motion, scene.background).prompt(),
        Scene(scene.colour, scene.shape, scene.motion, background).prompt(),
    ]


def test_check_accepts_every_scene_and_rejects_wrong_prompts_and_caption_recovers_it() -> None:
    rng = np.random.default_rng(8)
    for i, scene in enumerate(SCENES):
        frames = 16 if i % 3 == 0 else 8  # both lengths; all 8 would take twice as long
        video = render(scene, frames, 64, 64, rng)
        verdict = check(video, scene.prompt())
        assert verdict.ok, (scene, verdict.reasons)
        assert parse(caption(video)) == scene
        if i % 4 == 0:  # every wrong attribute, on a quarter of the scenes (time)
            for wrong in _wrong(scene, i):
                assert not check(video, wrong).ok, (scene, wrong)


def test_check_says_why_and_rejects_prompts_outside_the_grammar() -> None:
    video = render(Scene("green", "square", "left", "white"), 16, 64, 64, np.random.default_rng(1))
    verdict = check(video, "a red square moving left on a white background")
    assert not verdict.ok and verdict.reasons == ("object is green, not red",)
    assert verdict.measured.displacement[0] < -15
    outside = check(video, "a green fox")
    assert not outside.ok and "outside the grammar" in outside.reasons[0]


def test_an_empty_or_noisy_video_fails_and_is_captioned_empty() -> None:
    blank = np.zeros((8, 64, 64, 3), dtype=np.uint8)
    assert caption(blank) == "an empty black background"
    assert not check(blank, "a red circle on a black background").ok
    noise = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    assert not check(noise, "a red circle on a black background").ok
    with pytest.raises(ValueError, match=r"\[F, H, W, 3\]"):
        measure(np.zeros((64, 64, 3), dtype=np.uint8))


def test_check_and_caption_are_fast() -> None:
    video = render(Scene("red", "triangle", "up", "black"), 16, 64, 64, np.random.default_rng(2))
    check(video, "a red triangle moving up on black")
    start = time.perf_counter()
    for _ in range(10):
        check(video, "a red triangle moving up on black")
        caption(video)
    assert (time.perf_counter() - start) / 20 < 0.05


def test_grammar_prompts_tokenize_to_their_slots_whatever_the_wording() -> None:
    canonical = tokenize("a red circle moving right on a blue background", 4096, 32)
    assert canonical == tokenize("A red circle, going right, on blue", 4096, 32)
    assert canonical == [tokenize(w, 4096, 1)[0] for w in ("red", "circle", "right", "blue")]
    assert tokenize("a blue circle moving right on a red background", 4096, 32) != canonical
    assert len(tokenize("a red fox in the snow", 4096, 32)) == 6  # other prompts: their words
