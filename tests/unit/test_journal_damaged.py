"""A damaged journal stops the scheduler with one line naming the file, the row and the fix,
and the actor stays up to say so instead of being restarted for ever (no Ray: the actor class
is built directly)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from luma_ray.errors import ConfigError, JournalDamaged, JournalUnavailable, Unavailable
from luma_ray.runtime.actor import ActorSettings, SchedulerActor
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import GetJob, ListJobs, Ping, Submit, SubmitRequest
from tests.unit.test_service import LIMITS, Clock, service


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a journal\n" * 400)
    return path


def truncated_row(path: Path, clock: Clock | None = None) -> tuple[Path, str, str]:
    """A valid SQLite journal with two jobs, the second's JSON cut in half: its path, the good
    job's id and the damaged job's id."""
    clock = clock or Clock()
    svc = service(path, clock)
    good = svc.submit(SubmitRequest(prompt="good")).id
    clock.now += 1
    bad = svc.submit(SubmitRequest(prompt="bad")).id
    svc.journal.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE jobs SET record = substr(record, 1, 40) WHERE id = ?", (bad,))
    db.commit()
    db.close()
    return path, good, bad


def assert_one_line_with_the_fix(message: str, path: Path) -> None:
    assert "\n" not in message
    assert str(path) in message
    assert "damaged" in message
    assert "restore it from a backup" in message and "move it aside" in message


def test_a_file_of_garbage_is_one_error_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = garbage(tmp_path / "journal.sqlite")
    with pytest.raises(JournalDamaged) as caught:
        Journal(path)
    assert isinstance(caught.value, ConfigError) and caught.value.code == "journal_damaged"
    assert_one_line_with_the_fix(str(caught.value), path)


def test_a_truncated_row_is_one_error_naming_the_row(tmp_path: Path) -> None:
    path, _, bad = truncated_row(tmp_path / "journal.sqlite")
    with pytest.raises(JournalDamaged) as caught:
        service(path, Clock())
    message = str(caught.value)
    assert_one_line_with_the_fix(message, path)
    assert f"row {bad}" in message


def test_a_damaged_row_read_while_running_is_refused_for_that_job_only(tmp_path: Path) -> None:
    """Finished jobs are read from the journal when asked for: a damaged one answers 503 with
    the same line, and the others still answer."""
    clock = Clock()
    path = tmp_path / "journal.sqlite"
    svc = service(path, clock)
    good = svc.submit(SubmitRequest(prompt="good")).id
    journal = Journal(path)
    journal._db.execute("UPDATE jobs SET record = '{\"v\":1,' WHERE id = ?", (good,))
    with pytest.raises(JournalUnavailable, match=f"row {good}"):
        journal.get(good)
    with pytest.raises(JournalUnavailable, match=f"row {good}"):
        journal.page(None, None, 10, None, True)


def test_a_damaged_page_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    svc = service(path, Clock())
    for i in range(50):
        svc.submit(SubmitRequest(prompt=f"p{i}" * 50))
    svc.journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    svc.journal.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 5 * page] = b"\xff" * (3 * page)  # three pages of the tables overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(JournalDamaged) as caught:
        service(path, Clock())
    assert_one_line_with_the_fix(str(caught.value), path)


# ---- the actor ---------------------------------------------------------------------------


def settings(path: Path) -> ActorSettings:
    return ActorSettings(config={}, journal_path=str(path), models=LIMITS)


@pytest.mark.parametrize("damage", ["garbage", "truncated row"])
def test_the_actor_stays_up_and_answers_every_call_with_the_one_line(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite"
    if damage == "garbage":
        garbage(path)
    else:
        truncated_row(path)
    with caplog.at_level(logging.ERROR):
        actor = SchedulerActor(settings(path))  # no crash: Ray would restart it for ever
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert_one_line_with_the_fix(logged[0], path)

    async def ask() -> list[BaseException]:
        ops = [Ping(), Submit(SubmitRequest(prompt="p")), GetJob("gen_x"), ListJobs()]
        answers = await asyncio.gather(*(actor.call(op) for op in ops), return_exceptions=True)
        return [a for a in answers if isinstance(a, BaseException)]

    errors = asyncio.run(ask())
    assert len(errors) == 4
    for err in errors:
        assert isinstance(err, Unavailable) and err.code == "journal_unavailable"
        assert_one_line_with_the_fix(str(err), path)
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1  # logged once


def test_the_actor_starts_on_a_healthy_journal(tmp_path: Path) -> None:
    actor = SchedulerActor(settings(tmp_path / "journal.sqlite"))

    async def ask() -> str:
        answer: str = await actor.call(Ping())
        for task in (actor._ticker, actor._publisher):
            assert task is not None
            task.cancel()
        return answer

    assert asyncio.run(ask()) == "ok"
