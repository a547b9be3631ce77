"""The node's heartbeat relay (``workers/beat_relay.py``) over the real scheduler service (its
``Heartbeats``), without Ray: beats that arrive while a call is in flight share the next call,
each worker gets its own answer, and a worker whose relay is gone beats directly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import NotFound, SchedulerUnavailable, StaleLease
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Assignment,
    Beat,
    DeleteJob,
    GetJob,
    Heartbeat,
    HeartbeatReply,
    LeaseRefused,
    Pull,
    Submit,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService
from luma_ray.workers.beat_relay import BeatRelay, RelayedBeats, Unreachable

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


def service(tmp_path: Path) -> SchedulerService:
    now = iter(range(1_700_000_000, 1_800_000_000))
    return SchedulerService(
        parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, lambda: float(next(now))
    )


def leases(svc: SchedulerService, n: int) -> list[Assignment]:
    for i in range(n):
        svc.call(Submit(SubmitRequest(prompt=f"job {i}", tenant=f"t{i}", steps=4)))
    got = [svc.call(Pull(f"w{i}", "local", ("luma-tiny",))) for i in range(n)]
    assert all(a is not None for a in got)
    return got  # type: ignore[return-value]


class SlowPort:
    """The service as an awaitable port whose calls take a while (so beats pile up)."""

    def __init__(self, svc: SchedulerService, fail: bool = False) -> None:
        self.svc, self.fail, self.sizes = svc, fail, []

    async def call(self, op: Any) -> Any:
        await asyncio.sleep(0.01)
        self.sizes.append(len(op.beats))
        if self.fail:
            raise SchedulerUnavailable("the scheduler is restarting")
        return self.svc.call(op)


def test_beats_that_arrive_together_share_one_call_and_get_their_own_answers(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    held = leases(svc, 8)
    port = SlowPort(svc)
    relay = BeatRelay(port)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(relay.beat(Beat(held[0].job_id, held[0].token, 1, 4)))
        await asyncio.sleep(0)  # the first goes alone, at once
        rest = [relay.beat(Beat(a.job_id, a.token, 2, 4)) for a in held[1:]]
        stale = relay.beat(Beat(held[1].job_id, held[1].token + 99, 2, 4))
        return await asyncio.gather(first, *rest, stale)

    answers = asyncio.run(scenario())
    assert port.sizes == [1, 8]  # two calls for nine beats
    assert relay.calls == 2 and relay.beats == 9
    assert all(isinstance(a, HeartbeatReply) for a in answers[:8])
    assert isinstance(answers[8], LeaseRefused) and answers[8].code == "stale_lease"
    for a in held[1:]:  # each lease was renewed with its own progress
        assert svc.call(GetJob(a.job_id)).progress.step == 2
    assert svc.call(GetJob(held[0].job_id)).progress.step == 1


def test_a_failed_call_fails_its_beats_and_the_next_call_goes_on(tmp_path: Path) -> None:
    svc = service(tmp_path)
    held = leases(svc, 2)
    port = SlowPort(svc, fail=True)
    relay = BeatRelay(port)

    async def scenario() -> None:
        with pytest.raises(SchedulerUnavailable):
            await relay.beat(Beat(held[0].job_id, held[0].token, 1, 4))
        port.fail = False
        assert isinstance(
            await relay.beat(Beat(held[1].job_id, held[1].token, 1, 4)), HeartbeatReply
        )

    asyncio.run(scenario())


class Direct:
    def __init__(self, svc: SchedulerService) -> None:
        self.svc, self.calls = svc, 0

    def call(self, op: Any) -> Any:
        self.calls += 1
        return self.svc.call(op)


class FakeRelay:
    """A stand-in for the node's relay actor: ready or not, answering or gone; each beat it
    gets goes to the scheduler as a one-beat ``Heartbeats``."""

    def __init__(self, svc: SchedulerService, ready: bool = True) -> None:
        self.svc, self.is_ready, self.gone, self.sent = svc, ready, False, []

    def ready(self) -> bool:
        return self.is_ready

    def send(self, beat: Beat) -> Any:
        if self.gone:
            self.is_ready = False  # dropped: probed again before it is used
            raise Unreachable("RayActorError")
        self.sent.append(beat)
        return asyncio.run(BeatRelay(SlowPort(self.svc)).beat(beat))


def test_a_worker_sees_what_a_direct_heartbeat_gives(tmp_path: Path) -> None:
    svc = service(tmp_path)
    a, b = leases(svc, 2)
    direct, relay = Direct(svc), FakeRelay(svc)
    beats = RelayedBeats(direct, relay)
    reply = beats.call(Heartbeat(a.job_id, a.token, 3, 4))
    assert isinstance(reply, HeartbeatReply) and not reply.cancel
    assert [s.job_id for s in relay.sent] == [a.job_id] and direct.calls == 0
    with pytest.raises(StaleLease):
        beats.call(Heartbeat(a.job_id, a.token + 1, 4, 4))
    svc.call(DeleteJob(b.job_id))
    with pytest.raises(NotFound):
        beats.call(Heartbeat(b.job_id, b.token, 1, 4))
    assert beats.call(GetJob(a.job_id)).progress.step == 3  # any other op: direct
    assert direct.calls == 1


def test_a_worker_beats_directly_until_its_relay_is_ready_and_when_it_is_gone(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    (a,) = leases(svc, 1)
    direct, relay = Direct(svc), FakeRelay(svc, ready=False)
    beats = RelayedBeats(direct, relay)
    assert isinstance(beats.call(Heartbeat(a.job_id, a.token, 1, 4)), HeartbeatReply)
    assert direct.calls == 1 and relay.sent == []  # starting: never waited for
    relay.is_ready = True
    beats.call(Heartbeat(a.job_id, a.token, 2, 4))
    assert direct.calls == 1 and len(relay.sent) == 1
    relay.gone = True  # killed: this beat goes directly, and so do the next until it is back
    assert beats.call(Heartbeat(a.job_id, a.token, 3, 4)).cancel is False
    beats.call(Heartbeat(a.job_id, a.token, 4, 4))
    assert direct.calls == 3 and len(relay.sent) == 1
    assert svc.call(GetJob(a.job_id)).progress.step == 4

    class Broken(FakeRelay):
        def ready(self) -> bool:
            raise ValueError("no such actor")

    lonely = RelayedBeats(direct, Broken(svc))
    assert isinstance(lonely.call(Heartbeat(a.job_id, a.token, 4, 4)), HeartbeatReply)
    assert direct.calls == 4
