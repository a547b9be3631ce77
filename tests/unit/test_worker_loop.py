"""The worker's pull loop against the real scheduler service (fake clock, temp journal) and
a fake model: prefetch, cancellation at the next step, failures, fencing. No Ray."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, StaleLease
from luma_ray.models.interface import GenerationCancelled, GenerationRequest, ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, Op, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.workers.adapters import SchedulerLeases
from luma_ray.workers.loop import WorkerLoop
from luma_ray.workers.stopping import stop_and_hand_back

LIMITS = ModelLimits(64, 128, 128, 50, 4, 8, 8)


R = TypeVar("R")


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class LockedService:
    """The in-process service behind a lock: the actor serialises calls, so does this."""

    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc
        self.lock = threading.Lock()

    def call(self, op: Op[R]) -> R:
        with self.lock:
            return self.svc.call(op)


class ServicePort(SchedulerLeases):
    """The worker's real scheduler adapter over the in-process service; counts pulls."""

    def __init__(
        self, svc: SchedulerService, worker: str = "w1", models: object = ("luma-tiny",)
    ) -> None:
        super().__init__(LockedService(svc), worker, "local", models)  # type: ignore[arg-type]
        self.svc = svc
        self.pulls = 0
        self.pulled = threading.Condition()

    def pull(self, wait_s: float) -> Assignment | None:
        got = super().pull(wait_s)
        with self.pulled:
            self.pulls += 1
            self.pulled.notify_all()
        return got

    def wait_for_pulls(self, n: int) -> None:
        """Block until ``n`` pulls returned (the prefetch runs on the loop's helper thread)."""
        with self.pulled:
            assert self.pulled.wait_for(lambda: self.pulls >= n, timeout=10), self.pulls


class FakeModel:
    name = "luma-tiny"
    limits = LIMITS

    def __init__(self, during_step=None, crash_on: str | None = None) -> None:
        self.during_step = during_step
        self.crash_on = crash_on
        self.seen: list[str] = []

    def load(self, checkpoint_dir: Path, device: object, process_group: object = None) -> None:
        pass

    def generate(self, request: GenerationRequest, on_step) -> np.ndarray:
        self.seen.append(request.prompt)
        if request.prompt == self.crash_on:
            raise RuntimeError("CUDA out of memory (pretend)")
        for step in range(1, request.steps + 1):
            if self.during_step:
                self.during_step(request, step)
            if on_step(step, request.steps) is False:
                raise GenerationCancelled(step, request.steps)
        return np.zeros((request.frames, request.height, request.width, 3), np.uint8)


class Sink:
    def __init__(self, on_store=None) -> None:
        self.stored: list[str] = []
        self.discarded: list[str] = []
        self.on_store = on_store

    def store(self, a: Assignment, frames: np.ndarray) -> dict[str, str]:
        self.stored.append(a.job_id)
        if self.on_store:
            self.on_store(a)
        return {"video": f"memory://results/{a.job_id}/{a.token}/video.mp4"}

    def discard(self, a: Assignment) -> None:
        self.discarded.append(a.job_id)


def make(tmp_path: Path, **cfg: object) -> SchedulerService:
    return SchedulerService(
        parse_config(cfg), Journal(tmp_path / "j.sqlite"), {"luma-tiny": LIMITS}, Clock()
    )


def test_runs_every_job_once_and_prefetches_the_next(tmp_path: Path) -> None:
    svc = make(tmp_path)
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="api")).id for i in range(4)]
    states_seen: list[str] = []
    port = ServicePort(svc)

    def during(request: GenerationRequest, step: int) -> None:
        if request.prompt == "p0" and step == 4:  # the last step: the prefetch was sent
            port.wait_for_pulls(2)
            states_seen.append(svc.get(ids[1]).state)

    sink = Sink()
    loop = WorkerLoop(port, FakeModel(during), sink, pull_wait_s=0.0)
    stats = loop.run(max_jobs=4)
    assert stats.succeeded == 4 and sorted(sink.stored) == sorted(ids)
    assert states_seen == ["leased"]  # job 2 was already leased while job 1 computed
    assert all(svc.get(i).state == "succeeded" for i in ids)
    assert len(stats.gaps_s) == 3 and stats.generated == {i: 1 for i in ids}


def test_cancel_stops_at_the_next_step(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="long", steps=20)).id

    def during(request: GenerationRequest, step: int) -> None:
        if step == 5:
            svc.cancel(job)

    loop = WorkerLoop(ServicePort(svc), FakeModel(during), Sink(), prefetch=False)
    stats = loop.run(max_jobs=1)
    assert stats.stopped_at == {job: (5, 20)}
    assert svc.get(job).state == "cancelled" and stats.succeeded == 0


def test_model_crash_is_retried_and_bad_input_is_not(tmp_path: Path) -> None:
    svc = make(tmp_path)
    crash = svc.submit(SubmitRequest(prompt="boom")).id
    loop = WorkerLoop(ServicePort(svc), FakeModel(crash_on="boom"), Sink(), prefetch=False)
    loop.run(max_jobs=1)
    view = svc.get(crash)
    assert view.state == "queued" and view.attempts == 2
    assert view.error is None or view.error.code == "model_error"


def test_a_fenced_off_result_is_dropped(tmp_path: Path) -> None:
    svc = make(tmp_path, lease_ttl_s=10)
    job = svc.submit(SubmitRequest(prompt="slow")).id
    clock: Clock = svc.clock  # type: ignore[assignment]

    def during(request: GenerationRequest, step: int) -> None:
        if step == 2:  # the lease lapses and another worker takes the job meanwhile
            clock.now += 60
            svc.tick()
            other = svc.pull("w2", "local", ["luma-tiny"])
            assert other is not None and other.job_id == job

    loop = WorkerLoop(ServicePort(svc), FakeModel(during), Sink(), prefetch=False)
    stats = loop.run(max_jobs=1)
    # The first worker's next heartbeat was refused: it stopped instead of finishing.
    assert stats.succeeded == 0 and job in stats.stopped_at
    assert svc.get(job).state == "leased" and svc.get(job).attempts == 2
    try:
        svc.complete(job, 1, {"video": "x"})
    except StaleLease:
        pass
    else:
        raise AssertionError("a stale token must be refused")


def test_prefetched_lease_is_kept_alive_through_a_long_job(tmp_path: Path) -> None:
    svc = make(tmp_path, lease_ttl_s=3)
    clock: Clock = svc.clock  # type: ignore[assignment]
    ids = [svc.submit(SubmitRequest(prompt=p, tier="api", steps=30)).id for p in "ab"]
    port = ServicePort(svc)
    box: dict[str, WorkerLoop] = {}

    def during(request: GenerationRequest, step: int) -> None:
        if step == 1:  # fake time runs only once the prefetch (a helper thread) holds its lease
            prefetch = box["loop"]._next
            assert prefetch is not None
            prefetch.result(timeout=10)
        if request.prompt == "b" and step == 1:
            # ... and, in the second job, once the first one's upload (another thread) has
            # committed: on a loaded machine fake seconds could otherwise expire its lease.
            deadline = time.monotonic() + 30
            while svc.get(ids[0]).state.value != "succeeded" and time.monotonic() < deadline:
                time.sleep(0.01)  # polling interval
        clock.now += 1.0  # each step takes a second: the first job outlasts a lease period
        svc.tick()

    ticks = iter(range(10**6))
    loop = box["loop"] = WorkerLoop(
        port,
        FakeModel(during),
        Sink(),
        pull_wait_s=0.0,
        prefetch_lead_s=math.inf,  # lease the next job at the start: held through all 30 steps
        clock=lambda: float(next(ticks)),  # the loop's clock also advances a step per call
    )
    stats = loop.run(max_jobs=2)
    assert stats.succeeded == 2
    assert [svc.get(i).attempts for i in ids] == [1, 1]  # no lease was lost


def test_leaving_with_no_time_hands_the_job_back_with_its_place(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="long", steps=20, tier="free")).id
    other = svc.submit(SubmitRequest(prompt="next", steps=2, tier="free")).id
    box: dict[str, WorkerLoop] = {}

    def during(request: GenerationRequest, step: int) -> None:
        if request.prompt == "long" and step == 3:
            box["loop"].leave(deadline=box["loop"].clock())  # the node goes now

    loop = box["loop"] = WorkerLoop(ServicePort(svc), FakeModel(during), Sink())
    stats = loop.run(max_jobs=5)
    assert stats.handed_back == [job] and stats.succeeded == 0 and stats.started == 1
    for job_id in (job, other):  # the running job and the prefetched one are both back
        view = svc.get(job_id)
        assert (view.state, view.attempts) == ("queued", 1)
    record = svc.core.get(job)
    assert record.enqueued_at_s == record.created_at_s  # keeps its place by age
    assert svc.pull("w2", "local", ["luma-tiny"]).job_id == job


def test_a_stopped_worker_hands_its_running_job_back_with_its_place(tmp_path: Path) -> None:
    """Serve stopping the replica (a drained node, a downscale) is not the job failing: it
    goes back with its attempt count, where a lease left to expire would count one more."""
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="long", steps=20, tier="free")).id
    box: dict[str, WorkerLoop] = {}

    def during(request: GenerationRequest, step: int) -> None:
        if step == 3:
            box["loop"].stop()

    loop = box["loop"] = WorkerLoop(ServicePort(svc), FakeModel(during), Sink(), prefetch=False)
    stats = loop.run(max_jobs=5)
    assert stats.handed_back == [job] and stats.cancelled == 0 and stats.started == 1
    view = svc.get(job)
    assert (view.state, view.attempts) == ("queued", 1)
    record = svc.core.get(job)
    assert record.enqueued_at_s == record.created_at_s


def test_a_replica_s_destructor_returns_once_its_job_is_handed_back(tmp_path: Path) -> None:
    """What a worker replica's ``__del__`` runs: it must not return (Serve then ends the
    process) before the running job is back in the queue."""
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="long", steps=50, tier="free")).id
    started = threading.Event()

    def during(request: GenerationRequest, step: int) -> None:
        started.set()
        time.sleep(0.2)  # a step of model work: 10 s for the job, stopped in the first

    loop = WorkerLoop(ServicePort(svc), FakeModel(during), Sink(), prefetch=False)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert started.wait(10)
    stop_and_hand_back(loop, thread, wait_s=10)
    assert not thread.is_alive() and loop.stats.handed_back == [job]
    assert (svc.get(job).state, svc.get(job).attempts) == ("queued", 1)


def test_leaving_with_time_to_spare_finishes_the_job_and_pulls_no_more(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="short", steps=4)).id
    later = svc.submit(SubmitRequest(prompt="later", steps=4)).id
    box: dict[str, WorkerLoop] = {}

    def during(request: GenerationRequest, step: int) -> None:
        if request.prompt == "short" and step == 1:
            box["loop"].leave(deadline=box["loop"].clock() + 3600)

    loop = box["loop"] = WorkerLoop(ServicePort(svc), FakeModel(during), Sink(), prefetch=False)
    stats = loop.run(max_jobs=5)
    assert stats.succeeded == 1 and not stats.handed_back
    assert svc.get(job).state == "succeeded" and svc.get(later).state == "queued"


def test_prefetch_near_the_end_lets_a_later_api_job_go_first(tmp_path: Path) -> None:
    """A free job runs ten 1 s steps and an api job arrives at its step 3. With a 2 s lead the
    next lease is taken after step 8, so the api job runs before the free job queued earlier.
    Leasing at the start (lead inf) holds the free job through the whole run: an inversion."""

    def run_order(lead_s: float, folder: Path) -> tuple[list[str], int]:
        folder.mkdir()
        svc = make(folder)
        clock: Clock = svc.clock  # type: ignore[assignment]
        port = ServicePort(svc)
        svc.submit(SubmitRequest(prompt="free-long", tier="free", steps=10))
        svc.submit(SubmitRequest(prompt="free-next", tier="free", steps=2))
        pulls_by_step_3: list[int] = []

        def during(request: GenerationRequest, step: int) -> None:
            clock.now += 1.0
            if request.prompt == "free-long" and step == 3:
                if lead_s == math.inf:
                    port.wait_for_pulls(2)  # the prefetch went out at the start
                pulls_by_step_3.append(port.pulls)
                svc.submit(SubmitRequest(prompt="api", tier="api", steps=2))

        model = FakeModel(during)
        loop = WorkerLoop(port, model, Sink(), pull_wait_s=0.0, prefetch_lead_s=lead_s, clock=clock)
        assert loop.run(max_jobs=3).succeeded == 3
        return model.seen, pulls_by_step_3[0]

    assert run_order(2.0, tmp_path / "near-the-end") == (["free-long", "api", "free-next"], 1)
    assert run_order(math.inf, tmp_path / "at-start") == (["free-long", "free-next", "api"], 2)


def test_deleting_a_running_job_stops_it_within_a_step_and_stores_nothing(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="long", steps=20, tenant="acme")).id
    steps: list[int] = []

    def during(request: GenerationRequest, step: int) -> None:
        steps.append(step)
        if step == 3:
            svc.delete(job, tenant="acme")  # the owner deletes it mid-run

    sink = Sink()
    stats = WorkerLoop(ServicePort(svc), FakeModel(during), sink, pull_wait_s=0.0).run(1)
    assert max(steps) == 3  # the heartbeat after step 3 said "gone": no further step ran
    assert stats.cancelled == 1 and stats.succeeded == 0 and sink.stored == []
    assert svc.core.stats(0.0)["in_flight"].get("local", 0) == 0


def test_a_result_refused_because_the_job_was_deleted_is_removed(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="short", steps=2, tenant="acme")).id
    sink = Sink(on_store=lambda a: svc.delete(a.job_id, tenant="acme"))  # deleted mid-upload
    stats = WorkerLoop(ServicePort(svc), FakeModel(), sink, pull_wait_s=0.0).run(1)
    assert sink.stored == [job] and sink.discarded == [job]
    assert stats.succeeded == 0 and stats.stale == 1


SECRET_DETAIL = "AccessDenied on s3://acme-private/results/x.mp4 (/var/lib/luma/cache/abc)"


class LeakyModel(FakeModel):
    def generate(self, request: GenerationRequest, on_step) -> np.ndarray:
        if request.prompt == "bad input":
            raise InvalidRequest("frames must be at most 64; ask for fewer")
        raise OSError(SECRET_DETAIL)


class LeakySink(Sink):
    def store(self, a: Assignment, frames: np.ndarray) -> dict[str, str]:
        raise PermissionError(SECRET_DETAIL)


def reference_in(message: str) -> str:
    match = re.fullmatch(r".* \(ref ([0-9a-f]{8})\); the operator's logs have the details", message)
    assert match is not None, message
    return match.group(1)


@pytest.mark.parametrize(
    ("model", "sink", "code", "says"),
    [
        (LeakyModel(), Sink(), "model_error", "the model failed"),
        (FakeModel(), LeakySink(), "store_error", "storing the result failed"),
    ],
)
def test_internal_failures_reach_the_tenant_as_a_reference_and_the_log_has_the_text(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    model: FakeModel,
    sink: Sink,
    code: str,
    says: str,
) -> None:
    svc = make(tmp_path, max_attempts=1)
    job = svc.submit(SubmitRequest(prompt="p", tenant="acme")).id
    loop = WorkerLoop(ServicePort(svc), model, sink, prefetch=False)
    with caplog.at_level(logging.ERROR, logger="luma_ray.workers.loop"):
        loop.run(max_jobs=1)

    view = svc.get(job)
    assert view.state == "failed" and view.error is not None
    assert view.error.code == code and view.error.message.startswith(says)
    assert "s3://" not in view.error.message and "/var/lib" not in view.error.message
    assert "Error" not in view.error.message  # not even the exception's type
    ref = reference_in(view.error.message)
    (record,) = [r for r in caplog.records if ref in r.getMessage()]
    assert record.exc_info is not None and SECRET_DETAIL in str(record.exc_info[1])
    assert job in record.getMessage()


class FailuresSeen(ServicePort):
    """The real adapter, remembering every failure message it reported."""

    def __init__(self, svc: SchedulerService) -> None:
        super().__init__(svc)
        self.messages: list[str] = []

    def fail(self, a: Assignment, code: str, message: str, retryable: bool) -> None:
        self.messages.append(message)
        super().fail(a, code, message, retryable)


def test_each_attempt_gets_its_own_reference(tmp_path: Path) -> None:
    svc = make(tmp_path, max_attempts=2)
    job = svc.submit(SubmitRequest(prompt="p")).id
    port = FailuresSeen(svc)
    WorkerLoop(port, LeakyModel(), Sink(), prefetch=False, pull_wait_s=0.0).run(max_jobs=2)
    assert svc.get(job).state == "failed" and len(port.messages) == 2
    assert len({reference_in(m) for m in port.messages}) == 2


def test_bad_input_keeps_its_own_message(tmp_path: Path) -> None:
    svc = make(tmp_path)
    job = svc.submit(SubmitRequest(prompt="bad input")).id
    WorkerLoop(ServicePort(svc), LeakyModel(), Sink(), prefetch=False).run(max_jobs=1)
    view = svc.get(job)
    assert view.state == "failed" and view.error is not None
    assert (view.error.code, view.error.message) == (
        "invalid_request",
        "frames must be at most 64; ask for fewer",
    )
