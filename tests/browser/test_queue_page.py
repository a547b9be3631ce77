"""The live queue page in a real headless Chromium, served over real HTTP (uvicorn on
loopback) from the app over an in-process scheduler service in a known state: the page's own
script fetches the data with a read-only queues:read key and renders it."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import default_tiers, parse_config
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore
from tests.project_scripts import load_script

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


def _chromium():
    return load_script("scripts/chromium.py")


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served(tmp_path: Path):
    clock = Clock()
    svc = SchedulerService(
        parse_config({"policy": {"name": "slo_guard"}}),
        Journal(tmp_path / "j.sqlite"),
        LIMITS,
        clock,
    )
    # Known state, t in seconds from the first submit: three free jobs at t=0, api jobs at 60,
    # 90 and 250. w1 pulls at 90 (the api job of t=60), w2 at 240: the api job of t=90 is past
    # its 120 s SLO by then, so slo_guard serves a savable free job first. The page is read at
    # t=288: api has 2 queued, the oldest 198 s (165% of its SLO); free has 2, the oldest 288 s
    # (4% of 2 h) and 1 dispatch in the last minute; only w2 pulled in the last minute.
    # w2's job fails at t=245 (not retryable). The queue view is read (and so sampled) after
    # each step: the hour's chart has the minutes 0, 1 and 4 (t=0, 60-90, 240-288).
    sample = svc.queue_view
    for i in range(3):
        svc.submit(SubmitRequest(prompt=f"free {i}", tier="free", tenant="hobby"))
    sample()
    clock.now += 60
    svc.submit(SubmitRequest(prompt="api 1", tier="api", tenant="acme"))
    sample()
    clock.now += 30
    w1, w2 = "local/tiny-a/1-aa", "local/tiny-b/2-bb"  # workers of two pools
    assert svc.pull(w1, "local", ["luma-tiny", "luma-tiny@v1"]).request.prompt == "api 1"
    svc.submit(SubmitRequest(prompt="api 2", tier="api", tenant="acme"))
    sample()
    clock.now += 150
    a2 = svc.pull(w2, "local", ["luma-tiny", "luma-tiny@v2"])
    assert a2.request.prompt == "free 0"
    sample()
    clock.now += 5
    svc.fail(a2.job_id, a2.token, "model_error", "CUDA out of memory at step 12")
    clock.now += 5
    svc.submit(SubmitRequest(prompt="api 3", tier="api", tenant="zed"))
    sample()
    clock.now += 38
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    viewer, _ = keys.create("ops", "free", scopes=["queues:read"], now_s=0)  # read-only
    app = create_app(InProcessScheduler(svc), keys, LocalBlobStore(tmp_path / "r"), ApiSettings())
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
    yield f"http://127.0.0.1:{port}", viewer
    server.should_exit = True
    thread.join(timeout=10)


def rows(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, html[:2000]
    return [
        [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def test_queue_page_shows_the_known_state(served) -> None:
    base, key = served
    html = _chromium().dump_dom(f"{base}/admin/queues#key={key}")
    assert "updated 2027-01-15T08:04:48.000Z" in html  # the script ran: the clock at t=288
    assert rows(html, "queues") == [
        # tier, model, queued, oldest wait, SLO, SLO used, dispatched / min
        ["api", "luma-tiny", "2", "198.0", "120", "165.0%", "0.0"],
        ["free", "luma-tiny", "2", "288.0", "7200", "4.0%", "1.0"],
    ]
    assert rows(html, "pools") == [["tiny-b", "luma-tiny", "1", "v2 x1"]]  # w1 went quiet
    assert html.count('class="late"') == 2  # the api row's wait and share: past its SLO


def test_queue_page_without_a_valid_key_shows_the_error(served) -> None:
    base, _ = served
    html = _chromium().dump_dom(f"{base}/admin/queues#key=wrong")
    assert "error:" in html and rows(html, "queues") == []


def svg(html: str, chart: str) -> str:
    found = re.search(rf'<figure id="{chart}">.*?<svg[^>]*>(.*?)</svg>', html, re.S)
    assert found, html[:2000]
    return found.group(1)


def series(html: str, chart: str) -> dict[str, tuple[int, str]]:
    """Each polyline of ``chart``: its series name -> (how many points, the values)."""
    out = {}
    for attrs in re.findall(r"<polyline ([^>]*)>", svg(html, chart)):
        name = re.search(r'data-series="([^"]*)"', attrs).group(1)
        points = re.search(r' points="([^"]*)"', attrs).group(1).split()
        assert all(re.fullmatch(r"[\d.]+,[\d.]+", p) for p in points), points
        out[name] = (len(points), re.search(r'data-values="([^"]*)"', attrs).group(1))
    return out


def test_queue_page_charts_the_hour_and_lists_tenants_and_failures(served) -> None:
    base, key = served
    html = _chromium().dump_dom(f"{base}/admin/queues#key={key}")
    # three sampled minutes (0, 1, 4): a point each; only tiers with work in the hour
    assert series(html, "chart-depth") == {"api": (3, "0,1,2"), "free": (3, "3,3,2")}
    assert series(html, "chart-wait") == {"api": (3, "0,0,165"), "free": (3, "0,1.3,4")}
    assert series(html, "chart-dispatch") == {"api": (3, "0,1,0"), "free": (3, "0,0,1")}
    # w1 holds its lease from t=90 (busy); w2's job failed at t=245, so it is idle since
    assert series(html, "chart-workers") == {
        "tiny-a busy": (2, "1,1"),
        "tiny-a idle": (2, "0,0"),
        "tiny-b busy": (1, "0"),
        "tiny-b idle": (1, "1"),
    }
    assert svg(html, "chart-depth").count("<circle") == 6  # a dot per point
    assert 'class="ref"' in svg(html, "chart-wait")  # the 100% of SLO line
    assert rows(html, "tenants") == [
        # tier, by, tenant, queued, leased
        ["api", "queued", "acme", "1", "1"],
        ["api", "queued", "zed", "1", "0"],
        ["api", "leased", "acme", "1", "1"],
        ["free", "queued", "hobby", "2", "0"],
    ]
    ((at, tier, tenant, model, job, code, reason, then),) = rows(html, "failures")
    assert (at, tier, tenant, model, code, then) == (
        "08:04:05",  # t=245
        "free",
        "hobby",
        "luma-tiny",
        "model_error",
        "failed",
    )
    assert reason == "CUDA out of memory at step 12" and job.startswith("gen_")
