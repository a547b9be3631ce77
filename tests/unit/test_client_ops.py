"""The HTTP clients' plans stepped by hand, without I/O: what ``create`` and ``wait`` ask the
client to do, and how they take what the client got back (a result or an error)."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest

from luma_ray.client import ops
from luma_ray.client.progress import JobProgress
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


def test_job_progress_draws_on_stderr_only_when_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with JobProgress("gen_1", show=True) as bar:
        bar.update("queued", 0, 0)
        bar.update(state="running")
        bar.update(step=2, total=4)
    out = capsys.readouterr()
    assert "gen_1 queued" in out.err and "gen_1 running" in out.err and "2/4" in out.err
    assert out.err.endswith("\n") and out.out == ""

    with JobProgress("gen_2", show=False) as bar:
        bar.update("running", 1, 2)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    with JobProgress("gen_3") as bar:  # None: captured stderr is no terminal, no kernel runs
        bar.update("running", 1, 2)
    assert capsys.readouterr() == ("", "")
