"""A journal that cannot be written (a full disk) loses nothing acknowledged.

The journal is a real SQLite file; ``PRAGMA max_page_count`` on its connection makes the disk
"full" at the file's current size, exactly as a full filesystem refuses the next page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from luma_ray.errors import JournalUnavailable, Unavailable
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from tests.unit.test_service import Clock, service


def fill_disk(svc: SchedulerService) -> None:
    """The journal's file may not grow any more (as on a full disk)."""
    db = svc.journal._db
    db.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")  # for use_up_the_last_page
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def use_up_the_last_page(svc: SchedulerService) -> None:
    """Fill whatever room the full file still has, down to the byte, so that any write that
    grows a row fails too (how much room a refused insert leaves depends on row sizes)."""
    db = svc.journal._db
    size = 4096
    while size >= 1:
        try:
            db.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
        except sqlite3.OperationalError:
            size //= 2


def free_disk(svc: SchedulerService) -> None:
    svc.journal._db.execute("PRAGMA max_page_count = 1073741823")


def request(i: int, key: str | None = None) -> SubmitRequest:
    return SubmitRequest(prompt=f"prompt {i}", tier="free", seed=i, idempotency_key=key)


def submit_until_full(svc: SchedulerService, clock: Clock) -> tuple[list[str], JournalUnavailable]:
    """Submit jobs until the journal refuses one; the acknowledged ids and the error."""
    acknowledged = []
    for i in range(500):
        clock.now += 1
        try:
            acknowledged.append(svc.submit(request(i, key=f"k{i}")).id)
        except JournalUnavailable as err:
            return acknowledged, err
    raise AssertionError("the journal never filled up")


def states(svc: SchedulerService) -> dict[str, str]:
    """Every job's state as the service answers it (memory first, then the journal)."""
    return {v.id: v.state.value for v in svc.list(limit=1000)} | {
        job_id: job.state.value for job_id, job in svc.core.jobs.items()
    }


def test_a_submit_on_a_full_disk_is_refused_naming_the_cause(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock)
    fill_disk(svc)
    acknowledged, err = submit_until_full(svc, clock)

    assert isinstance(err, Unavailable) and err.code == "journal_unavailable"
    message = str(err)
    assert f"the journal {db} could not be written (database or disk is full)" in message
    assert "nothing was changed, retry later" in message
    assert "rollback" not in message  # not SQLite's second error masking the first
    # The refused job is nowhere: not in memory, not queued for a worker.
    assert sorted(svc.core.jobs) == acknowledged
    assert sum(q.live for q in svc.core.queues.queues.values()) == len(acknowledged)
    # A restarted service from the same file sees exactly the acknowledged jobs.
    assert states(service(db, clock)) == dict.fromkeys(acknowledged, "queued")


def test_a_retried_submit_after_space_is_freed_makes_the_job_once(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock)
    fill_disk(svc)
    acknowledged, _ = submit_until_full(svc, clock)
    refused = request(len(acknowledged), key=f"k{len(acknowledged)}")

    with pytest.raises(JournalUnavailable):  # the same key, still full: still refused
        svc.submit(refused)
    free_disk(svc)
    first = svc.submit(refused)
    again = svc.submit(refused)
    assert again.id == first.id

    restarted = service(db, clock)
    assert restarted.submit(refused).id == first.id
    keyed = [v for v in restarted.list(limit=1000) if v.id == first.id]
    assert len(keyed) == 1 and keyed[0].state.value == "queued"
    assert len(restarted.list(limit=1000)) == len(acknowledged) + 1


def test_a_pull_on_a_full_disk_leaves_the_job_queued(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, lease_ttl_s=30)
    fill_disk(svc)
    acknowledged, _ = submit_until_full(svc, clock)
    use_up_the_last_page(svc)
    # Worker ids longer than a page: the leased row needs a page the file has no room for,
    # however much room is left inside the row's own page.
    for worker in ("w1" * 2500, "w2" * 2500):
        with pytest.raises(JournalUnavailable, match="full"):
            svc.pull(worker, "local", ["luma-tiny"])
        assert states(svc) == states(service(db, clock)) == dict.fromkeys(acknowledged, "queued")
        assert not svc.core.in_flight["local"]  # no lease is held for a worker that got none
    free_disk(svc)
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None and lease.job_id == acknowledged[0]
    assert states(service(db, clock))[lease.job_id] == "leased"


def test_a_complete_on_a_full_disk_is_undone_and_its_retry_lands(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, lease_ttl_s=30)
    for i in range(12):
        clock.now += 1
        svc.submit(request(i))
    leases = [svc.pull(f"w{i}", "local", ["luma-tiny"]) for i in range(6)]
    for lease in leases:
        assert lease is not None
        svc.heartbeat(lease.job_id, lease.token, 1, 8)
    fill_disk(svc)
    submit_until_full(svc, clock)
    # Results with long URIs: each commit needs more room than the full journal has left.
    uris = {f"video{k}": f"file:///data/results/{'x' * 200}/{k}.mp4" for k in range(3)}
    refused = []
    for lease in leases:
        assert lease is not None
        try:
            svc.complete(lease.job_id, lease.token, uris)
        except JournalUnavailable:
            refused.append(lease)
        assert states(svc) == states(service(db, clock, lease_ttl_s=30))
    assert refused  # the full window was exercised
    for lease in refused:
        assert svc.get(lease.job_id).state.value == "running"  # still the worker's to finish
    free_disk(svc)
    for lease in refused:  # the worker retries its commit with the same lease
        svc.complete(lease.job_id, lease.token, uris)
    restarted = service(db, clock, lease_ttl_s=30)
    for lease in leases:
        assert lease is not None
        view = restarted.get(lease.job_id)
        assert view.state.value == "succeeded" and view.result_uris == uris


def test_a_refused_write_rolls_back_and_raises_the_real_error(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "journal.sqlite", clock)
    job = svc.core.jobs[svc.submit(request(0)).id]
    fill_disk(svc)
    journal: Journal = svc.journal
    job.metadata = {"pad": "x" * 100_000}  # needs pages the disk does not have
    with pytest.raises(JournalUnavailable, match="full"):
        journal.record([job], 7)
    assert not journal._db.in_transaction
    with pytest.raises(JournalUnavailable, match="full"):
        journal.record([job], 7)  # the connection is still usable: the same error again
    free_disk(svc)
    journal.record([job], 7)
    stored = journal.get(job.id)
    assert stored is not None and stored.metadata["pad"] == "x" * 100_000


# ---- every path that writes --------------------------------------------------------------

Setup = Callable[[SchedulerService, Clock], Callable[[], object]]


def _leased(svc: SchedulerService, started: bool = True) -> Assignment:
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None
    if started:
        svc.heartbeat(lease.job_id, lease.token, 1, 8)
    return lease


def _expire(svc: SchedulerService, clock: Clock) -> Callable[[], object]:
    _leased(svc)
    clock.now += 31
    return svc.tick


def _strand_pinned(svc: SchedulerService, clock: Clock) -> Callable[[], object]:
    svc.active_version = lambda model: "v2"
    svc.pull("w9", "local", ["luma-tiny@v1"])  # a worker runs v1, so v1 may be pinned
    svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v1"))
    clock.now += 601  # nobody ran v1 for the grace period: the pinned job fails
    return svc.tick


def _on_lease(started: bool, act: Callable[[SchedulerService, Assignment], object]) -> Setup:
    """A write on a job leased to ``w1`` (and started by its first heartbeat if ``started``)."""

    def setup(svc: SchedulerService, clock: Clock) -> Callable[[], object]:
        lease = _leased(svc, started)
        return lambda: act(svc, lease)

    return setup


WRITES: dict[str, Setup] = {
    "submit": lambda svc, clock: lambda: svc.submit(request(7, key="k7")),
    "submit_many": lambda svc, clock: lambda: svc.submit_many([request(7), request(8)]),
    "pull": lambda svc, clock: lambda: svc.pull("w2", "local", ["luma-tiny"]),
    "heartbeat that starts": _on_lease(False, lambda s, a: s.heartbeat(a.job_id, a.token, 1, 8)),
    "complete": _on_lease(True, lambda s, a: s.complete(a.job_id, a.token, {"v": "file:///v"})),
    "fail": _on_lease(True, lambda s, a: s.fail(a.job_id, a.token, "oom", "out of memory")),
    "fail, retryable": _on_lease(True, lambda s, a: s.fail(a.job_id, a.token, "oom", "", True)),
    "release": _on_lease(False, lambda s, a: s.release(a.job_id, a.token)),
    "cancel": _on_lease(True, lambda s, a: s.cancel(a.job_id)),
    "delete": _on_lease(True, lambda s, a: s.delete(a.job_id)),
    "worker lost": _on_lease(True, lambda s, a: s.worker_lost("w1")),
    "tick, lease expired": _expire,
    "tick, pinned version gone": _strand_pinned,
}


@pytest.mark.parametrize("write", WRITES)
def test_every_write_the_journal_refuses_is_undone(tmp_path: Path, write: str) -> None:
    """Another process holds the journal's write lock: every path that writes is refused
    with ``JournalUnavailable``, memory stays as the journal has it, and it works later."""
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, lease_ttl_s=30, pinned_grace_s=600)
    for i in range(3):
        clock.now += 1
        svc.submit(request(i))
    attempt = WRITES[write](svc, clock)
    before = states(svc)
    svc.journal._db.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. an operator's sqlite3 shell in a transaction
    try:
        with pytest.raises(JournalUnavailable, match="database is locked"):
            attempt()
        assert states(svc) == before == states(service(db, clock, lease_ttl_s=30))
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Undoing gave live leases one more period, as a restart does: let it pass.
    clock.now += 31
    attempt()  # the same request, sent again, now lands
    assert states(svc) == states(service(db, clock, lease_ttl_s=30, pinned_grace_s=600))
    assert states(svc) != before
