"""Sequence parallelism of the reference model: ranks of a real gloo group (processes on this
machine, no Ray) each compute their own frames and the gathered video equals the one-rank
video within the stated tolerance: at most 1 level of 255 on any value, on at most 0.1% of
values (summation order differs between the two layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from luma_ray.models.interface import GenerationRequest
from luma_ray.models.reference import LumaTiny, local_token_slice, make_checkpoint

MAX_LEVEL_DIFF = 1
MAX_SHARE_DIFFERENT = 0.001


def request(frames: int) -> GenerationRequest:
    return GenerationRequest("a red fox", frames=frames, height=32, width=48, steps=3, seed=3)


def _rank(rank: int, world: int, ckpt: str, init: str, out: str, frames: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = LumaTiny()
        model.load(Path(ckpt), torch.device("cpu"), dist.group.WORLD)
        seen: list[int] = []  # frames each forward pass embedded on this rank
        model.network.patch_embed.register_forward_hook(
            lambda module, args, output: seen.append(args[0].shape[1])
        )
        video = model.generate(request(frames), lambda step, total: True)
        np.save(f"{out}.{rank}.npy", video)
        np.save(f"{out}.{rank}.frames.npy", np.array(sorted(set(seen))))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "luma-tiny")


@pytest.mark.parametrize(("frames", "world"), [(7, 2), (4, 3)])
def test_gang_video_equals_one_rank(checkpoint: Path, tmp_path: Path, frames: int, world: int):
    torch.set_num_threads(1)
    single = LumaTiny()
    single.load(checkpoint, torch.device("cpu"))
    expected = single.generate(request(frames), lambda step, total: True)
    out = tmp_path / "video"
    init = f"file://{tmp_path}/rendezvous"
    mp.spawn(_rank, args=(world, str(checkpoint), init, str(out), frames), nprocs=world)
    for rank in range(world):  # every rank ends with the whole video
        # ...having computed only its own frames (7 on 2 ranks: 4 and 3; 4 on 3: 2, 1, 1).
        own = local_token_slice(rank, world, frames, 1)
        assert np.load(f"{out}.{rank}.frames.npy").tolist() == [own.stop - own.start]
        got = np.load(f"{out}.{rank}.npy")
        assert got.shape == expected.shape == (frames, 32, 48, 3)
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        assert diff.max() <= MAX_LEVEL_DIFF
        assert (diff > 0).mean() <= MAX_SHARE_DIFFERENT
