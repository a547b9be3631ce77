"""Parking on the scheduler's side: the ``Park`` op requeues a job with its place, progress and
sampler state (no attempt counted, journaled), the next lease carries the state, and the
simulator's ``PreemptionRule``, fed from the live queues and heartbeats, marks a lower-tier
running job when a queued job would miss its SLO. The real service over a real SQLite journal,
with a fake clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, StaleLease
from luma_ray.jobs.codec import job_from_json
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, Heartbeat, Park, Pull, SubmitRequest
from luma_ray.scheduler.service import SchedulerService

LIMITS = {"luma-tiny": ModelLimits(64, 128, 128, 50, 8, 8, 8)}
STATE = "memory://results/{job}/parked/{token}/v1/state.safetensors"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, enabled: bool = True, **rule: float) -> SchedulerService:
    config = parse_config({"preemption": {"enabled": enabled, **rule}})
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


def asked_to_park(
    svc: SchedulerService, clock: Clock, running_tier: str, pace_s: float = 10.0
) -> bool:
    """A 50-step job of ``running_tier`` runs at ``pace_s`` a step, an api job queues behind it
    and waits 2 s, the timer looks: is the running job asked to park?"""
    svc.submit(SubmitRequest(prompt=f"a long {running_tier} take", tier=running_tier, steps=50))
    job = running(svc, clock, "w1", pace_s)
    svc.submit(SubmitRequest(prompt="now please", tier="api"))
    clock.now += 2
    svc.tick()
    return beat(svc, job)


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
    assert not asked_to_park(service(tmp_path / "k.sqlite", clock), clock, "api")


def test_a_parked_job_is_not_parked_again_too_soon(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, min_gap_s=60.0)
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
    for step in (3, 4):
        clock.now += 30  # it keeps running (and beating), the api job keeps waiting
        assert not beat(svc, again, step)
    svc.tick()  # parked 72 s ago; the api job has waited 62 s of its 120
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


# --- the simulator's rule, fed from the live state ---------------------------------------


def test_a_late_or_resumed_head_parks_nothing(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a long free take", tier="free", steps=50))
    free = running(svc, clock, "w1", pace_s=10.0)
    svc.submit(SubmitRequest(prompt="api", tier="api"))
    for step in (3, 4, 5, 6):  # the free job beats every 30 s; nothing looks meanwhile
        clock.now += 30.5
        beat(svc, free, step)
    svc.tick()  # the api job has waited 122 s: it missed its SLO, a park cannot save it
    assert not beat(svc, free, 6)
    # A parked job waiting to resume has had its first start: it parks nobody either. The
    # free job runs 48 steps of 40 s more, past a light job's 1,800 s SLO.
    for name, parked_first in (("k", True), ("m", False)):
        svc2 = service(tmp_path / f"{name}.sqlite", clock)
        svc2.submit(SubmitRequest(prompt="a very long free take", tier="free", steps=50))
        free2 = running(svc2, clock, "w1", pace_s=40.0)
        svc2.submit(SubmitRequest(prompt="a light take", tier="light", steps=50))
        if parked_first:
            light = lease(svc2, "w2")
            svc2.call(Park(light.job_id, light.token, 1, 50, "memory://s"))
        clock.now += 2
        svc2.tick()
        assert beat(svc2, free2) is not parked_first  # the control: a fresh light job does


def test_a_job_without_a_pace_or_with_too_little_left_is_not_parked(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    svc.submit(SubmitRequest(prompt="a free take", tier="free", steps=50))
    a = lease(svc, "w1")
    svc.call(Heartbeat(a.job_id, a.token, 1, 50))  # one step reported: no pace yet
    svc.submit(SubmitRequest(prompt="api", tier="api"))
    clock.now += 2
    svc.tick()
    assert not beat(svc, a, 1)
    # 470 s left after its next boundary: parked with the default min_remaining_s (30 s, the
    # first test), not with 600 s.
    assert not asked_to_park(
        service(tmp_path / "k.sqlite", clock, min_remaining_s=600), clock, "free"
    )


def test_min_tier_gap_keeps_the_next_tier_down_running(tmp_path: Path) -> None:
    clock = Clock()
    assert asked_to_park(service(tmp_path / "j.sqlite", clock), clock, "enterprise")
    # One tier below api, and the gap asks for two:
    assert not asked_to_park(
        service(tmp_path / "k.sqlite", clock, min_tier_gap=2), clock, "enterprise"
    )


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
