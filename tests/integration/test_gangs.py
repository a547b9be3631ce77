"""Gangs: one replica of ``tiny-gang`` spans two rank processes in a gloo group. Its video
equals the one-rank ``luma-tiny`` video (same weights) within the sequence-parallel
tolerance, and losing a rank mid-job requeues the job onto a replacement gang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

from .conftest import wait_for
from .versions import GANG_MODEL, MIXED_MODEL

ASK: dict[str, Any] = {"frames": 4, "size": "48x32", "steps": 3, "seed": 11}


def rank_actors() -> list[str]:
    """Names of the live rank processes of tiny-gang, e.g. luma-rank/<worker>/v1/1/rank1."""
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"luma-rank/gang/{GANG_MODEL}-workers/")
    )


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_two_rank_gang_matches_one_rank(system, tmp_path: Path) -> None:
    client = system["client"]
    names = wait_for(lambda: len(rank_actors()) == 2 and rank_actors(), what="a 2-rank gang")
    assert [n.rsplit("/", 1)[1] for n in names] == ["rank0", "rank1"]
    # tiny-mixed serves the same reference weights as tiny-gang on one rank (versions.py).
    one = client.submit("a lighthouse at dusk", model=MIXED_MODEL, **ASK)
    gang = client.submit("a lighthouse at dusk", model=GANG_MODEL, **ASK)
    for job in (one, gang):
        assert client.wait(job, timeout=300).state == "succeeded"
    # The thumbnail is the middle frame, lossless (PNG): frame 2 of 4, computed by rank 1.
    thumbs = [decode(client.download(j, tmp_path / f"{j}.png", "thumbnail")) for j in (one, gang)]
    diff = np.abs(thumbs[0].astype(np.int16) - thumbs[1].astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001
    videos = [decode(client.download(j, tmp_path / f"{j}.mp4")) for j in (one, gang)]
    assert videos[0].shape == videos[1].shape == (4, 32, 48, 3)
    # H.264 is lossy, so a 1-level input difference may move a decoded pixel a little more.
    assert np.abs(videos[0].astype(np.int16) - videos[1].astype(np.int16)).mean() < 0.5


def test_killing_a_rank_requeues_the_job_and_replaces_the_gang(system) -> None:
    import ray

    client = system["client"]
    before = wait_for(lambda: len(rank_actors()) == 2 and rank_actors(), what="a 2-rank gang")
    job = client.submit("a long take", model=GANG_MODEL, frames=8, steps=40, seed=5)
    wait_for(lambda: client.get(job).progress.step >= 2, what="the job to make progress")
    victim = next(n for n in before if n.endswith("rank1"))
    ray.kill(ray.get_actor(victim, namespace=_namespace_of(victim)), no_restart=True)
    view = client.wait(job, timeout=300)
    assert view.state == "succeeded" and view.attempts == 2, view
    after = wait_for(
        lambda: (
            (names := rank_actors()) and len(names) == 2 and not set(names) & set(before) and names
        ),
        what="a replacement gang",
    )
    assert {n.rsplit("/", 1)[1] for n in after} == {"rank0", "rank1"}


def _namespace_of(name: str) -> str:
    import ray

    return next(
        a["namespace"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == name
    )
