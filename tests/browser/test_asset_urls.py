"""A signed asset URL plays in a real headless Chromium: the app over an in-process scheduler
service serves, on 127.0.0.1 over real HTTP (uvicorn), a page whose ``<video>`` element's
``src`` is the generation's asset URL, with no API key anywhere in the page. The video is the
project's own encoding (``models/encode.py``: H.264 in MP4), so this proves browsers decode
what workers store and that the asset route answers what a media element asks (ranges)."""

from __future__ import annotations

import html
import json
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.responses import HTMLResponse

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.models.encode import encode_mp4, encode_thumbnail
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore
from luma_ray.storage.keys import result_key
from tests.project_scripts import load_script

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
FRAMES, FPS = 24, 8  # a 3 s video

PAGE = """<!doctype html><html><body>
<video id="v" muted preload="auto" src="{src}"></video>
<pre id="out">pending</pre>
<script>
const v = document.getElementById("v"), out = document.getElementById("out");
const report = (why) => {{ out.textContent = JSON.stringify({{
  why, readyState: v.readyState, duration: v.duration, width: v.videoWidth,
  height: v.videoHeight, error: v.error && v.error.code }}); }};
v.addEventListener("canplay", () => report("canplay"));
v.addEventListener("error", () => report("error"));
</script></body></html>"""


def _chromium():
    return load_script("scripts/chromium.py")


@pytest.fixture
def served(tmp_path: Path):
    """A succeeded generation with a real H.264 MP4; the page that plays its asset URL."""
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, time.time)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    job = svc.submit(SubmitRequest(prompt="a paper boat", tenant="acme", tier="api"))
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None and lease.job_id == job.id
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, size=(FRAMES, 64, 64, 3), dtype=np.uint8)
    mp4 = encode_mp4(frames, FPS, tmp_path / "video.mp4")
    png = encode_thumbnail(frames, tmp_path / "thumb.png")
    uris = {
        "video": store.put_file(result_key(job.id, lease.token, "video.mp4"), mp4),
        "thumbnail": store.put_file(result_key(job.id, lease.token, "thumb.png"), png),
    }
    svc.complete(job.id, lease.token, uris, "v1")
    key, _ = keys.create("acme", "api", now_s=0)
    settings = ApiSettings(asset_secret=b"a-test-secret-of-enough-bytes-32")
    app = create_app(InProcessScheduler(svc), keys, store, settings)
    sources: dict[str, str] = {}

    @app.get("/test-player", include_in_schema=False)
    async def player() -> HTMLResponse:
        return HTMLResponse(PAGE.format(src=html.escape(sources["video"], quote=True)))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)  # polling the server's start flag
    base = f"http://127.0.0.1:{port}"
    import httpx  # the view, as a user's code would read it, with the key

    view = httpx.get(f"{base}/v1/generations/{job.id}", headers={"Authorization": f"Bearer {key}"})
    assert view.status_code == 200, view.text
    sources.update(view.json()["assets"])
    yield base, key
    server.should_exit = True
    thread.join(timeout=10)


def test_an_asset_url_plays_in_a_video_element(served) -> None:
    base, key = served
    dom = _chromium().dump_dom(f"{base}/test-player", budget_ms=15000)
    assert key not in dom  # the page has no API key: the signed URL alone plays
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, dom[:2000]
    state = json.loads(html.unescape(found.group(1)))
    assert state["why"] == "canplay", state
    assert state["readyState"] >= 2 and state["error"] is None
    assert state["duration"] == pytest.approx(FRAMES / FPS, abs=0.2)
    assert (state["width"], state["height"]) == (64, 64)
