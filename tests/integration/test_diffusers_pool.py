"""Diffusers pipelines served like any model: the session fixture scaffolds tiny Wan and LTX
pipelines, publishes them as ``tiny-wan@v1`` and ``tiny-ltx@v1`` and promotes them with the
``luma-ray models`` command line, and a one-replica pool of real workers serves each. For both
families a text-to-video job (through a Ray client) and an image-to-video job (through the
HTTP API, the first frame as a ``data:`` URL) succeed with the frames and size they asked
for; a frame count the family cannot make is refused at submit."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from luma_ray.errors import InvalidRequest

from .conftest import wait_for
from .test_http_api import make_key, wait_http
from .versions import DIFFUSERS_MODELS, diffusers_installed

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(not diffusers_installed(), reason="needs the diffusers extra"),
]

WRONG_FRAMES = {"tiny-wan": (10, r"4k\+1 frames; use 9 or 13"), "tiny-ltx": (10, r"8k\+1 frames")}


def _png_data_url(height: int, width: int) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), (40, 180, 90), dtype=np.uint8)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize("model", sorted(DIFFUSERS_MODELS))
def test_a_scaffolded_pipeline_serves_text_and_image_to_video(
    system, tmp_path: Path, model: str
) -> None:
    from luma_ray.models.encode import probe_mp4

    client = system["client"]
    job_id = client.submit("a paper boat on a pond", model=model, frames=9, size="32x32", steps=2)
    view = client.wait(job_id, timeout=600)
    assert view.state == "succeeded", view
    assert view.model_version == "v1"
    probe = probe_mp4(client.download(job_id, tmp_path / "t2v.mp4"))
    assert (probe.frames, probe.width, probe.height) == (9, 32, 32)

    wait_http(system)
    headers = {"Authorization": f"Bearer {make_key(system, 'diffusers-user', 'api')}"}
    body = {
        "prompt": "a paper boat on a pond",
        "model": model,
        "frames": 9,
        "size": "32x32",
        "steps": 2,
        "first_frame": _png_data_url(48, 48),
    }
    made = httpx.post(
        f"{system['base_url']}/v1/generations", json=body, headers=headers, timeout=60
    )
    assert made.status_code == 201, made.text
    gen_id = made.json()["id"]

    def finished() -> dict[str, object] | None:
        got = httpx.get(f"{system['base_url']}/v1/generations/{gen_id}", headers=headers)
        state = got.json()["state"]
        assert state not in ("failed", "cancelled"), got.text
        return got.json() if state == "succeeded" else None

    wait_for(finished, timeout_s=600, what=f"the {model} image-to-video job")
    video = httpx.get(
        f"{system['base_url']}/v1/generations/{gen_id}/content", headers=headers, timeout=60
    )
    (tmp_path / "i2v.mp4").write_bytes(video.content)
    probe = probe_mp4(tmp_path / "i2v.mp4")
    assert (probe.frames, probe.width, probe.height) == (9, 32, 32)

    frames, message = WRONG_FRAMES[model]
    with pytest.raises(InvalidRequest, match=message):
        client.submit("too many", model=model, frames=frames, size="32x32")
