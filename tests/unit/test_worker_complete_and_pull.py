"""The pull loop commits a result and leases its next job in one scheduler call when it has
no lease in hand (``CompleteAndPull``), counted at the real service (fake clock, temp
journal, fake model; no Ray)."""

from __future__ import annotations

from pathlib import Path

from luma_ray.scheduler.protocol import Assignment, SubmitRequest
from luma_ray.workers.loop import WorkerLoop
from luma_ray.workers.stage_worker import StageRunner, StageSink
from luma_ray.workers.stages import Stage, StageInputs, StageResult
from tests.unit.test_worker_loop import Clock, FakeModel, ServicePort, Sink, make


def test_without_prefetch_each_result_and_the_next_lease_are_one_call(tmp_path: Path) -> None:
    svc = make(tmp_path)
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="api")).id for i in range(3)]
    sink = Sink()
    stats = WorkerLoop(ServicePort(svc), FakeModel(), sink, prefetch=False).run(max_jobs=3)
    assert stats.succeeded == 3 and sink.stored == ids
    assert all(svc.get(i).state == "succeeded" for i in ids)
    # One pull to start; each result then leases the next job; the last one ends alone.
    assert svc.calls["Pull"] == 1
    assert svc.calls["CompleteAndPull"] == 2
    assert svc.calls["Complete"] == 1


def test_a_refused_result_is_deleted_and_the_lease_that_came_with_it_runs(
    tmp_path: Path,
) -> None:
    svc = make(tmp_path, lease_ttl_s=10)
    clock: Clock = svc.clock  # type: ignore[assignment]
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="api")).id for i in range(2)]
    lapsed: list[str] = []

    def lapse_first(a: Assignment) -> None:  # storing took past the lease: it lapsed
        if not lapsed:
            lapsed.append(a.job_id)
            clock.now += 60
            svc.tick()

    sink = Sink(on_store=lapse_first)
    stats = WorkerLoop(ServicePort(svc), FakeModel(), sink, prefetch=False).run(max_jobs=3)
    assert stats.stale == 1 and sink.discarded == [ids[0]]
    # The refused commit still leased: the requeued job, which this worker then ran again.
    assert stats.generated == {ids[0]: 2, ids[1]: 1} and stats.succeeded == 2
    assert svc.get(ids[0]).state == "succeeded" and svc.get(ids[1]).state == "succeeded"
    assert svc.calls["Pull"] == 1 and svc.calls["CompleteAndPull"] == 2


class Captioner(Stage):
    name = "caption"

    def run(self, request: object, inputs: StageInputs) -> StageResult:
        return StageResult(files={}, caption="a red fox")


def test_a_stage_worker_commits_its_caption_with_the_next_lease(tmp_path: Path) -> None:
    svc = make(tmp_path, pipelines={"luma-tiny": ["generate", "caption"]})
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="api")).id for i in range(2)]
    for i in ids:  # the generate stage, done by a model worker
        a = svc.pull("gpu", "local", ["luma-tiny"])
        assert a is not None
        svc.complete(a.job_id, a.token, {"video": f"file:///{i}.mp4"})
    port = ServicePort(svc, "cpu", ("luma-tiny:caption",))
    runner = StageRunner(Captioner(), None)  # type: ignore[arg-type]
    loop = WorkerLoop(port, runner, StageSink(None), prefetch=False)  # type: ignore[arg-type]
    stats = loop.run(max_jobs=2)
    assert stats.succeeded == 2
    assert [svc.get(i).caption for i in ids] == ["a red fox", "a red fox"]
    assert all(svc.get(i).state == "succeeded" for i in ids)
    assert svc.calls["CompleteAndPull"] == 1
