"""Preemption at step boundaries on the live system: a long light and a long free job fill the
two workers of ``tiny-park`` (a model whose steps take seconds), api jobs arrive that would wait
past their SLO behind them, the scheduler has both parked at a step boundary (the free one
first: the rule parks the lowest tier first), the api jobs start within their SLO, and each
parked job resumes from its stored state on the other worker and makes the same video as an
unparked run with the same seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from luma_ray.scheduler.protocol import JobEvents

from .conftest import API_SLO_S, wait_for
from .versions import PARK_MODEL

pytestmark = pytest.mark.timeout(600)

ASK: dict[str, Any] = {"model": PARK_MODEL, "frames": 4, "size": "32x32", "fps": 8}


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def unparked(tmp_path: Path, prompt: str, seed: int, steps: int) -> np.ndarray:
    """The video of an unparked run: the reference weights (the published checkpoint's) in
    this process, on one torch thread like the workers."""
    import torch

    from luma_ray.models.interface import GenerationRequest
    from luma_ray.models.reference import LumaTiny, make_checkpoint

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = LumaTiny()
        model.load(make_checkpoint(tmp_path / "ckpt"), torch.device("cpu"))
        request = GenerationRequest(prompt, frames=4, height=32, width=32, steps=steps, seed=seed)
        return model.generate(request, lambda step, total: True)
    finally:
        torch.set_num_threads(before)


def leased_to(system: dict[str, Any], job_id: str) -> list[str]:
    """The workers that held the job, in order (from its journaled history)."""
    changes = system["scheduler"].call(JobEvents(job_id))
    return [c.reason.removeprefix("leased to ") for c in changes if c.state == "leased"]


def test_lower_tier_jobs_park_for_api_jobs_and_resume_on_the_other_worker(
    system: dict[str, Any], tmp_path: Path
) -> None:
    from luma_ray.models.encode import encode_mp4
    from luma_ray.storage import open_store

    client = system["client"]
    # A light and a free job fill both workers (the rule parks the lowest tier first).
    light = client.submit("a long slow pan", tier="light", steps=22, seed=31, **ASK)
    free = client.submit("another long take", tier="free", steps=20, seed=32, **ASK)
    parked = {light: (31, 22), free: (32, 20)}
    wait_for(
        lambda: all(
            (v := client.get(j)).state == "running" and v.progress.step >= 2 for j in parked
        ),
        timeout_s=300,
        what="both long jobs to run",
    )
    # Each would now wait past its 15 s SLO for a worker (over 16 steps of 1.5 s left on each).
    # The first api job parks the free job and takes its worker; the second, longer one parks
    # the light job. The short one ends first, and its worker resumes the light job (the
    # higher tier); the other worker then resumes the free one. The short one runs longer
    # than the SLO itself: the second job becomes its queue's head once the first starts, and
    # the rule parks only where no slot frees in time; were the first job to end within the
    # second's SLO, the light job would be parked late or not at all, once the first job's
    # pace is known.
    short_api = client.submit("now please", tier="api", steps=12, seed=33, **ASK)
    long_api = client.submit("me too", tier="api", steps=14, seed=34, **ASK)
    for job in (short_api, long_api):
        view = client.wait(job, timeout=120)
        assert view.state == "succeeded" and view.preemptions == 0, view
        # They started within their SLO.
        assert view.wait_s < API_SLO_S, (view, system["scheduler"].call(JobEvents(job)))
    for job in parked:
        view = client.wait(job, timeout=300)
        assert view.state == "succeeded" and view.preemptions == 1, view
        history = system["scheduler"].call(JobEvents(job))
        assert view.attempts == 1, (view, history)  # a park is not a failure
    first = {job: leased_to(system, job)[0] for job in (light, free, short_api, long_api)}
    assert first[short_api] == first[free] and first[long_api] == first[light], first
    for job in parked:  # each resumed on the other worker
        workers = leased_to(system, job)
        assert len(workers) == 2 and workers[0] != workers[1], (job, workers)
    # The same video as an unparked run: the lossless thumbnail exactly, and the MP4 decoded
    # equals the unparked frames encoded the same way and decoded.
    for job, (seed, steps) in parked.items():
        prompt = client.get(job).params.prompt
        expected = unparked(tmp_path / job, prompt, seed, steps)
        thumb = decode(client.download(job, tmp_path / f"{job}.png", "thumbnail"))[0]
        assert np.array_equal(thumb, expected[len(expected) // 2])
        video = decode(client.download(job, tmp_path / f"{job}.mp4"))
        reference = decode(encode_mp4(expected, 8, tmp_path / f"{job}-unparked.mp4"))
        assert np.array_equal(video, reference)
    # The parked states go with the finished jobs; only the results stay. A worker deletes the
    # state it resumed from once its commit returns, and a commit that also pulls the next job
    # returns after that pull's wait: soon after the job shows succeeded, not at once.
    store = open_store(system["runtime"].store)
    wait_for(
        lambda: all(store.list(f"results/{job}/parked/") == [] for job in parked),
        timeout_s=60,
        what="the parked states to be deleted",
    )
    for job in parked:
        assert store.list(f"results/{job}/")
