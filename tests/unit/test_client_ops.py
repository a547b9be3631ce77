"""The HTTP clients' plans stepped by hand, without I/O: what ``create`` and ``wait`` ask the
client to do, and how they take what the client got back (a result or an error)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from luma_ray.client import ops
from luma_ray.client.wire import BusyError, Generation


def generation(state: str) -> Generation:
    return Generation.from_json({"id": "gen_1", "state": state})


def test_create_retries_a_429_after_its_retry_after_then_returns_the_job() -> None:
    steps = ops.Steps(ops.create("a fox", idempotency_key="k", retry_on_busy=True, seed=None))
    first = steps.next()
    assert isinstance(first, ops.Op) and (first.method, first.path) == ("POST", "/v1/generations")
    assert first.json == {"prompt": "a fox"} and first.headers == {"Idempotency-Key": "k"}
    assert first.delay_s == 0
    steps.fail(BusyError(429, "tenant_limit", "full", retry_after_s=3.0))
    second = steps.next()
    assert isinstance(second, ops.Op) and second.delay_s == 3.0 and second.json == first.json
    steps.reply(generation("queued"))
    assert steps.next() is None and steps.result.state == "queued"


def test_create_without_retry_raises_the_429() -> None:
    steps = ops.Steps(ops.create("a fox", idempotency_key=None, retry_on_busy=False))
    assert steps.next() is not None
    steps.fail(BusyError(429, "tenant_limit", "full"))
    with pytest.raises(BusyError):
        steps.next()


def test_wait_polls_after_the_stream_drops_until_the_job_is_final() -> None:
    steps = ops.Steps(ops.wait("gen_1", timeout_s=None, poll_s=0.5, progress=False))
    follow = steps.next()
    assert isinstance(follow, ops.Follow) and follow.op.path == "/v1/generations/gen_1/events"
    request = httpx.Request("GET", "http://x/")
    steps.fail(httpx.RemoteProtocolError("peer closed", request=request))
    seen: list[Any] = []
    for state in ("queued", "running", "succeeded"):
        op = steps.next()
        assert isinstance(op, ops.Op) and op.path == "/v1/generations/gen_1"
        seen.append(op.delay_s)
        steps.reply(generation(state))
    assert steps.next() is None and steps.result.state == "succeeded"
    assert seen == [0.0, 0.5, 0.5]  # the first get at once, then one each poll_s


def test_wait_returns_the_done_event_of_the_stream() -> None:
    steps = ops.Steps(ops.wait("gen_1", timeout_s=None, poll_s=1.0, progress=False))
    follow = steps.next()
    assert isinstance(follow, ops.Follow)
    lines = ["event: state", 'data: {"state": "running"}', "", "event: done"]
    assert not any(follow.feed(line) for line in lines)
    assert follow.feed('data: {"id": "gen_1", "state": "succeeded"}') is False
    assert follow.feed("") is True
    assert steps.next() is None and steps.result.state == "succeeded"
