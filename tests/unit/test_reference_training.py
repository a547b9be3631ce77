"""What luma-tiny@v2 is trained on (train.py): canonical videos for prompts alone, and random
layouts with a given first or last frame, whose frames carry no loss."""

from __future__ import annotations

import numpy as np
import torch

from luma_ray.models.reference import train
from luma_ray.models.reference.grammar import render


def test_a_batch_mixes_canonical_videos_with_given_frame_ones() -> None:
    scenes = train.training_scenes()
    rng = np.random.default_rng(0)
    x, prompts, weight, given = train.batch(scenes, 400, 8, 32, rng)
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
        if prompt and not given[row].any():
            video = render(by_prompt[prompt], 8, 32, 32)
            expected = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            assert torch.equal(x[row], expected)
            canonical += 1
    assert canonical > 200
    assert 0.05 < sum(not p for p in prompts) / 400 < 0.16  # dropped for guidance


def test_no_held_out_scene_is_trained_on() -> None:
    assert not set(train.HELD_OUT) & set(train.training_scenes())
    assert len(train.training_scenes()) + len(train.HELD_OUT) == 1008
