"""Parking on the scheduler's side: the ``Park`` op requeues a job with its place, progress and
sampler state (no attempt counted, journaled), the next lease carries the state, and the
minimal trigger marks a lower-tier running job when a queued job would miss its SLO. The real
service over a real SQLite journal, with a fake clock."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, StaleLease
from luma_ray.jobs import JobId
from luma_ray.jobs.codec import job_from_json
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.parking import PARK_MIN_GAP_S, Runner, Waiter, park_when
from luma_ray.scheduler.protocol import Assignment, Heartbeat, Park, Pull, SubmitRequest
from luma_ray.scheduler.service import SchedulerService

LIMITS = {"luma-tiny": ModelLimits(64, 128, 128, 50, 8, 8, 8)}
STATE = "memory://results/{job}/parked/{token}/v1/state.safetensors"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, enabled: bool = True) -> SchedulerService:
    config = parse_config({"preemption": {"enabled": enabled}})
    return SchedulerService(config, Journal(path), LIMITS, clock)


def lease(svc: SchedulerService, worker: str = "w1") -> Assignment:
    got = svc.call(Pull(worker, "local", ("luma-tiny",)))
    assert got is not None
    return got


def test_park_requeues_with_place_progress_and_state_and_no_attempt(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock)
    first = svc.submit(SubmitRequest(prompt="a long take", tier="free", steps=40)).id
    clock.now += 1
    later = svc.submit(SubmitRequest(prompt="a later take", tier="free", steps=40)).id
    a = lease(svc)
    assert a.job_id == first and a.resume_uri is None
    svc.call(Heartbeat(a.job_id, a.token, 12, 40))
    clock.now += 30
    uri = STATE.format(job=a.job_id, token=a.token)
    view = svc.call(Park(a.job_id, a.token, 12, 40, uri))
    assert view.state == "queued" and view.attempts == 1 and view.preemptions == 1
    assert (view.progress.phase, view.progress.step, view.progress.total) == ("parked", 12, 40)
    assert view.queue_position == 0  # ahead of the job submitted after it: its place by age
    assert svc.events(first)[-1].reason == "parked at step 12 of 40 by its worker"
    with pytest.raises(StaleLease):  # the lease ended with the park
        svc.call(Heartbeat(a.job_id, a.token, 13, 40))
    # The journal has it all: a restarted scheduler resumes it from the same state.
    again = service(db, clock)
    b = lease(again, "w2")
    assert (b.job_id, b.resume_uri, b.attempts) == (first, uri, 1)
    assert again.get(first).preemptions == 1
    assert lease(again, "w3").job_id == later
    (record,) = sqlite3.connect(db).execute("SELECT record FROM jobs WHERE id = ?", (first,))
    job = job_from_json(record[0])
    assert (job.resume_uri, job.preemptions, job.parked_at_s) == (uri, 1, clock.now)


def test_a_park_with_a_stale_token_or_a_bad_step_changes_nothing(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    job = svc.submit(SubmitRequest(prompt="a take", tier="free", steps=10)).id
    a = lease(svc)
    with pytest.raises(StaleLease):
        svc.call(Park(a.job_id, a.token + 1, 3, 10, "memory://x"))
    for step in (0, 11):
        with pytest.raises(InvalidRequest, match="report a step in 1..total"):
            svc.call(Park(a.job_id, a.token, step, 10, "memory://x"))
    assert svc.get(job).state == "leased" and svc.get(job).preemptions == 0


def running(svc: SchedulerService, clock: Clock, worker: str, pace_s: float) -> Assignment:
    """Lease the next job to ``worker`` and beat twice, ``pace_s`` apart (steps 1 and 2)."""
    a = lease(svc, worker)
    svc.call(Heartbeat(a.job_id, a.token, 1, a.request.steps))
    clock.now += pace_s
    svc.call(Heartbeat(a.job_id, a.token, 2, a.request.steps))
    return a


def beat(svc: SchedulerService, a: Assignment, step: int = 2) -> bool:
    return svc.call(Heartbeat(a.job_id, a.token, step, a.request.steps)).park


def test_an_api_job_that_would_miss_its_slo_parks_the_free_job(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a long free take", tier="free", steps=50))
    free = running(svc, clock, "w1", pace_s=10.0)  # 48 steps of 10 s left: 480 s
    urgent = svc.submit(SubmitRequest(prompt="now please", tier="api", steps=4)).id
    assert not beat(svc, free)  # just queued: an idle worker may still take it
    clock.now += 2
    svc.tick()  # the timer looks again: the api job is stuck behind a job with 478 s left
    assert beat(svc, free)
    view = svc.call(Park(free.job_id, free.token, 3, 50, "memory://s"))
    assert view.preemptions == 1 and view.attempts == 1
    nxt = lease(svc)
    assert nxt.job_id == urgent  # the freed worker takes the api job
    svc.complete(nxt.job_id, nxt.token, {"video": "memory://v"})
    resumed = lease(svc)
    assert (resumed.job_id, resumed.resume_uri) == (free.job_id, "memory://s")


def test_nothing_is_parked_unless_preemption_is_enabled(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, enabled=False)  # the default
    svc.submit(SubmitRequest(prompt="a long free take", tier="free", steps=50))
    free = running(svc, clock, "w1", pace_s=10.0)
    svc.submit(SubmitRequest(prompt="now please", tier="api", steps=4))
    clock.now += 2
    svc.tick()
    assert not beat(svc, free)


def test_no_park_when_a_worker_frees_in_time_or_the_runner_is_not_lower(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a short free take", tier="free", steps=10))
    short = running(svc, clock, "w1", pace_s=5.0)  # 8 steps of 5 s left: 40 s < 120 s
    svc.submit(SubmitRequest(prompt="api", tier="api"))
    clock.now += 2
    svc.tick()
    assert not beat(svc, short)
    # An api job running long does not park for another api job.
    svc2 = service(tmp_path / "k.sqlite", clock)
    svc2.submit(SubmitRequest(prompt="a long api take", tier="api", steps=50))
    long_api = running(svc2, clock, "w1", pace_s=10.0)
    svc2.submit(SubmitRequest(prompt="api too", tier="api"))
    clock.now += 2
    svc2.tick()
    assert not beat(svc2, long_api)


def test_a_parked_job_is_not_parked_again_too_soon(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a long free take", tier="free", steps=50))
    free = running(svc, clock, "w1", pace_s=10.0)
    svc.submit(SubmitRequest(prompt="api", tier="api"))
    clock.now += 2
    svc.tick()
    svc.call(Park(free.job_id, free.token, 2, 50, "memory://s"))
    api = lease(svc)
    svc.complete(api.job_id, api.token, {"video": "memory://v"})
    again = running(svc, clock, "w1", pace_s=10.0)  # resumed
    assert again.job_id == free.job_id
    svc.submit(SubmitRequest(prompt="api again", tier="api"))
    clock.now += 2
    svc.tick()
    assert not beat(svc, again)  # parked 12 s ago
    for step in range(3, 3 + int(PARK_MIN_GAP_S // 30)):
        clock.now += 30  # it keeps running (and beating), the api job keeps waiting
        assert not beat(svc, again, step)
    svc.tick()
    assert beat(svc, again, step)


def test_a_mark_ends_with_the_lease(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a long free take", tier="free", steps=50))
    free = running(svc, clock, "w1", pace_s=10.0)
    svc.submit(SubmitRequest(prompt="api", tier="api"))
    clock.now += 2
    svc.tick()
    assert svc.core.parking.marked == {free.job_id}
    svc.complete(free.job_id, free.token, {"video": "memory://v"})  # it finished meanwhile
    assert svc.core.parking.marked == set()


# --- the rule alone ----------------------------------------------------------------------


def waiter(order: int = 0, waited: float = 5.0, slack: float = 100.0) -> Waiter:
    return Waiter(order, "m", waited, slack)


def runner(name: str, order: int = 4, left: float = 500.0, parked: float | None = None) -> Runner:
    return Runner(JobId(name), order, "m", left, parked)


def test_the_rule_parks_the_lowest_tier_then_the_longest_and_one_per_head() -> None:
    runners = [runner("light", 3), runner("free-short", 4, 300.0), runner("free-long", 4, 900.0)]
    assert park_when([waiter()], runners, 0.0) == {"free-long"}
    assert park_when([waiter(), waiter(0, 3.0)], runners, 0.0) == {"free-long", "free-short"}
    # Only lower tiers: light-tier heads park the free jobs, never the light one.
    three = [waiter(3), waiter(3), waiter(3)]
    assert park_when(three, runners, 0.0) == {"free-long", "free-short"}


def test_the_rule_leaves_jobs_that_end_in_time_soon_or_were_parked_lately() -> None:
    assert park_when([waiter(slack=100.0)], [runner("a", left=90.0)], 0.0) == set()
    assert park_when([waiter(waited=0.5)], [runner("a")], 0.0) == set()  # not settled
    assert park_when([waiter(slack=-5.0)], [runner("a", left=3.0)], 0.0) == set()  # ends now
    assert park_when([waiter()], [runner("a", parked=-10.0)], 0.0) == set()
    assert park_when([waiter()], [runner("a", parked=-PARK_MIN_GAP_S)], 0.0) == {"a"}
    assert park_when([waiter()], [runner("a", left=math.inf)], 0.0) == {"a"}  # no pace yet
    # The runner that ends in time serves the first head; the second head parks another.
    two = [runner("soon", left=50.0), runner("late", left=500.0)]
    assert park_when([waiter(), waiter(0, 4.0)], two, 0.0) == {"late"}
    # Another model's runners are not its workers.
    other = Runner(JobId("x"), 4, "other", 500.0, None)
    assert park_when([waiter()], [other], 0.0) == set()


def test_a_resumed_job_whose_worker_dies_resumes_again_from_its_last_park(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    job = svc.submit(SubmitRequest(prompt="a long take", tier="free", steps=50)).id
    a = lease(svc)
    svc.call(Park(a.job_id, a.token, 7, 50, "memory://state-7"))
    b = lease(svc, "w2")
    svc.call(Heartbeat(b.job_id, b.token, 9, 50))
    clock.now += 61  # w2 died: its lease lapses
    assert svc.tick() == 1
    c = lease(svc, "w3")
    assert (c.job_id, c.resume_uri, c.attempts) == (job, "memory://state-7", 2)
