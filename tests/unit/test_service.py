"""The scheduler service over a real SQLite journal, with a fake clock (no Ray)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import BackPressure, InvalidRequest, NotFound, StaleLease
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.service import SchedulerService, SubmitRequest

LIMITS = {
    "luma-tiny": ModelLimits(
        max_frames=64,
        max_height=128,
        max_width=128,
        max_steps=50,
        default_steps=8,
        default_fps=8,
        size_multiple=8,
    )
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, **cfg: object) -> SchedulerService:
    return SchedulerService(parse_config(cfg), Journal(path), LIMITS, clock)


def test_jobs_survive_a_restart_with_queues_and_leases(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, lease_ttl_s=30)
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="free"))["id"] for i in range(3)]
    clock.now += 1
    first = svc.pull("w1", "local", ["luma-tiny"])
    assert first is not None and first.job_id == ids[0]
    svc.heartbeat(first.job_id, first.token, 1, 8)
    svc.cancel(ids[2])

    clock.now += 5
    again = service(db, clock, lease_ttl_s=30)  # a restarted actor reads the same file
    states = {j["id"]: j["state"] for j in again.list()}
    assert states == {ids[0]: "running", ids[1]: "queued", ids[2]: "cancelled"}
    second = again.pull("w2", "local", ["luma-tiny"])
    assert second is not None and second.job_id == ids[1]
    assert second.token > first.token  # fencing tokens never repeat across restarts
    assert again.pull("w2", "local", ["luma-tiny"]) is None  # the cancelled job never starts
    # The worker that held the first lease before the restart can still finish it.
    again.complete(first.job_id, first.token, {"video": "file:///v.mp4"})
    with pytest.raises(StaleLease):
        again.complete(first.job_id, first.token, {"video": "file:///w.mp4"})
    assert again.get(first.job_id)["result_uris"] == {"video": "file:///v.mp4"}


def test_lost_lease_requeues_after_restart_and_attempts_count(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock, lease_ttl_s=10)
    job_id = svc.submit(SubmitRequest(prompt="p"))["id"]
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None
    clock.now += 100
    restarted = service(db, clock, lease_ttl_s=10)
    assert restarted.tick() == 0  # a restart grants live leases one more period
    clock.now += 11
    assert restarted.tick() == 1
    view = restarted.get(job_id)
    assert view["state"] == "queued" and view["attempts"] == 2


@pytest.mark.parametrize(
    "change,message",
    [
        ({"model": "sora-9"}, "unknown model 'sora-9'"),
        ({"frames": 0}, "frames is 0"),
        ({"frames": 500}, "frames is 500"),
        ({"width": 60}, "width 60 is not a multiple of 8"),
        ({"height": 4096}, "height is 4096"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"tier": "gold"}, "unknown tier 'gold'"),
        ({"steps": 1000}, "steps is 1000"),
        ({"tenant": "../etc"}, "tenant must be"),
    ],
)
def test_bad_requests_are_refused_and_never_queued(tmp_path: Path, change, message) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    request = SubmitRequest(**{"prompt": "a red fox", **change})
    with pytest.raises(InvalidRequest, match=message):
        svc.submit(request)
    assert svc.list() == []
    rows = sqlite3.connect(tmp_path / "j.sqlite").execute("SELECT count(*) FROM jobs").fetchone()
    assert rows == (0,)


def test_tenants_never_see_each_others_jobs(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    mine = svc.submit(SubmitRequest(prompt="p", tenant="alice"))["id"]
    svc.submit(SubmitRequest(prompt="q", tenant="bob"))
    assert [j["id"] for j in svc.list(tenant="alice")] == [mine]
    with pytest.raises(NotFound):
        svc.get(mine, tenant="bob")
    with pytest.raises(NotFound):
        svc.cancel(mine, tenant="bob")
    assert svc.get(mine, tenant="alice")["state"] == "queued"


def test_submit_many_keeps_good_ones_and_reports_bad_ones(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock(), tenant_limits={"free": {"max_queued": 2}})
    out = svc.submit_many(
        [
            SubmitRequest(prompt="a"),
            SubmitRequest(prompt=""),
            SubmitRequest(prompt="b"),
            SubmitRequest(prompt="c"),
        ]
    )
    assert [("id" in o) for o in out] == [True, False, True, False]
    assert out[3]["error"]["code"] == BackPressure.code
    assert len(svc.list()) == 2


def test_seed_and_steps_are_resolved_at_submit(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    view = svc.submit(SubmitRequest(prompt="p"))
    assert view["params"]["steps"] == 8 and isinstance(view["params"]["seed"], int)
    lease = svc.pull("w", "local", ["luma-tiny"])
    assert lease is not None and lease.request.seed == view["params"]["seed"]
