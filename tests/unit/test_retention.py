"""Finished jobs older than ``retention_s`` leave the journal, and their results the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from luma_ray.config import SchedulerConfig, parse_config
from luma_ray.errors import ConfigError, NotFound
from luma_ray.runtime.actor import ActorSettings, SchedulerActor
from luma_ray.runtime.retention import Retention
from luma_ray.scheduler.protocol import SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import BlobStore, InMemoryBlobStore, LocalBlobStore, StorageError
from luma_ray.storage.keys import result_key, results_prefix
from tests.unit.test_service import LIMITS, Clock, service

DAY = 86_400.0


def test_retention_defaults_to_30_days_and_is_validated() -> None:
    assert SchedulerConfig().retention_s == 2_592_000
    assert parse_config({"retention_s": None}).retention_s is None  # keep for ever
    for wrong in (0, -1, "a month"):
        with pytest.raises(ConfigError, match="retention_s"):
            parse_config({"retention_s": wrong})


def finish_with_files(svc: SchedulerService, store: BlobStore, prompt: str) -> str:
    """Submit, lease and complete one job whose worker stored two files."""
    job_id = svc.submit(SubmitRequest(prompt=prompt)).id
    lease = svc.pull("w", "local", ["luma-tiny"])
    assert lease is not None and lease.job_id == job_id
    uris = {
        name: store.put_bytes(result_key(job_id, lease.token, name), b"data")
        for name in ("video.mp4", "thumbnail.png")
    }
    svc.complete(job_id, lease.token, uris)
    return job_id


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "results")
    return InMemoryBlobStore()


def test_a_job_past_retention_leaves_the_journal_and_its_results_the_store(
    tmp_path: Path, store: BlobStore
) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, retention_s=30 * DAY)
    old = finish_with_files(svc, store, "old")
    clock.now += 20 * DAY
    young = finish_with_files(svc, store, "young")
    live = svc.submit(SubmitRequest(prompt="still queued")).id
    retention = Retention(lambda: store)

    clock.now += 9 * DAY  # the old one finished 29 days ago: nothing expires yet
    assert asyncio.run(retention.purge(svc)) == []
    clock.now += 1 * DAY + 1
    assert asyncio.run(retention.purge(svc)) == [old]

    with pytest.raises(NotFound):
        svc.get(old)
    assert store.list(results_prefix(old)) == []
    assert svc.get(young).state == "succeeded" and len(store.list(results_prefix(young))) == 2
    assert svc.get(live).state == "queued"
    restarted = service(db, clock, retention_s=30 * DAY)
    assert {v.id for v in restarted.list()} == {young, live}
    assert asyncio.run(retention.purge(svc)) == []  # nothing more until the young one expires
    if isinstance(store, LocalBlobStore):  # the job's folder is gone, not left empty
        assert not (store.root / "results" / old).exists()


def test_a_job_still_in_memory_is_purged_from_memory_too(tmp_path: Path) -> None:
    """With ``retention_s`` below ``keep_finished_s`` the expired job is still in memory: it
    leaves it with its Idempotency-Key."""
    clock = Clock()
    store = InMemoryBlobStore()
    svc = service(tmp_path / "j.sqlite", clock, retention_s=60, keep_finished_s=DAY)
    job_id = svc.submit(SubmitRequest(prompt="p", idempotency_key="k")).id
    lease = svc.pull("w", "local", ["luma-tiny"])
    assert lease is not None
    svc.complete(job_id, lease.token, {})
    clock.now += 61
    assert asyncio.run(Retention(lambda: store).purge(svc)) == [job_id]
    assert job_id not in svc.core.jobs
    with pytest.raises(NotFound):
        svc.get(job_id)
    assert svc.submit(SubmitRequest(prompt="p", idempotency_key="k")).id != job_id


class UnreachableOnce(InMemoryBlobStore):
    """A store whose first delete fails, as a store that is briefly unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def delete(self, key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageError("the store did not answer")
        super().delete(key)


def test_a_store_that_fails_keeps_the_job_to_try_again(tmp_path: Path) -> None:
    """Results are deleted before the row: a job whose files could not be deleted stays in the
    journal and is tried again, so no result file is left without its job."""
    clock = Clock()
    store = UnreachableOnce()
    svc = service(tmp_path / "j.sqlite", clock, retention_s=60)
    job_id = finish_with_files(svc, store, "p")
    clock.now += 61
    assert asyncio.run(Retention(lambda: store).purge(svc)) == []
    assert svc.get(job_id).state == "succeeded"
    assert asyncio.run(Retention(lambda: store).purge(svc)) == [job_id]
    assert store.list(results_prefix(job_id)) == []


def test_the_actor_purges_from_its_result_store(tmp_path: Path) -> None:
    """The actor is built with the result store's URI (``launch`` passes ``runtime.store``)
    and deletes expired results off its event loop."""
    clock = Clock()
    clock.now = time.time() - 40 * DAY  # the actor's clock is the real one
    db = tmp_path / "journal.sqlite"
    store = LocalBlobStore(tmp_path / "results")
    svc = service(db, clock)  # the default retention: 30 days
    old = finish_with_files(svc, store, "old")
    clock.now = time.time() - DAY
    young = finish_with_files(svc, store, "young")
    svc.journal.close()

    actor = SchedulerActor(
        ActorSettings(config={}, journal_path=str(db), models=LIMITS, store_uri=store.uri)
    )
    assert asyncio.run(actor.retention.purge(actor.service)) == [old]
    assert store.list(results_prefix(old)) == []
    assert len(store.list(results_prefix(young))) == 2
