"""The scheduler actor's log level: INFO leaves out the routine line of each job (the journal
records every job's history); ``log_level: DEBUG`` brings them back; a bad level is refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import ConfigError
from luma_ray.runtime.actor import ActorSettings, SchedulerActor
from luma_ray.scheduler.protocol import Complete, Pull, Submit, SubmitRequest
from tests.unit.test_group_commit import CONFIG, run
from tests.unit.test_service import LIMITS

ROUTINE = ("submitted", "leased to", "generation done")


@pytest.fixture(autouse=True)
def _restore_level() -> Iterator[None]:
    logger = logging.getLogger("luma_ray")
    level = logger.level
    yield
    logger.setLevel(level)


def one_job(tmp_path: Path, caplog: pytest.LogCaptureFixture, **config: object) -> list[str]:
    """Submit, lease and complete one job; the scheduler's log lines at any level."""
    actor = SchedulerActor(
        ActorSettings(
            config={**CONFIG, **config}, journal_path=str(tmp_path / "j.sqlite"), models=LIMITS
        )
    )

    async def work() -> None:
        await actor.call(Submit(SubmitRequest(prompt="a cat", steps=2)))
        lease = await actor.call(Pull("w1", "local", ("luma-tiny",)))
        await actor.call(Complete(lease.job_id, lease.token, {"video": "file:///x.mp4"}))

    caplog.set_level(logging.DEBUG)
    run(actor, work())
    return [r.getMessage() for r in caplog.records if r.name.startswith("luma_ray.scheduler")]


def test_info_leaves_out_each_jobs_routine_lines(tmp_path: Path, caplog) -> None:
    lines = one_job(tmp_path, caplog)
    assert not [line for line in lines if any(word in line for word in ROUTINE)]


def test_debug_logs_each_step_of_a_job(tmp_path: Path, caplog) -> None:
    lines = one_job(tmp_path, caplog, log_level="DEBUG")
    for word in ROUTINE:
        assert any(word in line for line in lines), (word, lines)


def test_an_unknown_level_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="log_level"):
        parse_config({"log_level": "LOUD"})
