"""A diffusers pipeline served like any model: the session fixture scaffolds a tiny Wan
pipeline, publishes it as ``tiny-wan@v1`` and promotes it with the ``luma-ray models``
command line, and a one-replica pool of real workers serves it. A text-to-video job succeeds
with the frames and size it asked for; a frame count Wan cannot make is refused at submit."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.errors import InvalidRequest

from .versions import DIFFUSERS_MODEL, diffusers_installed

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(not diffusers_installed(), reason="needs the diffusers extra"),
]


def test_a_scaffolded_wan_version_serves_a_text_to_video_job(system, tmp_path: Path) -> None:
    from luma_ray.models.encode import probe_mp4

    client = system["client"]
    job_id = client.submit(
        "a paper boat on a pond", model=DIFFUSERS_MODEL, frames=9, size="32x32", steps=2, seed=4
    )
    view = client.wait(job_id, timeout=600)
    assert view.state == "succeeded", view
    assert view.model_version == "v1"
    probe = probe_mp4(client.download(job_id, tmp_path / "wan.mp4"))
    assert (probe.frames, probe.width, probe.height) == (9, 32, 32)

    with pytest.raises(InvalidRequest, match=r"4k\+1 frames; use 9 or 13"):
        client.submit("too many", model=DIFFUSERS_MODEL, frames=10, size="32x32")
