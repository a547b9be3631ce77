"""The real HTTP app over an in-process scheduler (no Ray), for the compatibility-API tests:
a tenant's SDK client talks to it through httpx's ASGI transport, and :func:`run_next` plays a
model worker that leases the next job, stores a real MP4 and completes it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.models.encode import encode_mp4
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Complete, InProcessScheduler, Pull
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

INPUTS = ("first_frame", "last_frame", "source_video", "extend_video")
LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8, inputs=INPUTS)}


@dataclass
class ServedApp:
    svc: SchedulerService
    store: LocalBlobStore
    http: httpx.AsyncClient
    keys: dict[str, str]
    """API key per tenant: ``alice`` and ``bob``, both of tier api."""
    tmp: Path


def served_app(tmp_path: Path, asset_secret: bytes | None = None) -> ServedApp:
    ticks = iter(range(10**6))
    clock = lambda: 1e9 + next(ticks)  # noqa: E731 - each call a second later: ids sort by time
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, clock)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    settings = ApiSettings(asset_secret=asset_secret)
    app = create_app(InProcessScheduler(svc), keys, store, settings)
    tenants = {name: keys.create(name, "api", now_s=0)[0] for name in ("alice", "bob")}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return ServedApp(svc, store, http, tenants, tmp_path)


def openai_client(served: ServedApp, tenant: str) -> Any:
    """The official ``openai`` SDK's async client as ``tenant``, through the app's transport."""
    import openai

    return openai.AsyncOpenAI(
        base_url="http://test/v1",
        api_key=served.keys[tenant],
        http_client=served.http,
        max_retries=0,
    )


def run(coro: Any) -> Any:
    """Run one SDK call (the SDKs' async clients go through the ASGI transport)."""
    return asyncio.run(coro)


def run_next(served: ServedApp, spritesheet: bool = False) -> str:
    """Lease the next job as a worker would, store a real MP4 and a PNG, complete it; with
    ``spritesheet``, also the built-in thumbnail stage's spritesheet of that MP4."""
    lease = served.svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None
    p = lease.request
    frames = np.full((p.frames, p.height, p.width, 3), 200, dtype=np.uint8)
    mp4 = encode_mp4(frames, p.fps, served.tmp / f"{lease.job_id}.mp4")
    prefix = f"results/{lease.job_id}/{lease.token}"
    video = served.store.put_file(f"{prefix}/video.mp4", mp4)
    thumb = served.store.put_bytes(f"{prefix}/thumb.png", b"\x89PNG fake")
    results = {"video": video, "thumbnail": thumb}
    if spritesheet:
        from luma_ray.workers.stages import StageInputs, Thumbnailer

        sheet = Thumbnailer().run(p, StageInputs(served.store, {"video": video}))
        made = sheet.files["spritesheet"]
        results["spritesheet"] = served.store.put_bytes(f"{prefix}/{made.name}", made.data)
    served.svc.call(Complete(lease.job_id, lease.token, results))
    return str(lease.job_id)
