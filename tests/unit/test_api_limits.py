"""What one ingress replica lets one key or tenant do, with no configuration: a request rate
per key (429 ``rate_limited`` with Retry-After) and a number of open event streams per
tenant (429 ``stream_limit``). The real app over an in-process scheduler; streams are driven
through ASGI directly so that several stay open at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.api.throttles import KeyRates, StreamSlots
from luma_ray.config import IngressLimits, RuntimeConfig, default_tiers, parse_config
from luma_ray.errors import StreamLimited
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build(tmp_path: Path, settings: ApiSettings, clock: Clock) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, clock)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "results")
    app = create_app(InProcessScheduler(svc), keys, store, settings, clock=clock)
    made = {
        name: keys.create(tenant, "api", now_s=0)[0]
        for name, tenant in [("alice", "alice"), ("alice2", "alice"), ("bob", "bob")]
    }
    return {"app": app, "client": TestClient(app), "clock": clock, **made}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---- request rate per key ------------------------------------------------------------------


def test_a_key_past_the_default_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    api = build(tmp_path, ApiSettings(), Clock())  # defaults: 20 a second, bursts of 40
    c, alice = api["client"], bearer(api["alice"])
    assert all(c.get("/v1/limits", headers=alice).status_code == 200 for _ in range(40))
    r = c.get("/v1/limits", headers=alice)
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "rate_limited" and "20 requests a second" in r.json()["detail"]
    assert r.headers["retry-after"] == "1"
    assert c.post("/v1/generations", json={"prompt": "x"}, headers=alice).status_code == 429
    assert c.get("/v1/limits", headers=bearer(api["alice2"])).status_code == 200  # per key
    api["clock"].now += 0.1  # 2 tokens back
    assert [c.get("/v1/limits", headers=alice).status_code for _ in range(3)] == [200, 200, 429]


def test_the_rate_is_configurable_and_can_be_turned_off(tmp_path: Path) -> None:
    slow = ApiSettings(limits=IngressLimits(key_rate_per_s=0.1, key_burst=1))
    api = build(tmp_path / "slow", slow, Clock())
    c, bob = api["client"], bearer(api["bob"])
    assert c.get("/v1/limits", headers=bob).status_code == 200
    r = c.get("/v1/limits", headers=bob)
    assert r.status_code == 429 and r.headers["retry-after"] == "10"
    off = build(tmp_path / "off", ApiSettings(limits=IngressLimits(key_rate_per_s=None)), Clock())
    assert all(
        off["client"].get("/v1/limits", headers=bearer(off["bob"])).status_code == 200
        for _ in range(100)
    )


def test_requests_with_no_valid_key_spend_no_ones_tokens(tmp_path: Path) -> None:
    api = build(tmp_path, ApiSettings(limits=IngressLimits(key_burst=1)), Clock())
    c = api["client"]
    for _ in range(5):
        assert c.get("/v1/limits").status_code == 401
    assert c.get("/v1/limits", headers=bearer(api["bob"])).status_code == 200


def test_key_rates_refill_and_stay_bounded() -> None:
    rates = KeyRates(rate_per_s=2.0, burst=2, max_buckets=3)
    assert [rates.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert rates.take("k", 0.25) == pytest.approx(0.25)  # half a token back, still refused
    assert rates.take("k", 0.5) == 0.0
    for i in range(10):
        rates.take(f"other-{i}", 100.0)
    assert len(rates) <= 3
    assert KeyRates(None, 1).take("k", 0.0) == 0.0


def test_ingress_limits_reach_the_replicas_from_the_runtime_config(tmp_path: Path) -> None:
    from luma_ray.api.ingress import api_settings

    runtime = RuntimeConfig(data_dir=str(tmp_path), ingress={"key_rate_per_s": 5})
    settings = api_settings(runtime)["settings"]
    assert IngressLimits.model_validate(settings["limits"]).key_rate_per_s == 5
    assert RuntimeConfig(data_dir=str(tmp_path)).ingress == IngressLimits()


def test_the_replicas_get_the_asset_secret_s_path_never_the_secret(tmp_path: Path) -> None:
    """The settings travel in an environment variable Ray shows in its dashboard."""
    from luma_ray.api.ingress import api_settings

    (tmp_path / "asset.secret").write_text("s3cr3t-value-0123456789abcdef\n")
    runtime = RuntimeConfig(
        data_dir=str(tmp_path), public_url="https://x.example", asset_url_ttl_s=90
    )
    cfg = api_settings(runtime)
    assert cfg["asset_secret_path"] == str(tmp_path / "asset.secret")
    assert "s3cr3t" not in repr(cfg)
    assert cfg["settings"]["public_url"] == "https://x.example"
    assert cfg["settings"]["asset_ttl_s"] == 90


# ---- event streams per tenant --------------------------------------------------------------


class Stream:
    """One GET of an event stream, driven through ASGI: open until :meth:`leave`."""

    def __init__(self, app: FastAPI, path: str, key: str) -> None:
        self.status: int | None = None
        self.body = b""
        self.started = asyncio.Event()
        self._left = asyncio.Event()
        self._asked = False
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"test"), (b"authorization", f"Bearer {key}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started.set()
        self.body += message.get("body", b"")

    async def leave(self) -> None:
        self._left.set()
        await asyncio.wait_for(self.task, 5)


def test_a_tenant_past_its_open_streams_gets_429_until_one_closes(tmp_path: Path) -> None:
    api = build(tmp_path, ApiSettings(sse_poll_s=0.01), Clock())  # default: 16 per tenant
    gen = api["client"].post("/v1/generations", json={"prompt": "x"}, headers=bearer(api["alice"]))
    path = f"/v1/generations/{gen.json()['id']}/events"
    app = api["app"]

    async def go() -> None:
        streams = [Stream(app, path, api["alice" if i % 2 else "alice2"]) for i in range(16)]
        await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in streams)), 5)
        assert [s.status for s in streams] == [200] * 16
        refused = Stream(app, path, api["alice"])  # either of the tenant's keys
        await asyncio.wait_for(refused.task, 5)
        assert refused.status == 429 and b'"code":"stream_limit"' in refused.body
        other = Stream(app, path, api["bob"])  # another tenant: its own slots (and a 404)
        await asyncio.wait_for(other.task, 5)
        assert other.status == 404
        await streams[0].leave()  # the client goes: its slot comes back
        again = Stream(app, path, api["alice"])
        await asyncio.wait_for(again.started.wait(), 5)
        assert again.status == 200
        for s in [*streams[1:], again]:
            await s.leave()
        assert app.state.ports.streams.count("alice") == 0

    asyncio.run(go())


def test_stream_slots_give_back_once() -> None:
    slots = StreamSlots(limit=1)
    close = slots.open("t")
    with pytest.raises(StreamLimited):
        slots.open("t")
    close()
    close()  # twice: still one slot back, not two
    assert slots.count("t") == 0
    slots.open("t")
    with pytest.raises(StreamLimited):
        slots.open("t")
