"""A worker's final reports wait out a journal that cannot be written for a while (a full
disk), instead of letting the lease lapse and the job run again."""

from __future__ import annotations

from typing import Any

import pytest

from luma_ray.errors import JournalUnavailable
from luma_ray.jobs import GenerationRequest
from luma_ray.scheduler.protocol import Assignment, Complete, Op
from luma_ray.workers.adapters import SchedulerLeases

LEASE = Assignment("gen_x", 7, 0.0, "luma-tiny", GenerationRequest(prompt="p"), 1, 0.0)


class FullThenFree:
    """A scheduler port whose journal refuses ``refusals`` writes, then accepts."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.landed: list[Op[Any]] = []

    def call(self, op: Op[Any]) -> Any:
        if self.refusals:
            self.refusals -= 1
            raise JournalUnavailable("the journal /j.sqlite could not be written (disk full)")
        self.landed.append(op)
        return None


def test_a_completion_lands_once_the_journal_takes_writes_again() -> None:
    port = FullThenFree(refusals=2)
    SchedulerLeases(port, "w1", "local", ["luma-tiny"], report_wait_s=5.0).complete(
        LEASE, {"video": "file:///v.mp4"}
    )
    assert port.landed == [Complete("gen_x", 7, {"video": "file:///v.mp4"})]


def test_a_journal_that_stays_full_is_reported_after_the_wait() -> None:
    port = FullThenFree(refusals=10**6)
    leases = SchedulerLeases(port, "w1", "local", ["luma-tiny"], report_wait_s=0.3)
    with pytest.raises(JournalUnavailable, match="disk full"):
        leases.fail(LEASE, "model_error", "the model failed", retryable=True)
    assert port.landed == []
