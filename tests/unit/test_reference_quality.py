"""The shipped luma-tiny@v2 weights follow prompts they never saw: the held-out grammar prompts
(whole colour/shape/motion/background combinations kept out of training, train.py HELD_OUT)
are generated at the model's defaults (8 frames of 64x64, 4 steps) and at least 90 % must pass
check(). The shipped weights pass 57 of the 60 (95 %); the three misses are squares drawn with
rounded corners (docs/models.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from luma_ray.models.interface import GenerationRequest
from luma_ray.models.reference import LIMITS, LumaTiny
from luma_ray.models.reference.check import check
from luma_ray.models.reference.publish import SHIPPED_WEIGHTS
from luma_ray.models.reference.train import HELD_OUT, training_scenes

PASS_RATE = 0.9


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


def test_the_held_out_prompts_are_at_least_fifty_and_never_trained_on() -> None:
    assert len(HELD_OUT) >= 50
    assert not set(HELD_OUT) & set(training_scenes())


def test_held_out_prompts_pass_the_checker(model: LumaTiny) -> None:
    failures = []
    for i, scene in enumerate(HELD_OUT):
        request = GenerationRequest(
            scene.prompt(),
            frames=LIMITS.default_frames,
            height=64,
            width=64,
            seed=i,
            steps=LIMITS.default_steps,
        )
        verdict = check(model.generate(request, lambda step, total: None), request.prompt)
        if not verdict.ok:
            failures.append(f"{request.prompt}: {'; '.join(verdict.reasons)}")
    rate = 1 - len(failures) / len(HELD_OUT)
    assert rate >= PASS_RATE, f"pass rate {rate:.0%}; failures:\n" + "\n".join(failures)


def test_the_quickstart_prompt_passes(model: LumaTiny) -> None:
    prompt = "a green square moving left on a white background"
    request = GenerationRequest(prompt, frames=LIMITS.default_frames, height=64, width=64)
    video = model.generate(request, lambda step, total: None)
    assert check(video, prompt).ok, check(video, prompt).reasons
