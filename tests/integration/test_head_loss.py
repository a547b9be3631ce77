"""Head-node loss (issue 17, item 5): the whole Ray cluster is killed mid-load, started again on
the same journal, and every accepted job finishes exactly once.

Its own cluster, not the session's: as an operator would, in subprocesses with their own
``RAY_TMPDIR``, Ray token, data dir and free ports. A Ray head (``ray start --head --block``,
every port chosen free here), then ``luma-ray up --detach`` joins it with the journal on a
volume of its own (``--journal``, apart from the data dir), one ``luma-tiny`` replica, and a
short lease period. Three jobs go in over the HTTP API, four more once one has finished (so
the kill finds jobs in every state however fast the machine runs them); once the journal shows
one leased or running and two still queued, every process of the cluster (the head's process
session and its descendants: GCS, raylet, the scheduler actor, the workers, Serve) is frozen
with SIGSTOP at once, so none finishes a job while the others die, then killed with SIGKILL;
nothing shuts down cleanly, and the test checks that no process of it is left. A new head on
the same temp folder and ``luma-ray up --detach`` with the same options must finish them all.

"Exactly once" is judged on the journal (the test reads the SQLite file itself) and the result
store: every accepted job is in the journal once and ends ``succeeded`` with one result; a job
finished before the kill keeps the result it had (it is not run again); a job that was leased
when the cluster died ran again (its attempt count went up) and its committed result is that
later attempt's, under its own fencing token; nothing beyond the committed attempt's files
and, for re-run jobs only, files of the attempt that died, is in its results folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest

from .conftest import free_port, wait_for
from .own_cluster import kill_hard, own_head, strays

if TYPE_CHECKING:
    from luma_ray.jobs.model import Job
    from luma_ray.serving_cli.head import Head

REPO = Path(__file__).resolve().parents[2]
FIRST_JOBS = 3
MORE_JOBS = 4
STEPS = 8
LEASE_TTL_S = 15.0
IN_FLIGHT = {"leased", "running"}

pytestmark = pytest.mark.timeout(600)


def _wait(predicate: Callable[[], bool], seen: list[list[str]], what: str) -> None:
    try:
        wait_for(predicate, timeout_s=240, what=what)
    except AssertionError as err:
        raise AssertionError(f"{err}; the journal's states: {seen[0]}") from None


def _run(args: list[str], env: dict[str, str], timeout_s: float) -> str:
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _journal(path: Path) -> dict[str, Job]:
    """Every job in the journal file, by id (read-only; the scheduler may be writing)."""
    from luma_ray.jobs.codec import job_from_json

    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT id, record FROM jobs ORDER BY id").fetchall()
    finally:
        db.close()
    return {job_id: job_from_json(record) for job_id, record in rows}


def _states(jobs: dict[str, Job]) -> dict[str, str]:
    return {job_id: job.state.value for job_id, job in jobs.items()}


def _token_of(uri: str) -> str:
    """``file:///.../results/<job>/<token>/video.mp4`` -> ``<token>``."""
    return Path(urlparse(uri).path).parent.name


def test_a_cluster_killed_mid_load_finishes_every_accepted_job_once_on_restart() -> None:
    from luma_ray.client.http import LumaClient

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="luma-headloss-", dir="/tmp"))
    data_dir, journal = root / "data", root / "volume" / "journal.sqlite"
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    (root / "ray").mkdir()
    config = root / "scheduler.yaml"
    config.write_text(f"lease_ttl_s: {LEASE_TTL_S}\n")
    env = {
        **os.environ,
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    luma = [sys.executable, "-m", "luma_ray.cli"]
    options = ["--data-dir", str(data_dir), "--journal", str(journal), "--config", str(config)]
    options += ["--port", str(port)]
    heads: list[Head] = []
    try:
        heads.append(own_head(env, root / "head-1.log")[0])
        up = _run(
            [*luma, "up", "--detach", *options], {**env, "RAY_ADDRESS": heads[0].address}, 400
        )
        assert str(journal) in up, up
        keys = ["keys", "create", "--data-dir", str(data_dir), "--tenant", "acme", "--tier", "api"]
        created = _run([*luma, *keys], env, 60)
        key = created.strip().splitlines()[-1]
        seen: list[list[str]] = [[]]

        def journal_shows(succeeded: int, in_flight: int, queued: int) -> Callable[[], bool]:
            def check() -> bool:
                states = seen[0] = sorted(_states(_journal(journal)).values())
                return (
                    states.count("succeeded") >= succeeded
                    and sum(s in IN_FLIGHT for s in states) >= in_flight
                    and states.count("queued") >= queued
                )

            return check

        def submit(client: LumaClient, takes: range) -> list[str]:
            return [
                client.create(f"a fox, take {i}", frames=8, size="64x64", steps=STEPS, seed=i).id
                for i in takes
            ]

        # The first jobs run through; once one has finished, more arrive, and the cluster dies
        # while one of those runs and the others wait (however fast the machine is today).
        with LumaClient(f"http://127.0.0.1:{port}", key, timeout_s=60.0) as client:
            accepted = submit(client, range(FIRST_JOBS))
            _wait(journal_shows(1, 0, 0), seen, "a job to finish")
            accepted += submit(client, range(FIRST_JOBS, FIRST_JOBS + MORE_JOBS))
            _wait(journal_shows(1, 1, 2), seen, "a job leased or running and two queued")
        kill_hard(heads[0].pid)
        assert not strays(root), "a process of the killed cluster still runs"
        before = _journal(journal)  # what survived the head: the journal on its volume
        assert sorted(before) == sorted(accepted), "an accepted job is missing from the journal"
        states = _states(before)
        finished = {j for j, s in states.items() if s == "succeeded"}
        in_flight = {j for j, s in states.items() if s in IN_FLIGHT}
        assert finished and in_flight and "queued" in states.values(), states
        print(f"at the kill: {sorted(states.values())}")

        heads.append(own_head(env, root / "head-2.log")[0])
        _run([*luma, "up", "--detach", *options], {**env, "RAY_ADDRESS": heads[1].address}, 400)

        def all_done() -> dict[str, Job] | None:
            jobs = _journal(journal)
            done = all(job.state.terminal for job in jobs.values())
            return jobs if done else None

        after = wait_for(all_done, timeout_s=300, what="every accepted job to finish")
        _check_exactly_once(accepted, before, after, data_dir, finished, in_flight)
    finally:
        for head in heads:
            kill_hard(head.pid)
        for pid in strays(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    print(f"head-loss test: {time.monotonic() - started:.0f} s")


def _tries(job: Job) -> dict[str | None, int]:
    """Attempts per stage: the finished stages', and the current one's."""
    tries: dict[str | None, int] = {stage: n for stage, n in job.stage_attempts.items()}
    tries.setdefault(job.stage, job.attempts)
    return tries


STAGE_FILES = {"generate": "video", "thumbnail": "thumbnail", None: "video"}
"""The result each stage's attempt writes under its fencing token (caption writes none)."""


def _check_exactly_once(
    accepted: list[str],
    before: dict[str, Job],
    after: dict[str, Job],
    data_dir: Path,
    finished: set[str],
    in_flight: set[str],
) -> None:
    """One final result per accepted job; only jobs whose lease died with the cluster ran a
    stage again, and their committed files are the later attempt's."""
    assert sorted(after) == sorted(accepted)
    assert set(_states(after).values()) == {"succeeded"}, _states(after)
    for job_id, job in after.items():
        old = before[job_id]
        uris = job.result_uris
        committed = {_token_of(uri) for uri in uris.values()}
        assert "video" in uris and all(Path(urlparse(u).path).is_file() for u in uris.values())
        folder = Path(urlparse(uris["video"]).path).parents[1]  # <store>/results/<job id>/
        assert folder.name == job_id and data_dir.resolve() in folder.parents, folder
        written = {p.name for p in folder.iterdir() if p.is_dir()}
        tries = _tries(job)
        assert all(1 <= n <= 3 for n in tries.values()), (job_id, tries)
        if job_id in finished:  # finished before the kill: kept as it was, not run again
            assert uris == old.result_uris, job_id
            assert job.finished_at_s == old.finished_at_s
            assert tries == _tries(old), (job_id, tries)
            assert written == committed, (job_id, written, committed)
        elif job_id in in_flight:  # its lease died with the cluster: that stage ran again
            stage, lease = old.stage, old.lease
            assert lease is not None, (job_id, old.state)
            assert tries[stage] > old.attempts, (job_id, stage, tries, old.attempts)
            if STAGE_FILES.get(stage) in uris:
                assert int(_token_of(uris[STAGE_FILES[stage]])) > lease.token, (job_id, lease)
            # the dead attempt may have stored files it never committed; nothing else
            assert committed <= written <= committed | {str(lease.token)}, (job_id, written)
        else:  # queued when the cluster died: ran once per stage
            assert written == committed, (job_id, written, committed)
