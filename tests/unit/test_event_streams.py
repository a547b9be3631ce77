"""Event streams (``GET /v1/generations/{id}/events``) fed by the replica's one subscriber:
ids, every event in order, keep-alives while a job waits, resuming with Last-Event-ID, tenants
apart, and O(1) scheduler calls however many streams are open. The real app over the
in-process scheduler (behind a counting port of our own), driven through ASGI on one event
loop; workers' ops go to the service directly. No Ray, no sockets."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.events import CallBudget, Follower
from luma_ray.api.keys import KeyStore
from luma_ray.config import IngressLimits, default_tiers, parse_config
from luma_ray.jobs import JobState, Progress
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Complete,
    FeedEvent,
    Heartbeat,
    InProcessScheduler,
    Op,
    Pull,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

pytestmark = pytest.mark.timeout(60)

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingPort:
    """The ingress's scheduler port, counting the ops it sends by type."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, Counter[str]()

    async def call(self, op: Op[Any]) -> Any:
        self.calls[type(op).__name__] += 1
        return await self.inner.call(op)


class Stream:
    """One GET of an event stream over ASGI, open until it ends or :meth:`leave`."""

    def __init__(self, app: Any, job_id: str, key: str, last_id: str | None = None) -> None:
        self.status: int | None = None
        self.body = ""
        self._got = asyncio.Event()
        self._left = asyncio.Event()
        self._asked = False
        headers = [(b"host", b"test"), (b"authorization", f"Bearer {key}".encode())]
        if last_id is not None:
            headers.append((b"last-event-id", last_id.encode()))
        path = f"/v1/generations/{job_id}/events"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        self.task = asyncio.ensure_future(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        self.body += message.get("body", b"").decode()
        self._got.set()

    def events(self) -> list[tuple[int, str, dict[str, Any]]]:
        """``(id, event, data)`` of every event so far (comments left out)."""
        out = []
        for block in self.body.replace("\r\n", "\n").split("\n\n"):
            fields = dict(
                line.split(": ", 1) for line in block.split("\n") if line and line[0] != ":"
            )
            if "event" in fields:
                out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
        return out

    def comments(self) -> int:
        return sum(line.startswith(":") for line in self.body.replace("\r\n", "\n").split("\n"))

    def shown(self) -> list[tuple[str, object]]:
        return [(e, d.get("step") if e == "progress" else d["state"]) for _, e, d in self.events()]

    async def until(self, ready: Callable[[Stream], bool], timeout_s: float = 10) -> None:
        async def wait() -> None:
            while not ready(self):
                self._got.clear()
                await self._got.wait()

        await asyncio.wait_for(wait(), timeout_s)

    async def leave(self) -> None:
        self._left.set()
        await asyncio.wait_for(self.task, 5)


def build(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, Clock())
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    port = CountingPort(InProcessScheduler(svc))
    app = create_app(port, keys, LocalBlobStore(tmp_path / "results"), ApiSettings(**settings))
    alice, _ = keys.create("alice", "api", now_s=0)
    bob, _ = keys.create("bob", "free", now_s=0)
    return {"svc": svc, "port": port, "app": app, "alice": alice, "bob": bob}


def submit(svc: SchedulerService, tenant: str = "alice") -> str:
    return svc.submit(SubmitRequest(prompt="a fox", tenant=tenant, tier="api")).id


class Worker:
    """A fake worker on the service: lease, steps, result."""

    def __init__(self, svc: SchedulerService, job_id: str) -> None:
        self.svc, self.job_id = svc, job_id
        lease = svc.call(Pull(f"w-{job_id}", "local", ("luma-tiny",)))
        assert lease is not None and lease.job_id == job_id
        self.token = lease.token

    def step(self, step: int, total: int) -> None:
        self.svc.call(Heartbeat(self.job_id, self.token, step, total))

    def finish(self) -> None:
        self.svc.call(Complete(self.job_id, self.token, {"video": "file:///v.mp4"}))


def test_a_stream_gets_every_event_of_its_job_in_order_with_ids(tmp_path: Path) -> None:
    api = build(tmp_path)
    svc = api["svc"]
    job = submit(svc)

    async def main() -> Stream:
        stream = Stream(api["app"], job, api["alice"])
        await stream.until(lambda s: len(s.events()) == 1)
        worker = Worker(svc, job)
        await stream.until(lambda s: s.shown()[-1] == ("state", "leased"))
        for step in (1, 2, 3):
            worker.step(step, 3)
            await stream.until(lambda s, step=step: s.shown()[-1] == ("progress", step))
        worker.finish()
        await asyncio.wait_for(stream.task, 5)
        return stream

    stream = asyncio.run(main())
    assert stream.status == 200
    assert stream.shown() == [
        ("state", "queued"),
        ("state", "leased"),
        ("state", "running"),
        ("progress", 1),
        ("progress", 2),
        ("progress", 3),
        ("state", "succeeded"),
        ("progress", 3),  # a state change shows the progress with it, as before
        ("done", "succeeded"),
    ]
    ids = [i for i, _, _ in stream.events()]
    feed = [e.cursor for e in svc.feed.after(ids[0], 100, job).events]
    # step 2's event was replaced in the buffer by step 3's (a job's newest progress is
    # coalesced), after the stream had it
    leased, running, step3, succeeded = feed
    assert ids[1:4] == [leased, running, running] and running < ids[4] < step3
    assert ids[5:] == [step3, succeeded, succeeded, succeeded]
    done = stream.events()[-1][2]
    assert done["id"] == job and done["result_urls"]["video"].endswith("variant=video")
    assert api["app"].state.ports.events.subscribers == 0  # the last stream stopped it


def test_a_quiet_replica_passes_a_lone_jobs_events_on_without_waiting_the_pace(
    tmp_path: Path,
) -> None:
    """With the pace at one feed call per 2 s, a lone job's 8 events (lease, steps, done)
    still reach its stream as they happen: a quiet replica has calls in hand."""
    api = build(tmp_path, sse_feed_interval_s=2.0, sse_feed_burst=10)
    svc = api["svc"]
    job = submit(svc)

    async def main() -> tuple[Stream, float]:
        loop = asyncio.get_running_loop()
        stream = Stream(api["app"], job, api["alice"])
        await stream.until(lambda s: len(s.events()) == 1)
        began = loop.time()
        worker = Worker(svc, job)
        await stream.until(lambda s: s.shown()[-1] == ("state", "leased"))
        for step in (1, 2, 3, 4, 5):
            worker.step(step, 5)
            await stream.until(lambda s, step=step: s.shown()[-1] == ("progress", step))
        worker.finish()
        await asyncio.wait_for(stream.task, 5)
        return stream, loop.time() - began

    stream, took = asyncio.run(main())
    assert stream.shown()[-1] == ("done", "succeeded")
    assert took < 1.0, f"the job's events took {took:.2f} s to arrive, as if paced at 2 s"


def test_the_feed_call_budget_allows_a_burst_then_one_call_per_interval() -> None:
    budget = CallBudget(interval_s=0.2, burst=3)
    assert [budget.spend(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # a quiet replica
    assert budget.spend(10.0) == pytest.approx(0.2)  # then the pace
    assert budget.spend(10.2) == pytest.approx(0.2)  # the call it waited for, then the next
    # A long busy spell: calls at once whenever allowed; never more than burst + T / interval.
    now, calls = 20.0, 0
    while now < 30.0:
        now += budget.spend(now)
        calls += 1
    assert calls <= 3 + 10.0 / 0.2 + 1
    assert calls >= 10.0 / 0.2  # and no slower than the pace
    assert CallBudget(interval_s=0.0, burst=1).spend(0.0) == 0.0  # no pace: never waits


def test_a_stream_idle_in_the_queue_gets_keep_alives_and_stays_open(tmp_path: Path) -> None:
    api = build(tmp_path, sse_keepalive_s=0.05)
    svc = api["svc"]
    job = submit(svc)

    async def main() -> Stream:
        stream = Stream(api["app"], job, api["alice"])
        await asyncio.sleep(1.0)  # "two minutes" in the queue, at 1/2400 of the intervals
        assert stream.comments() >= 8 and not stream.task.done()
        assert stream.shown() == [("state", "queued")]
        worker = Worker(svc, job)
        worker.step(1, 1)
        worker.finish()
        await asyncio.wait_for(stream.task, 5)
        return stream

    stream = asyncio.run(main())
    assert stream.shown()[-2:] == [("progress", 1), ("done", "succeeded")]


def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events(tmp_path: Path) -> None:
    api = build(tmp_path)
    svc = api["svc"]
    job = submit(svc)

    async def main() -> tuple[Stream, Stream, Stream, int]:
        first = Stream(api["app"], job, api["alice"])
        worker = Worker(svc, job)
        worker.step(1, 4)
        await first.until(lambda s: ("progress", 1) in s.shown())
        await first.leave()
        last_id = first.events()[-1][0]
        worker.step(2, 4)  # missed while away
        svc.cancel(submit(svc))  # another job's events: not this stream's
        worker.step(3, 4)
        worker.finish()
        again = Stream(api["app"], job, api["alice"], last_id=str(last_id))
        await asyncio.wait_for(again.task, 5)
        stale = Stream(api["app"], job, api["alice"], last_id="1")  # older than the buffer
        await asyncio.wait_for(stale.task, 5)
        return first, again, stale, last_id

    first, again, stale, last_id = asyncio.run(main())
    missed = svc.feed.after(last_id, 100, job).events
    # step 2's event gave way to step 3's in the buffer (a job's newest progress is coalesced)
    # A succeeded job shows all of its steps done, whichever step its last beat reported.
    assert [(e.kind, e.progress.step) for e in missed] == [("progress", 3), ("state", 4)]
    assert again.shown() == [
        ("progress", 3),
        ("state", "succeeded"),
        ("progress", 4),
        ("done", "succeeded"),
    ]
    ids = [i for i, _, _ in again.events()]
    assert ids == [missed[0].cursor] + [missed[1].cursor] * 3
    assert all(i > last_id for i in ids)
    assert stale.shown() == [("state", "succeeded"), ("progress", 4), ("done", "succeeded")]


def test_two_tenants_streams_get_only_their_own_jobs_events(tmp_path: Path) -> None:
    api = build(tmp_path)
    svc = api["svc"]
    mine, theirs = submit(svc, "alice"), submit(svc, "bob")

    async def main() -> tuple[Stream, Stream, Stream]:
        a = Stream(api["app"], mine, api["alice"])
        b = Stream(api["app"], theirs, api["bob"])
        peek = Stream(api["app"], mine, api["bob"])  # another tenant's job: 404
        await asyncio.wait_for(peek.task, 5)
        for job in (mine, theirs):
            worker = Worker(svc, job)
            worker.step(1, 2)
            worker.step(2, 2)
            worker.finish()
        await asyncio.wait_for(asyncio.gather(a.task, b.task), 5)
        return a, b, peek

    a, b, peek = asyncio.run(main())
    assert peek.status == 404 and "event:" not in peek.body
    for stream, job in ((a, mine), (b, theirs)):
        assert {d["id"] for _, _, d in stream.events()} == {job}
        assert stream.shown()[-1] == ("done", "succeeded")


@pytest.mark.parametrize("streams", [3, 60])
def test_the_subscriber_makes_o1_scheduler_calls_however_many_streams(
    tmp_path: Path, streams: int
) -> None:
    api = build(tmp_path, limits=IngressLimits(max_streams_per_tenant=None, key_rate_per_s=None))
    svc, port = api["svc"], api["port"]
    jobs = [submit(svc) for _ in range(3)]
    start = svc.feed.head

    async def main() -> list[Stream]:
        opened = [Stream(api["app"], jobs[i % 3], api["alice"]) for i in range(streams)]
        await asyncio.gather(*(s.until(lambda s: len(s.events()) >= 1) for s in opened))
        assert api["app"].state.ports.events.subscribers == 1
        for job in jobs:
            worker = Worker(svc, job)
            for step in (1, 2, 3):
                worker.step(step, 3)
                await asyncio.sleep(0.01)  # a worker's step takes a while
            worker.finish()
        await asyncio.wait_for(asyncio.gather(*(s.task for s in opened)), 10)
        return opened

    opened = asyncio.run(main())
    assert all(s.shown()[-1] == ("done", "succeeded") for s in opened)
    published = len(svc.feed.after(start, 1000).events)
    assert port.calls["WatchJob"] == streams  # one call to open each stream
    assert port.calls["GetJob"] == 0  # and none per stream after that
    assert port.calls["EventFeed"] <= published + 1  # each feed call brought news
    assert sum(port.calls.values()) == streams + port.calls["EventFeed"]


def test_a_slow_stream_skips_to_its_jobs_latest_state_and_progress() -> None:
    def event(cursor: int, kind: str, state: JobState, step: int) -> FeedEvent:
        progress = Progress("running", step, 9)
        return FeedEvent(cursor, "j", "t", kind, state, progress, 0.0, None)

    async def main() -> tuple[list[FeedEvent], int]:
        follower = Follower("j", size=4)
        running = event(1, "state", JobState.RUNNING, 1)
        follower.put(replace(running, view=object()))
        for cursor in range(2, 10):
            follower.put(event(cursor, "progress", JobState.RUNNING, cursor))
        return await follower.take(0), follower.skipped

    kept, skipped = asyncio.run(main())
    assert kept[0].cursor == 1 and kept[-1].cursor == 9 and len(kept) <= 4  # the newest ones
    assert [e.cursor for e in kept] == sorted(e.cursor for e in kept)
    assert skipped == 9 - len(kept) > 0


def test_shutting_the_app_down_stops_its_event_subscriber(tmp_path: Path) -> None:
    api = build(tmp_path)
    job = submit(api["svc"])
    hub = api["app"].state.ports.events

    async def main() -> None:
        subscriber = hub.subscriber()
        follower, _ = await subscriber.follow(job, "alice", None)
        assert hub.subscribers == 1
        lifespan = api["app"].router.lifespan_context(api["app"])
        await lifespan.__aenter__()
        await lifespan.__aexit__(None, None, None)
        assert hub.subscribers == 0 and not subscriber.running
        subscriber.leave(follower)

    asyncio.run(main())


def test_a_last_event_id_this_api_never_sent_is_a_400_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    api = build(tmp_path)
    job = submit(api["svc"])

    async def main() -> Stream:
        stream = Stream(api["app"], job, api["alice"], last_id="abc")
        await asyncio.wait_for(stream.task, 5)
        return stream

    stream = asyncio.run(main())
    assert stream.status == 400 and "reconnect without it" in stream.body
    assert api["app"].state.ports.events.subscribers == 0
