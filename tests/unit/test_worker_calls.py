"""A worker's batched calls over the real service and a real SQLite journal (fake clock, no
Ray): ``CompleteAndPull`` (commit a result and lease the next job in one call and one journal
write) and ``Heartbeats`` (several leases renewed in one call, one answer each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.errors import JournalUnavailable, StaleLease
from luma_ray.jobs import JobState
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Assignment,
    Beat,
    CompleteAndPull,
    CompletedAndPulled,
    HeartbeatReply,
    Heartbeats,
    LeaseRefused,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService
from tests.unit.test_journal_full import (
    fill_disk,
    free_disk,
    submit_until_full,
    use_up_the_last_page,
)
from tests.unit.test_service import Clock, service

MODELS = ("luma-tiny",)


def queued(svc: SchedulerService, n: int) -> list[str]:
    return [svc.submit(SubmitRequest(prompt=f"p{i}", tier="free", seed=i)).id for i in range(n)]


def lease(svc: SchedulerService, worker: str = "w1") -> Assignment:
    got = svc.pull(worker, "local", MODELS)
    assert got is not None
    return got


def done_and_next(a: Assignment, worker: str = "w1", **kw: object) -> CompleteAndPull:
    uris = {"video": f"file:///r/{a.job_id}/{a.token}/video.mp4"}
    return CompleteAndPull(a.job_id, a.token, uris, worker, "local", MODELS, **kw)  # type: ignore[arg-type]


def test_complete_and_pull_commits_the_result_and_leases_the_next_job_in_one_call(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    ids = queued(svc, 2)
    first = lease(svc)
    clock.now += 3
    calls_before = sum(svc.calls.values())
    answer = svc.call(done_and_next(first, version="v2"))
    assert sum(svc.calls.values()) == calls_before + 1
    assert isinstance(answer, CompletedAndPulled) and answer.refused is None
    assert answer.completed is not None and answer.completed.id == ids[0]
    assert answer.completed.state is JobState.SUCCEEDED
    assert answer.completed.model_version == "v2"
    assert answer.assignment is not None and answer.assignment.job_id == ids[1]
    assert answer.assignment.token > first.token
    assert svc.get(ids[1]).state is JobState.LEASED


def test_nothing_left_to_lease_answers_the_commit_and_no_assignment(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    ids = queued(svc, 1)
    answer = svc.call(done_and_next(lease(svc)))
    assert answer.completed is not None and answer.completed.id == ids[0]
    assert answer.assignment is None and answer.refused is None


def test_a_stale_result_is_refused_in_the_answer_and_the_pull_still_runs(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, lease_ttl_s=10)
    ids = queued(svc, 2)
    first = lease(svc)
    clock.now += 11
    svc.tick()  # the lease lapsed: the job is queued again, the old token is stale
    answer = svc.call(done_and_next(first))
    assert answer.completed is None
    assert answer.refused is not None and answer.refused.code == StaleLease.code
    assert "drop this result" in answer.refused.message
    # The worker is free either way: it leases the oldest queued job (its own old one).
    assert answer.assignment is not None and answer.assignment.job_id == ids[0]
    assert answer.assignment.token > first.token
    assert svc.get(ids[0]).state is JobState.LEASED and not svc.get(ids[0]).result_uris


def test_a_deleted_job_s_result_is_refused_as_not_found(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    ids = queued(svc, 2)
    first = lease(svc)
    svc.delete(ids[0])
    answer = svc.call(done_and_next(first))
    assert answer.refused is not None and answer.refused.code == "not_found"
    assert answer.completed is None
    assert answer.assignment is not None and answer.assignment.job_id == ids[1]


def test_the_same_call_sent_again_is_answered_as_committed_not_refused(tmp_path: Path) -> None:
    """A call whose answer was lost is sent again by the handle: the result that already
    landed is not refused (the worker would delete the video of a succeeded job)."""
    svc = service(tmp_path / "j.sqlite", Clock())
    ids = queued(svc, 3)
    first = lease(svc)
    op = done_and_next(first)
    svc.call(op)
    again = svc.call(op)
    assert again.refused is None
    assert again.completed is not None and again.completed.id == ids[0]
    assert again.completed.state is JobState.SUCCEEDED
    assert again.assignment is not None and again.assignment.job_id == ids[2]


def test_the_commit_and_the_lease_are_journaled_before_the_answer(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    svc = service(db, Clock())
    ids = queued(svc, 2)
    answer = svc.call(done_and_next(lease(svc)))
    assert answer.assignment is not None
    # Another connection to the same file (as a restarted actor would open) sees both.
    reopened = Journal(db)
    done, leased = reopened.get(ids[0]), reopened.get(ids[1])
    assert done is not None and done.state is JobState.SUCCEEDED
    assert dict(done.result_uris) == {"video": f"file:///r/{ids[0]}/1/video.mp4"}
    assert leased is not None and leased.state is JobState.LEASED
    assert leased.lease is not None and leased.lease.token == answer.assignment.token
    restarted = service(db, Clock())
    assert restarted.get(ids[0]).state is JobState.SUCCEEDED


def test_a_failed_journal_write_keeps_neither_and_the_call_can_be_sent_again(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    ids = queued(svc, 2)
    first = lease(svc)
    fill_disk(svc)
    submit_until_full(svc, clock)
    use_up_the_last_page(svc)
    # Results with long URIs: the commit needs more room than the full journal has left.
    uris = {f"video{k}": f"file:///data/results/{'x' * 200}/{k}.mp4" for k in range(3)}
    op = CompleteAndPull(first.job_id, first.token, uris, "w1", "local", MODELS)
    with pytest.raises(JournalUnavailable):
        svc.call(op)
    free_disk(svc)
    assert svc.get(ids[0]).state is JobState.LEASED  # memory re-read from the journal
    assert svc.get(ids[1]).state is JobState.QUEUED
    answer = svc.call(op)
    assert answer.completed is not None and answer.completed.state is JobState.SUCCEEDED
    assert answer.assignment is not None and answer.assignment.job_id == ids[1]


def test_heartbeats_renew_several_leases_in_one_call_with_one_answer_each(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, lease_ttl_s=10)
    ids = queued(svc, 3)
    a, b, c = lease(svc, "w1"), lease(svc, "w1"), lease(svc, "w2")
    svc.cancel(ids[2])
    clock.now += 6
    calls_before = sum(svc.calls.values())
    beats = (
        Beat(a.job_id, a.token, 2, 8),
        Beat(b.job_id, b.token + 99, 1, 8),  # not its token
        Beat(c.job_id, c.token, 1, 8),  # cancelled
        Beat("gen_nosuchjob", 1),
    )
    answers = svc.call(Heartbeats(beats))
    assert sum(svc.calls.values()) == calls_before + 1
    assert len(answers) == 4
    ok, stale, cancelled, missing = answers
    assert isinstance(ok, HeartbeatReply) and not ok.cancel
    assert ok.lease_expires_at_s == clock.now + 10
    assert isinstance(stale, LeaseRefused) and stale.code == "stale_lease"
    assert isinstance(cancelled, HeartbeatReply) and cancelled.cancel
    assert isinstance(missing, LeaseRefused) and missing.code == "not_found"
    assert svc.get(a.job_id).state is JobState.RUNNING
    assert svc.get(a.job_id).progress.step == 2
    assert svc.get(b.job_id).state is JobState.LEASED  # the bad beat renewed nothing
    clock.now += 6  # past b's lease (never renewed), within a's renewed one
    svc.tick()
    assert svc.get(a.job_id).state is JobState.RUNNING
    assert svc.get(b.job_id).state is JobState.QUEUED
    assert Journal(tmp_path / "j.sqlite").get(a.job_id).state is JobState.RUNNING  # type: ignore[union-attr]
