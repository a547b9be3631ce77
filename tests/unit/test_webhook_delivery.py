"""Webhook delivery under stress, against real HTTP servers on 127.0.0.1: one tenant's slow or
drip-feeding receiver does not hold up another's, an attempt ends at its deadline however the
receiver paces its bytes, one tenant's flood costs only its own events, and a receiver that is
down for a while (a fake clock moves through the retry schedule) gets every event, in order."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from luma_ray.config import STANDARD_RETRY_SCHEDULE_S, WebhookConfig
from luma_ray.notify.events import WebhookEvent
from luma_ray.notify.outbox import WebhookOutbox
from luma_ray.notify.sender import WebhookSender
from tests.unit.hook_servers import DripServer, HookServer

SECRET = b"whsec_test_delivery"
T0 = 1_700_000_000.0
FLUSH_S = 10.0


def event(url: str, tenant: str, job: str, n: int) -> WebhookEvent:
    return WebhookEvent(f"evt_{job}_{n}", url, job, "running", {"n": n}, T0 + n, tenant)


def wait_until(predicate: Callable[[], bool], timeout_s: float = FLUSH_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.01)


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture
def senders() -> Iterator[list[WebhookSender]]:
    made: list[WebhookSender] = []
    yield made
    for sender in made:
        sender.close(timeout_s=0.1)


def real_sender(senders: list[WebhookSender], **settings: Any) -> WebhookSender:
    """A sender on the real clock and the real transport (attempt deadlines included)."""
    fields: dict[str, Any] = {"retry_schedule_s": (30.0,), "attempt_timeout_s": 1.0}
    sender = WebhookSender(SECRET, WebhookConfig(**{**fields, **settings}), allow_private=True)
    senders.append(sender)
    return sender


# --- one tenant cannot stall the others ----------------------------------------------------


@pytest.mark.parametrize("every_s", [0.05, 60.0], ids=["drip-feeding", "hanging"])
def test_a_drip_feeding_receiver_of_one_tenant_does_not_hold_up_another(
    servers: list[Any], senders: list[WebhookSender], every_s: float
) -> None:
    drip, normal = DripServer(every_s=every_s), HookServer()
    servers += [drip, normal]
    sender = real_sender(senders, attempt_timeout_s=1.0)

    began = time.monotonic()
    sender.enqueue(event(drip.url, "a", "gen_a", 1))
    wait_until(lambda: drip.connections == 1)  # tenant a's receiver is slow to answer
    sent_b = time.monotonic()
    sender.enqueue(event(normal.url, "b", "gen_b", 1))
    assert normal.wait_for(1, timeout_s=FLUSH_S)
    assert normal.hits[0].at_s - sent_b < 1.0  # within one attempt deadline, not after a's

    # a's attempt ends at its deadline, even when every byte came within any read timeout
    wait_until(lambda: sender.stats["retried"] == 1, timeout_s=5.0)
    assert time.monotonic() - began < 2.0
    if every_s < 1.0:  # the dripping server saw the sender hang up at the deadline
        wait_until(lambda: len(drip.durations_s) == 1, timeout_s=5.0)
        assert drip.durations_s[0] < 1.8
    assert sender.stats == {"delivered": 1, "retried": 1, "dropped": 0}


def test_one_tenant_has_at_most_its_share_of_attempts_in_flight(
    servers: list[Any], senders: list[WebhookSender]
) -> None:
    drip, normal = DripServer(every_s=0.05), HookServer()
    servers += [drip, normal]
    sender = real_sender(
        senders, attempt_timeout_s=3.0, max_in_flight_per_tenant=2, delivery_threads=4
    )
    for n in range(6):  # six jobs of tenant a, each one event
        sender.enqueue(event(drip.url, "a", f"gen_a{n}", 1))
    wait_until(lambda: drip.connections == 2)
    for n in range(5):
        sender.enqueue(event(normal.url, "b", f"gen_b{n}", 1))
    assert normal.wait_for(5, timeout_s=2.0)  # b's go through the two threads a cannot take
    assert drip.connections == 2  # and a never had more than its two
    drip.close()  # ends a's attempts now rather than at their deadline


def test_events_of_one_job_stay_in_order_across_threads(
    servers: list[Any], senders: list[WebhookSender]
) -> None:
    receiver = HookServer()
    servers.append(receiver)
    sender = real_sender(senders, max_in_flight_per_tenant=4, delivery_threads=8)
    for n in range(20):
        for job in ("gen_x", "gen_y", "gen_z"):
            sender.enqueue(event(receiver.url, "a", job, n))
    assert sender.flush(FLUSH_S)
    ids = receiver.event_ids()
    for job in ("gen_x", "gen_y", "gen_z"):
        assert [i for i in ids if i.startswith(f"evt_{job}_")] == [
            f"evt_{job}_{n}" for n in range(20)
        ]


def test_a_tenant_over_its_pending_limit_loses_only_its_own_events(
    servers: list[Any], senders: list[WebhookSender], caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    stuck = HookServer(lambda hit: 204 if gate.wait(FLUSH_S) else 503)
    normal = HookServer()
    servers += [stuck, normal]
    sender = real_sender(senders, max_pending_per_tenant=3, attempt_timeout_s=FLUSH_S)
    with caplog.at_level(logging.WARNING, logger="luma_ray.notify.sender"):
        for n in range(5):
            sender.enqueue(event(stuck.url, "a", "gen_a", n))
        for n in range(3):
            sender.enqueue(event(normal.url, "b", f"gen_b{n}", 1))
        assert normal.wait_for(3, timeout_s=FLUSH_S)  # b is not refused, nor held up
        assert sender.dropped_by_tenant == {"a": 2}
        gate.set()
        assert sender.flush(FLUSH_S)

    assert stuck.event_ids() == ["evt_gen_a_0", "evt_gen_a_1", "evt_gen_a_2"]
    assert sender.stats == {"delivered": 6, "retried": 0, "dropped": 2}
    refusals = [r.getMessage() for r in caplog.records if "pending limit" in r.getMessage()]
    assert len(refusals) == 2 and all("tenant=a " in line for line in refusals)
    assert all("hunter2" not in line for line in refusals)


# --- a day of retries; nothing lost to a short outage -------------------------------------------


class FakeClock:
    """Unix time for the sender; ``sleep`` moves it at once. ``on_sleep(until_s)`` runs first:
    what happens in the world meanwhile is done before the time shows it."""

    def __init__(self, start_s: float = T0) -> None:
        self.now_s = start_s
        self.slept: list[float] = []
        self.on_sleep: Callable[[float], None] = lambda now_s: None

    def time(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.on_sleep(self.now_s + seconds)
        self.now_s += seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("outage", ["503", "refused"])
def test_a_receiver_down_for_ten_minutes_gets_every_event_in_order(
    servers: list[Any], tmp_path: Path, outage: str
) -> None:
    clock = FakeClock()
    back_at_s = T0 + 600
    port = free_port()
    if outage == "503":  # up, but answering 503 for ten minutes
        servers.append(HookServer(lambda hit: 204 if clock.time() >= back_at_s else 503, port))
    else:  # nothing listens for ten minutes: connections are refused

        def come_back(now_s: float) -> None:
            if now_s >= back_at_s and not servers:
                servers.append(HookServer(port=port))

        clock.on_sleep = come_back
    url = f"http://127.0.0.1:{port}/hook"
    outbox = WebhookOutbox(tmp_path / "outbox.sqlite")
    sender = WebhookSender(  # the default schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
        SECRET, allow_private=True, clock=clock.time, sleep=clock.sleep, outbox=outbox
    )
    try:
        events = [event(url, "acme", job, n) for n in range(3) for job in ("gen_1", "gen_2")]
        for item in events:
            sender.enqueue(item)
        assert sender.flush(FLUSH_S)
    finally:
        sender.close(timeout_s=1.0)

    (receiver,) = servers
    delivered = receiver.event_ids(status=204)
    assert sorted(delivered) == sorted(e.event_id for e in events)  # every one, once
    for job in ("gen_1", "gen_2"):
        assert [i for i in delivered if f"_{job}_" in i] == [f"evt_{job}_{n}" for n in range(3)]
    assert sender.stats["dropped"] == 0 and sender.stats["delivered"] == 6
    assert clock.slept == [5.0, 300.0, 1800.0]  # back at 10 min: the retry at 35 min gets in
    assert outbox.pending() == []


def test_an_event_expires_after_the_whole_schedule(
    servers: list[Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    down = HookServer(lambda hit: 503)
    servers.append(down)
    outbox = WebhookOutbox(tmp_path / "outbox.sqlite")
    sender = WebhookSender(
        SECRET, allow_private=True, clock=clock.time, sleep=clock.sleep, outbox=outbox
    )
    with caplog.at_level(logging.WARNING, logger="luma_ray.notify.sender"):
        sender.enqueue(event(down.url, "acme", "gen_1", 1))
        assert sender.flush(FLUSH_S)
    sender.close(timeout_s=1.0)

    assert len(down.hits) == 8
    assert clock.slept == list(STANDARD_RETRY_SCHEDULE_S)
    assert 27 * 3600 < clock.time() - T0 < 28 * 3600
    assert sender.stats == {"delivered": 0, "retried": 7, "dropped": 1}
    assert "expired after 8 attempts" in caplog.text and "tenant=acme" in caplog.text
    assert outbox.pending() == []


def test_a_restarted_sender_goes_on_where_the_schedule_stood(
    servers: list[Any], tmp_path: Path
) -> None:
    down = HookServer(lambda hit: 503)
    servers.append(down)
    outbox = WebhookOutbox(tmp_path / "outbox.sqlite")
    kept = event(down.url, "acme", "gen_1", 1)
    outbox.put(kept)
    outbox.retry(kept.event_id, 6, T0 + 100)  # the last run made six attempts
    clock = FakeClock()
    sender = WebhookSender(
        SECRET, allow_private=True, clock=clock.time, sleep=clock.sleep, outbox=outbox
    )
    assert sender.flush(FLUSH_S)
    sender.close(timeout_s=1.0)
    assert len(down.hits) == 2  # attempts 7 and 8, then it expired
    assert clock.slept == [100.0, 36000.0]
    assert sender.stats["dropped"] == 1 and outbox.pending() == []


def test_each_failed_attempt_is_noted_in_the_outbox(servers: list[Any], tmp_path: Path) -> None:
    down = HookServer(lambda hit: 503)
    servers.append(down)
    outbox = WebhookOutbox(tmp_path / "outbox.sqlite")
    sender = WebhookSender(  # the real clock: the retry is 5 minutes away when it closes
        SECRET, WebhookConfig(retry_schedule_s=(300.0,)), allow_private=True, outbox=outbox
    )
    sender.enqueue(event(down.url, "acme", "gen_1", 1))
    wait_until(lambda: sender.stats["retried"] == 1)
    sender.close(timeout_s=0.1)
    (pending,) = outbox.pending()
    assert pending.attempts == 1 and 290 < pending.due_s - time.time() <= 300


def test_an_outbox_from_before_attempts_were_kept_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " event_id TEXT NOT NULL UNIQUE, record TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO events (event_id, record) VALUES ('evt_1', ?)",
        (
            '{"created_at_s": 1.0, "event_id": "evt_1", "job_id": "gen_1", "payload": {},'
            ' "state": "queued", "tenant": null, "url": "https://example.com/h"}',
        ),
    )
    db.commit()
    db.close()
    (pending,) = WebhookOutbox(path).pending()
    assert (pending.event.event_id, pending.attempts, pending.due_s) == ("evt_1", 0, 0.0)
