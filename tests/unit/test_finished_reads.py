"""Reads of finished jobs from the journal's file (``api/finished_reads.py``): the real app over
the real service and its SQLite journal (in-process port, no Ray). Two apps share the service:
one with journal reads, one without, so every answer is compared with the scheduler's own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.finished_reads import FinishedReads
from luma_ray.api.keys import KeyStore
from luma_ray.api.limits_cache import LimitsCache
from luma_ray.config import IngressLimits, default_tiers, parse_config
from luma_ray.errors import NotFound, SchedulerUnavailable
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.journal_replica import JournalReplica
from luma_ray.scheduler.protocol import (
    CancelJob,
    Complete,
    DescribeLimits,
    Fail,
    GetJob,
    InProcessScheduler,
    JournalFile,
    Pull,
)
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def make(tmp_path: Path) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    store = LocalBlobStore(tmp_path / "blobs")
    apps = {}
    for reads in (True, False):
        settings = ApiSettings(limits=IngressLimits(key_rate_per_s=None), journal_reads=reads)
        apps[reads] = TestClient(create_app(InProcessScheduler(svc), keys, store, settings))
    alice, _ = keys.create("alice", "api", now_s=0)
    bob, _ = keys.create("bob", "free", now_s=0)
    return {
        "svc": svc,
        "file": apps[True],
        "actor": apps[False],
        "alice": {"Authorization": f"Bearer {alice}"},
        "bob": {"Authorization": f"Bearer {bob}"},
    }


def submit(api: dict[str, Any], who: str = "alice") -> str:
    r = api["actor"].post("/v1/generations", json={"prompt": "a fox"}, headers=api[who])
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def finish(api: dict[str, Any], how: str) -> str:
    """A job of alice's, finished as ``how`` says (a worker leases it first)."""
    svc = api["svc"]
    job = submit(api)
    if how == "cancelled":
        svc.call(CancelJob(job))
        return job
    lease = svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None and lease.job_id == job
    if how == "succeeded":
        svc.call(Complete(job, lease.token, {"video": "file:///r/v.mp4"}))
    else:
        svc.call(Fail(job, lease.token, "model_error", "it broke", retryable=False))
    return job


def scheduler_calls(api: dict[str, Any]) -> int:
    return sum(api["svc"].calls.values())


PATHS = ["/v1/generations/{id}", "/v1/videos/{id}"]


@pytest.mark.parametrize("how", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_is_read_from_the_file_as_the_scheduler_shows_it(
    tmp_path: Path, how: str
) -> None:
    api = make(tmp_path)
    job = finish(api, how)
    for path in PATHS:
        url = path.format(id=job)
        api["file"].get(url, headers=api["alice"])  # the replica's first read fetches limits
        before = scheduler_calls(api)
        from_file = api["file"].get(url, headers=api["alice"])
        assert scheduler_calls(api) == before, dict(api["svc"].calls)  # no scheduler call
        from_actor = api["actor"].get(url, headers=api["alice"])
        assert scheduler_calls(api) == before + 1
        assert from_file.status_code == from_actor.status_code == 200
        assert from_file.json() == from_actor.json()
        assert from_file.json()["status" if "videos" in path else "state"] in (
            {"succeeded": "completed", "failed": "failed", "cancelled": "failed"}[how]
            if "videos" in path
            else how
        )


def test_an_unfinished_job_and_an_unknown_one_ask_the_scheduler(tmp_path: Path) -> None:
    api = make(tmp_path)
    finish(api, "succeeded")  # the replica has read limits and opened the file
    api["file"].get(f"/v1/generations/{finish(api, 'succeeded')}", headers=api["alice"])
    queued = submit(api)
    before = dict(api["svc"].calls)
    r = api["file"].get(f"/v1/generations/{queued}", headers=api["alice"])
    assert r.status_code == 200 and r.json()["state"] == "queued"
    assert r.json()["queue_position"] == 0  # the scheduler's live figures
    assert api["svc"].calls["GetJob"] == before.get("GetJob", 0) + 1
    r = api["file"].get("/v1/generations/gen_nothing_here", headers=api["alice"])
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert api["svc"].calls["GetJob"] == before.get("GetJob", 0) + 2


def test_another_tenants_finished_job_is_not_found(tmp_path: Path) -> None:
    api = make(tmp_path)
    job = finish(api, "succeeded")
    for path in PATHS:
        r = api["file"].get(path.format(id=job), headers=api["bob"])
        assert r.status_code == 404, r.text
    assert api["file"].get(f"/v1/generations/{job}", headers=api["alice"]).status_code == 200


def test_a_deleted_job_is_gone_from_the_file_too(tmp_path: Path) -> None:
    api = make(tmp_path)
    job = finish(api, "succeeded")
    url = f"/v1/generations/{job}"
    assert api["file"].get(url, headers=api["alice"]).status_code == 200
    assert api["actor"].delete(url, headers=api["alice"]).status_code == 200
    assert api["file"].get(url, headers=api["alice"]).status_code == 404


# ---- the port and the replica alone --------------------------------------------------------


class Away:
    """A scheduler that has gone away, after answering ``DescribeLimits`` once."""

    def __init__(self, inner: InProcessScheduler) -> None:
        self.inner, self.away = inner, False

    async def call(self, op: Any) -> Any:
        if self.away:
            raise SchedulerUnavailable("the scheduler is restarting")
        return await self.inner.call(op)


def test_finished_jobs_are_read_while_the_scheduler_is_away(tmp_path: Path) -> None:
    api = make(tmp_path)
    job = finish(api, "succeeded")
    queued = submit(api)
    port = Away(InProcessScheduler(api["svc"]))
    clock = Clock()
    reads = FinishedReads(port, LimitsCache(port, clock, ttl_s=10.0))

    async def scenario() -> None:
        assert (await reads.call(GetJob(job, "alice"))).state.value == "succeeded"
        port.away = True
        clock.now += 60  # the copy of the limits is past its TTL, and cannot be refreshed
        assert (await reads.call(GetJob(job, "alice"))).state.value == "succeeded"
        with pytest.raises(SchedulerUnavailable):
            await reads.call(GetJob(queued, "alice"))
        with pytest.raises(SchedulerUnavailable):
            await reads.call(GetJob(job, "bob"))  # never answered from the file

    asyncio.run(scenario())
    assert reads.served == 2


def test_a_new_journal_is_opened_and_a_strange_file_is_not_read(tmp_path: Path) -> None:
    first = Journal(tmp_path / "a.sqlite")
    again = Journal(tmp_path / "a.sqlite")
    other = Journal(tmp_path / "b.sqlite")
    assert first.identity == again.identity != other.identity  # made once, kept in the file
    here = JournalFile(str(first.path), first.identity)
    replica = JournalReplica.open(here)
    assert replica is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        replica._db.execute("DELETE FROM jobs")  # read-only: it never writes
    # Another file at the announced path (another machine, a journal replaced since), no
    # file, or not SQLite: nothing is read.
    assert JournalReplica.open(JournalFile(str(first.path), other.identity)) is None
    assert JournalReplica.open(JournalFile(str(tmp_path / "none.sqlite"), 1)) is None
    (tmp_path / "text.sqlite").write_text("not a database")
    assert JournalReplica.open(JournalFile(str(tmp_path / "text.sqlite"), 1)) is None


def test_the_port_reopens_when_the_scheduler_names_another_journal(tmp_path: Path) -> None:
    api = make(tmp_path)
    job = finish(api, "succeeded")
    inner = InProcessScheduler(api["svc"])
    clock = Clock()
    opened: list[JournalFile] = []

    def opener(journal: JournalFile) -> JournalReplica | None:
        opened.append(journal)
        return JournalReplica.open(journal)

    reads = FinishedReads(inner, LimitsCache(inner, clock, ttl_s=10.0), opener)

    async def scenario() -> None:
        for _ in range(3):
            await reads.call(GetJob(job, "alice"))
        assert len(opened) == 1 and reads.served == 3
        # The scheduler restarts on an empty journal at another path.
        api["svc"].journal = Journal(tmp_path / "new.sqlite")
        clock.now += 60
        with pytest.raises(NotFound):  # the new journal has no such job: the scheduler says
            await reads.call(GetJob("gen_nothing_here", "alice"))
        assert len(opened) == 2 and opened[1].identity != opened[0].identity

    asyncio.run(scenario())
    limits = asyncio.run(inner.call(DescribeLimits()))
    new = JournalFile(str((tmp_path / "new.sqlite").resolve()), opened[1].identity)
    assert limits.journal == new
