"""The worker's result sink on every backend: real H.264 encoding, real uploads (S3 included),
and a download that decodes to the frames and size that were generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from luma_ray.jobs import JobId
from luma_ray.models.encode import probe_mp4
from luma_ray.models.interface import GenerationRequest
from luma_ray.scheduler.protocol import Assignment
from luma_ray.workers.adapters import StoreSink


def test_sink_uploads_a_decodable_video_per_lease(backend, tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (12, 48, 32, 3), dtype=np.uint8)
    request = GenerationRequest(prompt="p", frames=12, height=48, width=32, fps=8)
    first = Assignment(JobId("gen_sink"), 7, 0.0, "luma-tiny", request, 1, 0.0)
    late = Assignment(JobId("gen_sink"), 9, 0.0, "luma-tiny", request, 2, 0.0)
    sink = StoreSink(backend.store)
    uris = sink.store(first, frames)
    other = sink.store(late, frames)
    # Each lease writes under its own token: a late worker cannot overwrite a committed result.
    assert uris["video"] != other["video"]
    assert uris["video"] == backend.store.uri_for("results/gen_sink/7/video.mp4")
    local = backend.store.get_file("results/gen_sink/7/video.mp4", tmp_path / "v.mp4")
    probe = probe_mp4(local)
    assert (probe.frames, probe.width, probe.height) == (12, 32, 48)
    thumb = backend.store.get_bytes("results/gen_sink/7/thumbnail.png")
    assert thumb[:4] == b"\x89PNG"


def test_discard_removes_one_lease_s_files_and_no_other(backend) -> None:
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    request = GenerationRequest(prompt="p", frames=2, height=16, width=16, fps=8)
    refused = Assignment(JobId("gen_gone"), 3, 0.0, "luma-tiny", request, 1, 0.0)
    kept = Assignment(JobId("gen_gone"), 4, 0.0, "luma-tiny", request, 2, 0.0)
    sink = StoreSink(backend.store)
    sink.store(refused, frames)
    sink.store(kept, frames)
    sink.discard(refused)
    assert backend.store.list("results/gen_gone/3/") == []
    assert sorted(backend.store.list("results/gen_gone/4/")) == [
        "results/gen_gone/4/thumbnail.png",
        "results/gen_gone/4/video.mp4",
    ]
