"""The scheduler's job events (``scheduler/feed.py``): published once per state change, step
or deletion, with one increasing cursor; read after a cursor; a gap said when it is too old;
and the calls the scheduler answered, counted by op. Real service, real journal, no Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import NotFound
from luma_ray.jobs import JobState, Progress
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.feed import EventLog
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    CallCounts,
    Complete,
    EventFeed,
    GetJob,
    Heartbeat,
    InProcessScheduler,
    Pull,
    Submit,
    SubmitRequest,
    WatchJob,
)
from luma_ray.scheduler.service import SchedulerService

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path) -> SchedulerService:
    return SchedulerService(parse_config({}), Journal(path / "j.sqlite"), LIMITS, Clock())


def run(svc: SchedulerService, job_id: str, steps: int) -> None:
    lease = svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None and lease.job_id == job_id
    for step in range(1, steps + 1):
        svc.call(Heartbeat(job_id, lease.token, step, steps))
    svc.call(Complete(job_id, lease.token, {"video": "file:///v.mp4"}))


def test_a_job_publishes_its_states_and_steps_in_order_with_increasing_cursors(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    start = svc.feed.head
    job = svc.call(Submit(SubmitRequest(prompt="fox", tenant="alice", tier="api")))
    run(svc, job.id, 2)
    page = svc.call(EventFeed(after=start))
    seen = [(e.kind, e.state.value, e.progress.step) for e in page.events]
    assert seen == [
        ("state", "queued", 0),
        ("state", "leased", 0),
        ("state", "running", 1),  # the first heartbeat moves the state, with its step
        ("progress", "running", 2),
        ("state", "succeeded", 2),
    ]
    cursors = [e.cursor for e in page.events]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    assert page.cursor == cursors[-1] == svc.feed.head and not page.gap
    assert {(e.job_id, e.tenant) for e in page.events} == {(job.id, "alice")}
    assert page.events[-1].view is not None and page.events[-1].view.result_uris
    # after the last cursor: nothing new, no gap; limit pages through the rest
    assert svc.call(EventFeed(after=page.cursor)).events == ()
    first_two = svc.call(EventFeed(after=start, limit=2))
    assert [e.cursor for e in first_two.events] == cursors[:2] and first_two.cursor == cursors[1]


def test_a_progress_event_still_newest_for_its_job_is_replaced_by_the_next() -> None:
    log = EventLog(start_cursor=100)
    for step in (1, 2, 3):
        log.progress("j1", "t", JobState.RUNNING, Progress("running", step, 3), 0.0)
    log.progress("j2", "t", JobState.RUNNING, Progress("running", 1, 3), 0.0)
    page = log.after(100, 10)
    assert [(e.job_id, e.progress.step) for e in page.events] == [("j1", 3), ("j2", 1)]
    assert [e.cursor for e in page.events] == [103, 104] and len(log) == 2


def test_a_cursor_older_than_the_buffer_or_from_before_a_restart_is_a_gap(
    tmp_path: Path,
) -> None:
    log = EventLog(start_cursor=0, capacity=3)
    for i in range(5):
        log.progress(f"j{i}", "t", JobState.RUNNING, Progress("running", 1, 2), 0.0)
    assert log.after(1, 10).gap and log.after(1, 10).cursor == 5  # 1 and 2 were evicted
    assert [e.cursor for e in log.after(2, 10).events] == [3, 4, 5]
    assert log.after(99, 10).gap  # newer than any cursor: another incarnation's

    svc = service(tmp_path)
    job = svc.call(Submit(SubmitRequest(prompt="fox")))
    seen = svc.feed.head
    Clock.now += 5  # a restart later starts its cursors past every earlier one
    again = service(tmp_path)
    assert again.feed.head > seen and again.call(EventFeed(after=seen)).gap
    watch = again.call(WatchJob(job.id, None, after=seen))
    assert watch.gap and watch.replay == () and watch.view.state is JobState.QUEUED


def test_watch_opens_on_the_callers_own_job_and_replays_after_a_cursor(tmp_path: Path) -> None:
    svc = service(tmp_path)
    job = svc.call(Submit(SubmitRequest(prompt="fox", tenant="alice", tier="api")))
    opened = svc.call(WatchJob(job.id, "alice"))
    assert opened.view.id == job.id and opened.cursor == svc.feed.head and opened.replay == ()
    with pytest.raises(NotFound):
        svc.call(WatchJob(job.id, "bob"))
    other = svc.call(Submit(SubmitRequest(prompt="owl", tenant="bob")))
    run(svc, job.id, 1)
    resumed = svc.call(WatchJob(job.id, "alice", after=opened.cursor))
    assert [e.state.value for e in resumed.replay] == ["leased", "running", "succeeded"]
    assert all(e.job_id == job.id for e in resumed.replay) and other.id != job.id
    assert resumed.cursor == svc.feed.head and not resumed.gap


def test_a_deleted_job_publishes_its_deletion(tmp_path: Path) -> None:
    svc = service(tmp_path)
    job = svc.submit(SubmitRequest(prompt="fox"))
    before = svc.feed.head
    svc.delete(job.id)
    assert [e.kind for e in svc.feed.after(before, 10).events] == ["deleted"]


def test_the_scheduler_counts_the_calls_it_answers_by_op(tmp_path: Path) -> None:
    svc = service(tmp_path)
    job = svc.call(Submit(SubmitRequest(prompt="fox")))
    for _ in range(3):
        svc.call(GetJob(job.id))
    assert svc.call(CallCounts()) == {"Submit": 1, "GetJob": 3, "CallCounts": 1}


def test_the_in_process_port_waits_for_the_next_event_and_counts_one_call(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    port = InProcessScheduler(svc)

    async def main() -> None:
        cursor = svc.feed.head
        empty = await port.call(EventFeed(after=cursor, wait_s=0.05))  # nothing: it times out
        assert empty.events == () and empty.cursor == cursor
        waiting = asyncio.ensure_future(port.call(EventFeed(after=cursor, wait_s=10)))
        await asyncio.sleep(0.05)  # let the long poll start waiting (it must not answer yet)
        assert not waiting.done()
        svc.submit(SubmitRequest(prompt="fox"))  # a job event wakes it
        page = await asyncio.wait_for(waiting, 5)
        assert [e.state.value for e in page.events] == ["queued"]

    asyncio.run(main())
    assert svc.calls["EventFeed"] == 2 and not svc.feed.listeners
