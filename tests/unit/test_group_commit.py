"""Group commit: concurrent calls to the scheduler actor share journal transactions, and each is
answered only once its change is durable; a failed batch fails each of its callers and leaves
none of their changes visible (no Ray: the actor class is built directly and driven on one
event loop, with a real SQLite journal)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from luma_ray.errors import JournalUnavailable
from luma_ray.runtime.actor import ActorSettings, SchedulerActor
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Assignment,
    CompleteAndPull,
    CompletedAndPulled,
    EventFeed,
    JobView,
    Pull,
    Submit,
    SubmitMany,
    SubmitRequest,
)
from tests.unit.test_service import LIMITS

T = TypeVar("T")
WORKERS = 64
CONFIG = {"tenant_limits": {"free": {"max_queued": None}}, "journal_group_window_s": 0.001}


def actor_on(path: Path, **config: object) -> SchedulerActor:
    return SchedulerActor(
        ActorSettings(config={**CONFIG, **config}, journal_path=str(path), models=LIMITS)
    )


def run(actor: SchedulerActor, work: Awaitable[T]) -> T:
    """Drive ``work`` on a fresh event loop, then stop the actor's timers."""

    async def drive() -> T:
        try:
            return await work
        finally:
            for task in (actor._ticker, actor._publisher):
                if task is not None:
                    task.cancel()
            if actor._commits is not None:
                actor._commits.stop()

    return asyncio.run(drive())


def request(i: int) -> SubmitRequest:
    return SubmitRequest(prompt=f"prompt {i}", steps=2, seed=i)


def journaled(path: Path) -> dict[str, str]:
    """Every job's state as a fresh reader of the file sees it (what survives a crash)."""
    journal = Journal(path)
    try:
        jobs, _ = journal.load()
        return {job.id: job.state.value for job in jobs}
    finally:
        journal.close()


def fill_writer_disk(actor: SchedulerActor) -> None:
    """The group writer's file may not grow any more (as on a full disk)."""
    db = actor.service.journal._writer
    assert db is not None
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def free_writer_disk(actor: SchedulerActor) -> None:
    db = actor.service.journal._writer
    assert db is not None
    db.execute("PRAGMA max_page_count = 1073741823")


def test_concurrent_submits_share_transactions_and_all_are_durable(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path)

    async def submit_all() -> list[JobView]:
        return await asyncio.gather(*(actor.call(Submit(request(i))) for i in range(WORKERS)))

    views = run(actor, submit_all())
    commits = actor._commits
    assert commits is not None
    assert commits.writes == WORKERS  # one write per call ...
    assert 1 <= commits.batches <= WORKERS // 4  # ... in a few transactions, not 64
    assert journaled(path) == {v.id: "queued" for v in views}


def test_a_lone_caller_does_not_wait_the_window_and_a_crowd_does(tmp_path: Path) -> None:
    """One call at a time: nobody could join its write, so it commits at once (ten submits in
    far less than ten 0.1 s windows); calls that come together wait the window and share."""
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path, journal_group_window_s=0.1)

    async def one_by_one() -> float:
        started = time.perf_counter()
        for i in range(10):
            await actor.call(Submit(request(i)))
        return time.perf_counter() - started

    async def crowd() -> list[JobView]:
        return await asyncio.gather(*(actor.call(Submit(request(i))) for i in range(10, 20)))

    assert run(actor, one_by_one()) < 0.5
    commits = actor._commits
    assert commits is not None and commits.waited == 0 and commits.batches == 10
    run(actor, crowd())
    assert commits.waited >= 1 and commits.batches < 20
    assert len(journaled(path)) == 20


def test_without_group_commit_each_call_commits_alone(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path, journal_group_window_s=None)

    async def submit_all() -> list[JobView]:
        return await asyncio.gather(*(actor.call(Submit(request(i))) for i in range(8)))

    views = run(actor, submit_all())
    assert actor._commits is None and actor.service.journal.pending is None
    assert journaled(path) == {v.id: "queued" for v in views}


def test_workers_pull_and_complete_concurrently_through_group_commits(tmp_path: Path) -> None:
    """64 workers each lease a job, then commit it and lease the next with CompleteAndPull:
    every acknowledged result and lease is in the file."""
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path)
    jobs = 3 * WORKERS

    async def cycle(worker: str) -> list[str]:
        done = []
        lease: Assignment | None = await actor.call(Pull(worker, "local", ("luma-tiny",)))
        while lease is not None:
            uris = {"video": f"file:///{lease.job_id}.mp4"}
            op = CompleteAndPull(lease.job_id, lease.token, uris, worker, "local", ("luma-tiny",))
            answer: CompletedAndPulled = await actor.call(op)
            assert answer.completed is not None and answer.refused is None
            done.append(answer.completed.id)
            lease = answer.assignment
        return done

    async def work() -> list[list[str]]:
        await actor.call(SubmitMany(tuple(request(i) for i in range(jobs))))
        return await asyncio.gather(*(cycle(f"w{w}") for w in range(WORKERS)))

    done = [job_id for worker in run(actor, work()) for job_id in worker]
    assert len(done) == len(set(done)) == jobs
    assert journaled(path) == dict.fromkeys(done, "succeeded")
    commits = actor._commits
    assert commits is not None and commits.batches < commits.writes


def test_a_failed_group_commit_fails_each_caller_and_keeps_none_of_their_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path)

    async def work() -> tuple[list[JobView], list[Any], list[JobView], Any]:
        before = await asyncio.gather(*(actor.call(Submit(request(i))) for i in range(4)))
        fill_writer_disk(actor)
        failed = await asyncio.gather(
            *(actor.call(Submit(request(100 + i))) for i in range(WORKERS)),
            return_exceptions=True,
        )
        free_writer_disk(actor)
        after = await asyncio.gather(*(actor.call(Submit(request(200 + i))) for i in range(4)))
        feed = await actor.call(EventFeed(after=actor.service.feed.floor, limit=5000))
        return before, failed, after, feed

    before, failed, after, feed = run(actor, work())
    assert all(isinstance(err, JournalUnavailable) for err in failed), failed
    message = str(failed[0])
    assert "could not be written (database or disk is full)" in message
    assert "nothing was changed, retry later" in message
    acknowledged = {v.id for v in before + after}
    assert journaled(path) == dict.fromkeys(acknowledged, "queued")
    assert set(actor.service.core.jobs) == acknowledged  # memory was read back: none kept
    published = {event.job_id for event in feed.events}
    assert published == acknowledged  # no event for a change that never became durable


def test_a_job_event_is_published_only_once_its_change_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path, journal_group_window_s=0.05)

    async def work() -> tuple[int, int]:
        actor._start_ticker()
        # Two at once: their batch waits the window (a lone call would commit at once).
        submits = asyncio.gather(*(actor.call(Submit(request(i))) for i in (1, 2)))
        await asyncio.sleep(0.01)  # the submits ran; their batch waits for the window
        in_flight = len(actor.service.event_feed(actor.service.feed.floor, 100).events)
        await submits
        return in_flight, len(actor.service.event_feed(actor.service.feed.floor, 100).events)

    in_flight, landed = run(actor, work())
    assert (in_flight, landed) == (0, 2)


@pytest.mark.parametrize("window_s", [0.0, 0.001])
def test_pulls_alone_are_grouped_too(tmp_path: Path, window_s: float) -> None:
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path, journal_group_window_s=window_s)

    async def work() -> list[Assignment | None]:
        await actor.call(SubmitMany(tuple(request(i) for i in range(WORKERS))))
        return await asyncio.gather(
            *(actor.call(Pull(f"w{i}", "local", ("luma-tiny",))) for i in range(WORKERS))
        )

    leases = run(actor, work())
    assert all(lease is not None for lease in leases)
    assert journaled(path) == {lease.job_id: "leased" for lease in leases if lease is not None}
    commits = actor._commits
    assert commits is not None and commits.batches < WORKERS


def read_by_another_process(path: Path) -> set[str]:
    """The job ids a reader in another process sees; its connection closes after, which in
    WAL mode checkpoints and removes the ``-wal`` file if that reader believes itself the last
    connection to the database."""
    code = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "print(' '.join(r[0] for r in db.execute('SELECT id FROM jobs'))); db.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


def test_group_commits_stay_visible_to_readers_in_other_processes(tmp_path: Path) -> None:
    """The group writer opens a second connection in the actor's process. Opening and closing
    the database file there by hand (as creating a private file did) drops every SQLite lock
    the process holds on it (POSIX locks belong to the process), so a reader elsewhere that
    closed last removed the WAL, and later commits went to the unlinked file: acknowledged,
    yet invisible and lost on restart, as the live actor showed."""
    path = tmp_path / "journal.sqlite"
    actor = actor_on(path)

    async def submit_read_submit() -> tuple[str, set[str], str, set[str]]:
        first = await actor.call(Submit(request(1)))
        seen_first = await asyncio.to_thread(read_by_another_process, path)
        second = await actor.call(Submit(request(2)))
        seen_both = await asyncio.to_thread(read_by_another_process, path)
        return first.id, seen_first, second.id, seen_both

    first, seen_first, second, seen_both = run(actor, submit_read_submit())
    assert actor.service.journal.pending is not None  # group mode
    assert first in seen_first
    assert {first, second} <= seen_both, (first, second, seen_both)
