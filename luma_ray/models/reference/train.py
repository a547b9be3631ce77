"""Train ``luma-tiny`` on the prompt grammar: ``python -m luma_ray.models.reference.train``.

::

    python -m luma_ray.models.reference.train --out DIR [--steps N] [--seed S] [--threads T]
        [--batch B] [--lr LR] [--minutes M] [--eval-steps K] [--init DIR] [--shape-weight W]
        [--pure-noise-share P] [--restyle-share R]

Every batch is drawn afresh: scenes of the grammar (grammar.py) except the held-out ones
(``HELD_OUT``), at the model's default size (8 frames of 64x64), with a generator seeded with
``--seed``. Most are drawn in the scene's canonical layout (``render`` without a generator:
what a prompt alone should give, so each prompt names one video); ``FIRST_GIVEN_SHARE`` and
``LAST_GIVEN_SHARE`` of them are drawn at a random size and place with their first or last
frame given clean and flagged (image-to-video, extending a clip), and ``RESTYLE_SHARE`` at a
random place under another scene's prompt at low noise (modifying a video). The network
(network.py's ``LumaTinyNet``, ``TRAINED_NETWORK``) learns rectified flow with x0 prediction:
``x_t = (1 - t) * x0 + t * noise`` with ``t`` from a logit-normal shifted towards noise
(``T_SHIFT``; ``PURE_NOISE_SHARE`` of them from [0.95, 1] instead), loss the mean squared error
of the predicted x0 with the object's pixels weighted ``OBJECT_WEIGHT``, the pixels where the
shapes disagree ``SHAPE_WEIGHT`` and given frames not counted; one prompt in ten is replaced
by the empty prompt so classifier-free guidance has an
unconditional model. AdamW with a short warm-up and a cosine decay; the decay is driven by
whichever runs out first, ``--steps`` or ``--minutes`` (so a slow machine still ends on a
decayed rate). The loss is logged every 50 steps; ``DIR/model.safetensors`` and
``DIR/config.json`` (the format ``LumaTiny.load`` reads) are written every 200 steps and at the
end, then the held-out prompts are generated and checked (check.py) and the pass rate is logged.
``--init DIR`` starts from a checkpoint instead of random weights.

CPU only, deterministic for a given seed and thread count when ``--minutes`` does not cut it
short; ``--threads`` defaults to 1 (the machine is shared).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from luma_ray.models.interface import GenerationRequest
from luma_ray.models.reference.check import check
from luma_ray.models.reference.grammar import PALETTE, SHAPES, Scene, all_scenes, render
from luma_ray.models.reference.model import LIMITS, LumaTiny, save_checkpoint
from luma_ray.models.reference.network import LumaTinyNet, NetworkConfig, init_weights
from luma_ray.models.reference.text import token_batch

logger = logging.getLogger("luma_ray.train")

TRAINED_NETWORK = NetworkConfig(
    dim=64,
    depth=4,
    heads=4,
    patch=8,
    head_channels=8,
    given_frames=1,
    frame_channels=16,
    scale_input=1,
    frame_condition=1,
)
"""The shape of the shipped weights: about 0.9 M parameters, 512 tokens at 8x64x64, with the
given-frame flag, the frame's time in its own position channels and in a per-frame adaLN
condition, and noisy input scaled by its signal's share (network.py says why each)."""

T_SHIFT = 0.7
"""Training times are ``sigmoid(N(0, 1) + T_SHIFT)``: more of them at high noise, where the
layout is decided (the low-noise ones are easy)."""

PURE_NOISE_SHARE = 0.4
"""Share of training times drawn from [0.95, 1] instead. The sampler starts from pure noise
(t = 1), which the logit-normal almost never reaches, and there the prompt alone must give the
layout: the first step commits the video to whatever the prediction draws (a blob in the
middle, if the network has not learnt to read the motion from the prompt yet), and later steps
read the layout back from the latent. A network that never saw t = 1 reads the noise as if it
held the picture (each patch turns object or background on its own)."""

OBJECT_WEIGHT = 3.0
"""Loss weight of the object's pixels against the background's (1). The object covers 2-10 %
of a frame, so with a plain mean the network lowers its loss most by drawing the background
well, and an undertrained one draws no object at all; weighted, the object counts about as much
as the background."""

SHAPE_WEIGHT = 6.0
"""Loss weight (``--shape-weight``; 1 turns it off) of the pixels where the three shapes, drawn
at the clip's own place and size, disagree: the corners of the box outside a disc, beside a
triangle's slopes, 3-4 % of a frame. A shape's error lies almost all in them, and weighted like
the rest a network that draws a rounded square for every shape loses little by it: trained on
the object weight alone, ``luma-tiny`` drew squares for most circle prompts. Where a pixel is
both object and disputed, the larger weight counts."""

HELD_OUT_COUNT = 60
HELD_OUT_SEED = 2026


def held_out() -> list[Scene]:
    """The scenes never shown in training: 60 whole colour/shape/motion/background
    combinations, drawn once with a fixed seed (every attribute value still appears in
    training through the other 948 scenes)."""
    scenes = all_scenes()
    picks = np.random.default_rng(HELD_OUT_SEED).choice(len(scenes), HELD_OUT_COUNT, replace=False)
    return [scenes[i] for i in sorted(picks)]


HELD_OUT = held_out()


def training_scenes() -> list[Scene]:
    """Every scene of the grammar but the held-out ones."""
    hidden = set(HELD_OUT)
    return [s for s in all_scenes() if s not in hidden]


FIRST_GIVEN_SHARE = 0.2
"""Share of training videos shown with their first frame given (clean, flagged): drawn at a
random size and place, free to leave the frame, so the network learns to go on from an image
(image-to-video, extending a clip) rather than to draw the canonical layout."""

LAST_GIVEN_SHARE = 0.10
"""Share shown with their last frame given (a random layout wholly inside the frame)."""

RESTYLE_SHARE = 0.10
"""Share shown at a random layout under another scene's prompt, at low noise only (their times
scaled by ``RESTYLE_MAX_T``): a source video modified at a low strength (SDEdit, guide.py)
keeps what it shows even when the new prompt names other colours, instead of being repainted.
Without them every low-noise clip agreed with its prompt, and the network learnt to trust the
prompt over the picture at every noise level."""
RESTYLE_MAX_T = 0.4


class Batch(NamedTuple):
    """One training batch (see ``batch``)."""

    x: torch.Tensor
    prompts: list[str]
    weight: torch.Tensor
    given: torch.Tensor
    low_noise: torch.Tensor


def batch(
    scenes: list[Scene],
    size: int,
    frames: int,
    side: int,
    rng: np.random.Generator,
    shape_weight: float = SHAPE_WEIGHT,
    restyle_share: float = RESTYLE_SHARE,
) -> Batch:
    """``size`` rendered videos ``[B, F, 3, H, W]`` in ``[-1, 1]``, their prompts (the
    canonical one, which the tokenizer reduces to its slots like any wording; one in ten
    empty), per-pixel loss weights ``[B, F, 1, H, W]`` (``OBJECT_WEIGHT`` on the object,
    ``shape_weight`` where the shapes disagree, 0 on given frames), the given-frame flags
    ``[B, F]`` and which videos must be trained at low noise only ``[B]``.

    Most videos are in the canonical layout (``render`` without ``rng``: what a prompt alone
    should give); ``FIRST_GIVEN_SHARE`` and ``LAST_GIVEN_SHARE`` of them are drawn at random
    with their first or last frame given, ``RESTYLE_SHARE`` at random under another scene's
    prompt."""
    videos, prompts, weights = [], [], []
    given, low_noise = torch.zeros(size, frames), torch.zeros(size, dtype=torch.bool)
    for row, i in enumerate(rng.choice(len(scenes), size)):
        scene = scenes[int(i)]
        draw = rng.random()
        drawn: np.random.Generator | None = rng  # None: the canonical layout
        free = draw < FIRST_GIVEN_SHARE
        if free:
            given[row, 0] = 1.0
        elif draw < FIRST_GIVEN_SHARE + LAST_GIVEN_SHARE:
            given[row, -1] = 1.0
        elif draw < FIRST_GIVEN_SHARE + LAST_GIVEN_SHARE + restyle_share:
            low_noise[row] = True
        else:
            drawn = None
        # the generator before this clip's place and size are drawn, for _disputed
        place = None if drawn is None or shape_weight <= 1.0 else copy.deepcopy(rng)
        video = render(scene, frames, side, side, drawn, free=free)
        videos.append(video)
        pixels = np.where(_object(video, scene), OBJECT_WEIGHT, 1.0)
        if shape_weight > 1.0:
            disputed = _disputed(scene, frames, side, place, free)
            pixels = np.where(disputed, np.maximum(pixels, shape_weight), pixels)
        weights.append(pixels)
        if low_noise[row]:
            scene = scenes[int(rng.integers(len(scenes)))]
        prompts.append("" if rng.random() < 0.1 else scene.prompt())
    x = torch.from_numpy(np.stack(videos)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    weight = torch.from_numpy(np.stack(weights)).float()
    weight = weight * (1.0 - given)[:, :, None, None]
    return Batch(x, prompts, weight[:, :, None], given, low_noise)


def _object(video: np.ndarray, scene: Scene) -> np.ndarray:
    """The object's pixels ``[F, H, W]`` of a rendered ``video``."""
    mask: np.ndarray = (video != np.array(PALETTE[scene.background], np.uint8)).any(axis=-1)
    return mask


def _disputed(
    scene: Scene, frames: int, side: int, place: np.random.Generator | None, free: bool
) -> np.ndarray:
    """Pixels ``[F, H, W]`` inside some but not all of the three shapes drawn with
    ``scene``'s motion at the same place and size (``place``: a copy of the generator as it
    was before the clip's draws, or None for the canonical layout)."""
    inside = []
    for shape in SHAPES:
        drawn = None if place is None else copy.deepcopy(place)
        other = render(replace(scene, shape=shape), frames, side, side, drawn, free=free)
        inside.append(_object(other, scene))
    union, common = np.logical_or.reduce(inside), np.logical_and.reduce(inside)
    disputed: np.ndarray = union & ~common
    return disputed


def train(
    out: Path,
    steps: int,
    seed: int,
    batch_size: int = 8,
    minutes: float | None = None,
    lr: float = 2e-3,
    network: NetworkConfig = TRAINED_NETWORK,
    init: Path | None = None,
    shape_weight: float = SHAPE_WEIGHT,
    pure_noise_share: float = PURE_NOISE_SHARE,
    restyle_share: float = RESTYLE_SHARE,
) -> tuple[LumaTinyNet, float]:
    """Train and write checkpoints to ``out``; return the network and the last smoothed loss.
    ``init``: a checkpoint folder to start from (its network shape wins) instead of random
    weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    if init is not None:
        loaded = LumaTiny()
        loaded.load(init, torch.device("cpu"))
        net = loaded.network.requires_grad_(True)
        network = net.cfg
    else:
        net = LumaTinyNet(network)
        init_weights(net, seed)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    scenes = training_scenes()
    frames, side = LIMITS.default_frames, 64
    start, smooth, warm = time.monotonic(), float("nan"), 100
    for step in range(1, steps + 1):
        done = step / steps
        if minutes:
            done = max(done, (time.monotonic() - start) / (60.0 * minutes))
        rate = lr * min(1.0, step / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))
        for group in opt.param_groups:
            group["lr"] = rate
        x0, prompts, weight, given, low_noise = batch(
            scenes, batch_size, frames, side, rng, shape_weight, restyle_share
        )
        ids, mask = token_batch(prompts, network.vocab_size, network.max_text_tokens)
        t = torch.sigmoid(torch.randn(batch_size, generator=gen) + T_SHIFT).clamp(0.02, 1.0)
        near_one = torch.rand(batch_size, generator=gen) < pure_noise_share
        t = torch.where(near_one, 0.95 + 0.05 * torch.rand(batch_size, generator=gen), t)
        t = torch.where(low_noise, t * RESTYLE_MAX_T, t)
        noise = torch.randn(x0.shape, generator=gen)
        tt = t[:, None, None, None, None] * (1.0 - given)[:, :, None, None, None]
        text, pooled = net.text(ids, mask)
        pred = net((1 - tt) * x0 + tt * noise, t, text, mask, pooled, given=given)
        loss = ((pred - x0).pow(2) * weight).mean() / weight.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if math.isnan(smooth) else 0.98 * smooth + 0.02 * loss.item()
        if step % 50 == 0 or step == 1:
            elapsed = time.monotonic() - start
            logger.info("step %d loss %.4f lr %.2e %.0fs", step, smooth, rate, elapsed)
        if step % 200 == 0:
            save_checkpoint(net, out, about=_about(seed, step, smooth, start))
        if done >= 1.0:
            break
    net.eval()
    save_checkpoint(net, out, about=_about(seed, step, smooth, start))
    return net, smooth


def _about(seed: int, step: int, loss: float, start: float) -> dict[str, object]:
    minutes = round((time.monotonic() - start) / 60.0, 1)
    return {"training": {"seed": seed, "steps": step, "loss": round(loss, 5), "minutes": minutes}}


def evaluate(
    checkpoint: Path, scenes: list[Scene], steps: int | None = None, seed: int = 0
) -> tuple[float, list[tuple[str, tuple[str, ...]]]]:
    """Generate every scene's prompt from ``checkpoint`` at the default size and check it;
    return the pass rate and the failures (prompt, reasons)."""
    model = LumaTiny()
    model.load(checkpoint, torch.device("cpu"))
    failures = []
    for i, scene in enumerate(scenes):
        request = GenerationRequest(
            scene.prompt(),
            frames=LIMITS.default_frames,
            height=64,
            width=64,
            seed=seed + i,
            steps=steps or LIMITS.default_steps,
        )
        verdict = check(model.generate(request, lambda step, total: None), request.prompt)
        if not verdict.ok:
            failures.append((request.prompt, verdict.reasons))
    return 1.0 - len(failures) / len(scenes), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    parser.add_argument("--eval-steps", type=int, default=None, help="sampler steps to check")
    parser.add_argument("--init", type=Path, default=None, help="checkpoint to start from")
    parser.add_argument(
        "--shape-weight",
        type=float,
        default=SHAPE_WEIGHT,
        help=f"loss weight where the shapes disagree (default {SHAPE_WEIGHT}; 1 turns it off)",
    )
    parser.add_argument(
        "--pure-noise-share",
        type=float,
        default=PURE_NOISE_SHARE,
        help=f"share of times drawn from [0.95, 1] (default {PURE_NOISE_SHARE})",
    )
    parser.add_argument(
        "--restyle-share",
        type=float,
        default=RESTYLE_SHARE,
        help=f"share of clips under another scene's prompt at low noise (default {RESTYLE_SHARE})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    _, loss = train(
        args.out,
        args.steps,
        args.seed,
        args.batch,
        args.minutes,
        args.lr,
        init=args.init,
        shape_weight=args.shape_weight,
        pure_noise_share=args.pure_noise_share,
        restyle_share=args.restyle_share,
    )
    rate, failures = evaluate(args.out, HELD_OUT, args.eval_steps)
    for prompt, reasons in failures:
        logger.info("failed: %s: %s", prompt, "; ".join(reasons))
    logger.info("final loss %.4f; held-out pass rate %.1f%%", loss, 100 * rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
