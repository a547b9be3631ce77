"""The official ``lumaai`` SDK against the live server (Ray Serve, the scheduler actor, a real
luma-tiny worker): text-to-video, image-to-video from a ``data:`` URL, extending a previous
generation, ``video.modify`` of a finished video, list and delete, a callback receiver that
gets the completed ``Generation``, and a bad request whose SDK error carries our message."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .conftest import wait_for
from .test_http_api import make_key, wait_http

lumaai = pytest.importorskip("lumaai")


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A callback receiver on 127.0.0.1 that keeps every POST's headers and body."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()


def _red_png_data_url() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((32, 56, 3), (220, 30, 30), dtype=np.uint8)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _completed(client: Any, generation_id: str) -> Any:
    def done() -> Any:
        g = client.generations.get(generation_id)
        assert g.state != "failed", g.failure_reason
        return g if g.state == "completed" else None

    return wait_for(done, timeout_s=240, what=f"generation {generation_id} to complete")


def test_the_lumaai_sdk_end_to_end(system, receiver, tmp_path: Path) -> None:
    from luma_ray.models.encode import probe_mp4
    from luma_ray.notify.signing import tenant_secret, verify

    wait_http(system)
    hook_url, hooks = receiver
    client = lumaai.LumaAI(
        base_url=system["base_url"] + "/dream-machine/v1",
        auth_token=make_key(system, "dream-user", "api"),
        max_retries=0,
    )
    first = client.generations.create(
        prompt="a red circle moving right on a blue background",
        model="ray-2",
        callback_url=hook_url,
    )
    assert first.state == "queued" and first.request.prompt.startswith("a red circle")
    done = _completed(client, first.id)
    video = httpx.get(done.assets.video, timeout=30)  # a signed URL: no key needed
    assert video.status_code == 200, video.text
    (tmp_path / "first.mp4").write_bytes(video.content)
    probe = probe_mp4(tmp_path / "first.mp4")
    # The session's table (conftest.py): 540p is 32 px on the short side, 1 s at 8 fps.
    assert (probe.frames, probe.width, probe.height) == (8, 56, 32)

    from_image = client.generations.create(
        prompt="a red circle moving right on a blue background",
        model="ray-2",
        keyframes={"frame0": {"type": "image", "url": _red_png_data_url()}},
    )
    extended = client.generations.create(
        prompt="a red circle moving right on a blue background",
        model="ray-2",
        keyframes={"frame0": {"type": "generation", "id": first.id}},
    )
    modified = client.generations.video.modify(
        generation_type="modify_video",
        media={"url": done.assets.video},
        mode="adhere_2",
        model="ray-2",
        prompt="a green circle moving right on a blue background",
    )
    for made in (from_image, extended, modified):
        assert _completed(client, made.id).assets.video

    listed = [g.id for g in client.generations.list(limit=10).generations]
    assert {first.id, from_image.id, extended.id, modified.id} <= set(listed)
    client.generations.delete(from_image.id)
    with pytest.raises(lumaai.NotFoundError):
        client.generations.get(from_image.id)

    with pytest.raises(lumaai.BadRequestError) as bad:
        client.generations.create(prompt="a fox", model="ray-2", duration="9s")
    assert "duration '9s' is not available for ray-2 here" in str(bad.value)

    def completed_callback() -> Any:
        for headers, body in hooks:
            sent = json.loads(body)
            if sent.get("state") == "completed":
                return headers, body
        return None

    headers, body = wait_for(completed_callback, what="the completed callback")
    generation = lumaai.types.Generation.model_validate(json.loads(body))
    assert generation.id == first.id and generation.assets.video
    master = Path(system["runtime"].webhook_secret_path).read_bytes().strip()
    assert verify(tenant_secret(master, "dream-user"), body, headers, now_s=time.time())
