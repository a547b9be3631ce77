"""kill -9 of the scheduler in the middle of group commits loses no acknowledged change.

A child process runs the scheduler actor's class (no Ray) on its event loop, with group commit
on and a real SQLite journal, and 64 concurrent callers: submitters one job per call, and
workers that pull and then commit each job and lease the next with ``CompleteAndPull``. Each
caller reports an answer to this process only after the actor answered it. The test kills the
child with SIGKILL while batches are being committed (three times, each child starting from the
journal the last one left, as Ray restarts the actor), reopens the journal and checks that
every acknowledged change is there, and that nothing is half-applied (the file is consistent,
every finished job has its results, no lease token beyond the journaled high-water mark).
A killed process leaves the OS page cache behind, so this checks that answers wait for their
batch and that batches are atomic, not the fsync itself (``synchronous=FULL`` does that, for a
power failure); ``test_group_commit.py`` checks the ordering deterministically, with a batch
that fails.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path

from luma_ray.scheduler.journal import Journal
from tests.unit.test_service import LIMITS

SUBMITTERS = 16
WORKERS = 48
KILL_AFTER_ACKS = 300
ROUNDS = 3
DEADLINE_S = 60.0


def _child(path: str, round_: int, acks: Connection) -> None:
    """The scheduler under load; sends ("submitted", id), ("leased", id, token) and
    ("completed", id) for each answer it got, after it got it."""
    from luma_ray.runtime.actor import ActorSettings, SchedulerActor
    from luma_ray.scheduler.protocol import (
        CompleteAndPull,
        Pull,
        Submit,
        SubmitMany,
        SubmitRequest,
    )

    config = {"tenant_limits": {"free": {"max_queued": None}}, "journal_group_window_s": 0.001}
    actor = SchedulerActor(ActorSettings(config=config, journal_path=path, models=LIMITS))
    models = ("luma-tiny",)

    async def submitter(n: int) -> None:
        for i in range(1_000_000):
            view = await actor.call(Submit(SubmitRequest(prompt=f"s{round_}-{n}-{i}", steps=2)))
            acks.send(("submitted", view.id))

    async def worker(name: str) -> None:
        while True:
            lease = await actor.call(Pull(name, "local", models, wait_s=1.0))
            while lease is not None:
                acks.send(("leased", lease.job_id, lease.token))
                uris = {"video": f"file:///{lease.job_id}/{lease.token}.mp4"}
                op = CompleteAndPull(lease.job_id, lease.token, uris, name, "local", models)
                answer = await actor.call(op)
                acks.send(("completed", answer.completed.id))
                lease = answer.assignment

    async def main() -> None:
        first = tuple(SubmitRequest(prompt=f"first {round_}-{i}", steps=2) for i in range(WORKERS))
        for view in await actor.call(SubmitMany(first)):
            acks.send(("submitted", view.id))
        assert actor._publisher is not None
        actor._publisher.cancel()  # Ray's metrics: not here
        await asyncio.gather(
            *(submitter(n) for n in range(SUBMITTERS)),
            *(worker(f"w{round_}-{n}") for n in range(WORKERS)),
        )

    asyncio.run(main())


def _acknowledged(acks: Connection, child: multiprocessing.process.BaseProcess) -> list[tuple]:
    """Read answers until enough arrived, kill the child with SIGKILL, then read the rest
    it sent before it died."""
    got: list[tuple] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < KILL_AFTER_ACKS and time.monotonic() < deadline:
        if acks.poll(0.5):
            got.append(acks.recv())
        assert child.is_alive() or acks.poll(), f"the child died first ({child.exitcode})"
    assert len(got) >= KILL_AFTER_ACKS, f"only {len(got)} answers in {DEADLINE_S} s"
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    while acks.poll(0.2):
        try:
            got.append(acks.recv())
        except EOFError:
            break
    return got


def test_kill_9_during_group_commits_loses_no_acknowledged_change(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    spawn = multiprocessing.get_context("spawn")
    acked: list[tuple] = []
    for round_ in range(ROUNDS):  # each round restarts on the journal the last one left
        receive, send = spawn.Pipe(duplex=False)
        child = spawn.Process(target=_child, args=(str(path), round_, send), daemon=True)
        child.start()
        send.close()
        try:
            acked += _acknowledged(receive, child)
        finally:
            if child.is_alive():
                os.kill(child.pid or 0, signal.SIGKILL)
        assert child.exitcode == -signal.SIGKILL

    journal = Journal(path)  # opens, and recovers the WAL, as a restarted actor would
    try:
        assert journal._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        jobs, next_token = journal.load()
    finally:
        journal.close()
    by_id = {job.id: job for job in jobs}
    kinds = {kind for kind, *_ in acked}
    assert kinds == {"submitted", "leased", "completed"}, kinds

    for kind, job_id, *rest in acked:
        job = by_id.get(job_id)
        assert job is not None, f"acknowledged {kind} of {job_id} was lost"
        if kind == "completed":
            assert job.state.value == "succeeded", (job_id, job.state)
        elif kind == "leased":
            assert job.state.value in ("leased", "running", "succeeded"), (job_id, job.state)
            if job.lease is not None:
                assert job.lease.token == rest[0]
    for job in jobs:  # nothing half-applied
        if job.state.value == "succeeded":
            assert job.result_uris and job.finished_at_s is not None
        if job.lease is not None:
            assert job.lease.token <= next_token
