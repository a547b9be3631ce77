"""The scheduler's boundary: every op names a service method that takes exactly its fields, the
in-process ports answer like the service, and the values are plain enough to cross Ray."""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle
from dataclasses import fields
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import NotFound
from luma_ray.jobs import JobState
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler import protocol
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import (
    Complete,
    GetJob,
    InProcessScheduler,
    JobEvents,
    JobView,
    Op,
    Pull,
    Submit,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService

LIMITS = ModelLimits(
    max_frames=64,
    max_height=128,
    max_width=128,
    max_steps=50,
    default_steps=8,
    default_fps=8,
    size_multiple=8,
)
OPS = sorted(
    (
        cls
        for cls in vars(protocol).values()
        if isinstance(cls, type) and issubclass(cls, Op) and cls is not Op
    ),
    key=lambda cls: cls.__name__,
)


def service(tmp_path: Path) -> SchedulerService:
    now = iter(float(t) for t in range(1_700_000_000, 1_800_000_000))
    return SchedulerService(
        parse_config({}), Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, lambda: next(now)
    )


def test_there_are_ops_for_clients_workers_and_rollouts() -> None:
    names = {cls.__name__ for cls in OPS}
    assert {"Submit", "GetJob", "ListJobs", "Pull", "Heartbeat", "Complete"} <= names
    assert {"RequestSwap", "FinishSwap", "GetBacklog", "Stats"} <= names


@pytest.mark.parametrize("op", OPS, ids=lambda cls: cls.__name__)
def test_each_op_names_a_service_method_that_takes_exactly_its_fields(op: type[Op]) -> None:
    method = getattr(SchedulerService, op.method, None)
    assert callable(method), f"{op.__name__}.method = {op.method!r} is not a service method"
    params = inspect.signature(method).parameters
    taken = {name for name in params if name != "self"}
    required = {n for n, p in params.items() if n != "self" and p.default is p.empty}
    given = {f.name for f in fields(op)}  # type: ignore[arg-type]
    assert given <= taken, f"{op.__name__} sends {given - taken} that {op.method} does not take"
    assert required <= given, f"{op.__name__} lacks {required - given} that {op.method} needs"


def test_the_service_answers_ops_with_typed_values(tmp_path: Path) -> None:
    svc = service(tmp_path)
    view = svc.call(Submit(SubmitRequest(prompt="a red fox", tenant="acme")))
    assert isinstance(view, JobView) and view.state is JobState.QUEUED
    assert view.params.frames == 16 and view.params.steps == 8  # defaults resolved once
    lease = svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None and lease.request == view.params
    done = svc.call(Complete(lease.job_id, lease.token, {"video": "file:///v.mp4"}))
    assert done.state == "succeeded" and done.result_uris == {"video": "file:///v.mp4"}
    with pytest.raises(NotFound):
        svc.call(GetJob(view.id, tenant="someone-else"))


def test_the_async_in_process_port_answers_like_the_service(tmp_path: Path) -> None:
    port = InProcessScheduler(service(tmp_path))

    async def run() -> tuple[JobView, JobView]:
        made = await port.call(Submit(SubmitRequest(prompt="p", tenant="acme")))
        return made, await port.call(GetJob(made.id, "acme"))

    made, got = asyncio.run(run())
    assert got.id == made.id and got.tenant == "acme"


def test_a_submit_is_made_safe_to_send_twice(tmp_path: Path) -> None:
    svc = service(tmp_path)
    op = Submit(SubmitRequest(prompt="p")).safe_to_retry()
    assert op.request.idempotency_key  # a key was added
    first, again = svc.call(op), svc.call(op)
    assert first.id == again.id and len(svc.list()) == 1
    keyed = Submit(SubmitRequest(prompt="p", idempotency_key="mine"))
    assert keyed.safe_to_retry() is keyed


def test_views_pickle_and_turn_into_json(tmp_path: Path) -> None:
    view = service(tmp_path).call(Submit(SubmitRequest(prompt="p", metadata=(("k", "v"),))))
    assert pickle.loads(pickle.dumps(view)) == view  # what crossing Ray needs
    plain = json.loads(json.dumps(view.as_dict()))
    assert plain["state"] == "queued" and plain["params"]["prompt"] == "p"
    assert plain["metadata"] == {"k": "v"}


def test_a_job_s_events_resume_after_the_last_one_seen(tmp_path: Path) -> None:
    svc = service(tmp_path)
    view = svc.call(Submit(SubmitRequest(prompt="p", tenant="acme")))
    lease = svc.call(Pull("w1", "local", ("luma-tiny",)))
    assert lease is not None
    svc.call(Complete(lease.job_id, lease.token, {"video": "file:///v.mp4"}))
    changes = svc.call(JobEvents(view.id, "acme"))
    assert [(c.seq, c.state.value) for c in changes] == [(1, "leased"), (2, "succeeded")]
    assert [c.seq for c in svc.call(JobEvents(view.id, "acme", after=1))] == [2]
    assert svc.call(JobEvents(view.id, "acme", after=2)) == []
    with pytest.raises(NotFound):  # another tenant's job is as good as absent
        svc.call(JobEvents(view.id, "zeta"))
