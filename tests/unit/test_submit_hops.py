"""One scheduler call per HTTP submit: the ingress keeps the scheduler's limits
(``api/limits_cache.py``) instead of asking ``DescribeLimits`` per request, counted at the real
service behind the real app (in-process port, fake monotonic clock; no Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import IngressLimits, default_tiers, parse_config
from luma_ray.jobs.request import INPUT_KINDS
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore
from tests.unit.media_samples import data_url, image_bytes

TAKES_IMAGES = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8, inputs=INPUT_KINDS)}
TEXT_ONLY = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def scheduler(tmp_path: Path, models: dict[str, ModelLimits]) -> SchedulerService:
    clock = lambda: 1_700_000_000.0  # noqa: E731
    return SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), models, clock)


def make(tmp_path: Path, ttl_s: float = 10.0) -> dict[str, Any]:
    svc = scheduler(tmp_path, TAKES_IMAGES)
    port = InProcessScheduler(svc)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    clock = Clock()
    settings = ApiSettings(limits=IngressLimits(key_rate_per_s=None), limits_ttl_s=ttl_s)
    app = create_app(port, keys, LocalBlobStore(tmp_path / "blobs"), settings, clock=clock)
    alice, _ = keys.create("alice", "api", now_s=0)
    headers = {"Authorization": f"Bearer {alice}"}
    return {"client": TestClient(app), "port": port, "clock": clock, "headers": headers}


def calls(api: dict[str, Any]) -> int:
    return sum(api["port"].inner.calls.values())


def submit_with_image(api: dict[str, Any]) -> Any:
    body = {"prompt": "a fox", "first_frame": data_url(image_bytes())}
    return api["client"].post("/v1/generations", json=body, headers=api["headers"])


def test_each_submit_is_one_scheduler_call_on_every_api(tmp_path: Path) -> None:
    api = make(tmp_path)
    c, h = api["client"], api["headers"]
    assert submit_with_image(api).status_code == 201  # the replica's first: limits fetched
    submits = [
        lambda: submit_with_image(api),
        lambda: c.post("/v1/generations", json={"prompt": "a fox"}, headers=h),
        lambda: c.post(
            "/v1/videos",
            data={"prompt": "a fox"},
            files={"input_reference": ("start.png", image_bytes(), "image/png")},
            headers=h,
        ),
        lambda: c.post(
            "/dream-machine/v1/generations",
            json={
                "prompt": "a fox",
                "model": "ray-flash-2",
                "keyframes": {"frame0": {"type": "image", "url": data_url(image_bytes())}},
            },
            headers=h,
        ),
    ]
    for send in submits:
        before = dict(api["port"].inner.calls)
        r = send()
        assert r.status_code in (200, 201), r.text
        after = api["port"].inner.calls
        assert calls(api) - sum(before.values()) == 1, dict(after)
        assert after["Submit"] == before.get("Submit", 0) + 1
    assert api["port"].inner.calls["DescribeLimits"] == 1  # the first submit's, only


def test_new_limits_judge_submits_within_the_ttl(tmp_path: Path) -> None:
    """The scheduler restarts with a model that no longer takes images: a submit within the
    TTL is judged by the copy (the scheduler's intake still refuses it), one after it by
    the new limits at the ingress, before any input is stored."""
    api = make(tmp_path, ttl_s=10.0)
    assert submit_with_image(api).status_code == 201
    api["port"].inner = scheduler(tmp_path, TEXT_ONLY)  # restarted with new settings
    api["clock"].now += 4
    r = submit_with_image(api)
    assert r.status_code == 400 and "first_frame" in r.text  # refused by the scheduler
    assert api["port"].inner.calls["DescribeLimits"] == 0
    assert api["port"].inner.calls["Submit"] == 1
    api["clock"].now += 7  # the copy is 11 s old: past the TTL
    r = submit_with_image(api)
    assert r.status_code == 400
    assert r.json()["detail"].startswith("first_frame: this model does not take")
    assert api["port"].inner.calls["DescribeLimits"] == 1
    assert api["port"].inner.calls["Submit"] == 1  # judged at the ingress: no Submit sent
    limits = api["client"].get("/v1/limits", headers=api["headers"]).json()
    assert limits["models"]["luma-tiny"]["inputs"] == []
