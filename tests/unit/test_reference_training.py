"""What luma-tiny@v2 is trained on (train.py): canonical videos for prompts alone, and random
layouts with a given first or last frame, whose frames carry no loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from luma_ray.models.reference import train
from luma_ray.models.reference.grammar import PALETTE, Scene, render


def test_a_batch_mixes_canonical_videos_with_given_frame_ones() -> None:
    scenes = train.training_scenes()
    rng = np.random.default_rng(0)
    x, prompts, weight, given, low_noise = train.batch(scenes, 400, 8, 32, rng)
    assert x.shape == (400, 8, 3, 32, 32) and weight.shape == (400, 8, 1, 32, 32)
    assert given.shape == (400, 8) and len(prompts) == 400
    first, last = given[:, 0] == 1, given[:, -1] == 1
    assert not (first & last).any() and given[:, 1:-1].sum() == 0
    assert 0.15 < first.float().mean() < 0.35 and 0.04 < last.float().mean() < 0.18
    assert (weight[first, 0] == 0).all() and (weight[last, -1] == 0).all()
    assert (weight[~first, 0] >= 1).all()  # every other frame is learnt from
    by_prompt = {s.prompt(): s for s in scenes}
    canonical = 0
    for row, prompt in enumerate(prompts):
        if prompt and not given[row].any() and not low_noise[row]:
            assert torch.equal(x[row], _canonical(by_prompt[prompt]))
            canonical += 1
    assert canonical > 200
    assert 0.05 < sum(not p for p in prompts) / 400 < 0.16  # dropped for guidance
    # some clips show another scene than their prompt names, trained at low noise only
    assert not (low_noise & given.any(dim=1)).any() and 0.05 < low_noise.float().mean() < 0.17
    shown = [row for row in range(400) if low_noise[row] and prompts[row]]
    assert sum(not torch.equal(x[row], _canonical(by_prompt[prompts[row]])) for row in shown) > 20


def test_the_pixels_where_shapes_disagree_weigh_the_most() -> None:
    scenes = train.training_scenes()
    rng = np.random.default_rng(1)
    _, prompts, weight, given, low_noise = train.batch(scenes, 60, 8, 64, rng)
    by_prompt = {s.prompt(): s for s in scenes}
    checked = 0
    for row, prompt in enumerate(prompts):
        if not prompt or given[row].any() or low_noise[row] or by_prompt[prompt].shape != "circle":
            continue
        scene = by_prompt[prompt]
        background = np.array(PALETTE[scene.background], np.uint8)
        disc = (render(scene, 8, 64, 64) != background).any(-1)
        box = (render(replace(scene, shape="square"), 8, 64, 64) != background).any(-1)
        corners = torch.from_numpy(box & ~disc)
        assert corners.any()
        assert (weight[row, :, 0][corners] == train.SHAPE_WEIGHT).all()  # outside the disc
        outside = torch.from_numpy(~box)
        assert (weight[row, :, 0][outside] == 1.0).all()
        checked += 1
    assert checked >= 3
    # given frames still carry no loss, and the weight follows the clip's own random place
    free = given[:, 0] == 1
    assert (weight[free, 0] == 0).all() and (weight[free, 1:] == train.SHAPE_WEIGHT).any()
    off = train.batch(scenes, 60, 8, 64, np.random.default_rng(1), shape_weight=1.0).weight
    assert off.max() == train.OBJECT_WEIGHT


def _canonical(scene: Scene) -> torch.Tensor:
    video = render(scene, 8, 32, 32)
    return torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def test_no_held_out_scene_is_trained_on() -> None:
    assert not set(train.HELD_OUT) & set(train.training_scenes())
    assert len(train.training_scenes()) + len(train.HELD_OUT) == 1008
