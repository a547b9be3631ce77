"""Pipelines of stages in the scheduler (docs/pipelines.md): the service over a real SQLite
journal with a fake clock, no Ray. A job runs generate → qa → caption → thumbnail, each stage
pulled only by its own pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, StaleLease
from luma_ray.jobs import JobState
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import Assignment, Complete, Reject, SubmitRequest
from luma_ray.scheduler.service import SchedulerService

_LIMITS = ModelLimits(
    max_frames=64,
    max_height=128,
    max_width=128,
    max_steps=50,
    default_steps=8,
    default_fps=8,
    size_multiple=8,
)
LIMITS = {"luma-tiny": _LIMITS, "other": _LIMITS}
CHAIN = ["generate", "qa", "caption", "thumbnail"]
GEN, QA, CAP, THUMB = (
    ["luma-tiny"],
    ["luma-tiny:qa"],
    ["luma-tiny:caption"],
    ["luma-tiny:thumbnail"],
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, **cfg: object) -> SchedulerService:
    config = {"pipelines": {"luma-tiny": CHAIN}, "lease_ttl_s": 10, **cfg}
    return SchedulerService(parse_config(config), Journal(path), LIMITS, clock)


def take(svc: SchedulerService, queues: list[str], worker: str = "w") -> Assignment:
    lease = svc.pull(worker, "local", queues)
    assert lease is not None, f"nothing queued for {queues}"
    return lease


def test_a_job_runs_every_stage_on_its_own_pool_and_succeeds_at_the_last(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    job_id = svc.submit(SubmitRequest(prompt="a cat", tier="free", seed=7)).id
    assert svc.get(job_id).stage == "generate"
    # Stage pools see nothing until the generation is done.
    assert svc.pull("qa", "local", QA) is None
    gen = take(svc, GEN)
    assert (gen.stage, dict(gen.inputs)) == ("generate", {})
    view = svc.complete(gen.job_id, gen.token, {"video": "v.mp4", "thumbnail": "t0.png"}, "v1")
    assert (view.state, view.stage, view.attempts) == (JobState.QUEUED, "qa", 1)
    assert svc.pull("gen", "local", GEN) is None  # the generate pool never gets it again
    qa = take(svc, QA)
    assert qa.stage == "qa" and qa.inputs == {"video": "v.mp4", "thumbnail": "t0.png"}
    svc.complete(qa.job_id, qa.token, {})
    cap = take(svc, CAP)
    svc.call(Complete(cap.job_id, cap.token, {}, caption="a cat on a mat"))
    thumb = take(svc, THUMB)
    assert thumb.inputs["video"] == "v.mp4"
    done = svc.complete(thumb.job_id, thumb.token, {"thumbnail": "t.png", "spritesheet": "s.png"})
    assert (done.state, done.stage, done.caption) == (
        JobState.SUCCEEDED,
        "thumbnail",
        "a cat on a mat",
    )
    # Each stage's outputs join the result; a later stage's thumbnail replaces the first.
    assert dict(done.result_uris) == {
        "video": "v.mp4",
        "thumbnail": "t.png",
        "spritesheet": "s.png",
    }
    assert done.model_version == "v1"  # the generation's version, not a stage's
    # Events carry the stage: every state change is journaled with it.
    reasons = [why for _, _, why in svc.core.get(job_id).history]
    assert "generate done; queued for qa" in reasons and "qa done; queued for caption" in reasons


def test_a_later_stage_keeps_the_original_enqueue_time_and_its_place(tmp_path: Path) -> None:
    """A job half done is not sent to the back of the line: queued for QA after a younger
    job was, it is still pulled first (the policy sees it by its original age)."""
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, policy={"name": "fifo"}, fair_share=False)
    old = svc.submit(SubmitRequest(prompt="old", tier="free")).id
    enqueued_at = svc.core.get(old).enqueued_at_s
    clock.now += 5
    gen = take(svc, GEN)
    clock.now += 60  # a long generation; meanwhile other jobs reach the QA queue
    young = svc.submit(SubmitRequest(prompt="young", tier="free")).id
    young_gen = take(svc, GEN, "g2")
    assert young_gen.job_id == young
    svc.complete(young_gen.job_id, young_gen.token, {"video": "y.mp4"})
    clock.now += 1
    svc.complete(gen.job_id, gen.token, {"video": "o.mp4"})
    assert svc.core.get(old).enqueued_at_s == enqueued_at
    first = take(svc, QA)
    assert first.job_id == old and first.wait_s == pytest.approx(clock.now - enqueued_at)


def test_a_lapsed_lease_on_a_stage_requeues_that_stage_only(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    job_id = svc.submit(SubmitRequest(prompt="p")).id
    gen = take(svc, GEN)
    svc.complete(gen.job_id, gen.token, {"video": "v.mp4"})
    qa = take(svc, QA, "qa-1")
    svc.heartbeat(qa.job_id, qa.token, 1, 1)
    clock.now += 11  # the QA worker died: its lease lapses
    assert svc.tick() == 1
    view = svc.get(job_id)
    assert (view.state, view.stage, view.attempts) == (JobState.QUEUED, "qa", 2)
    assert svc.pull("gen", "local", GEN) is None  # never generated again
    again = take(svc, QA, "qa-2")
    assert again.inputs == {"video": "v.mp4"} and again.attempts == 2
    with pytest.raises(StaleLease):  # the dead worker's late verdict is refused
        svc.complete(qa.job_id, qa.token, {})
    svc.complete(again.job_id, again.token, {})
    job = svc.core.get(job_id)
    assert job.stage_attempts == {"generate": 1, "qa": 2}
    assert (job.stage, job.attempts) == ("caption", 1)  # the next stage counts afresh


def test_qa_rejection_regenerates_with_a_new_seed_then_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, qa_regenerations=2)
    job_id = svc.submit(SubmitRequest(prompt="p", seed=41)).id
    seeds = []
    for n in range(3):
        gen = take(svc, GEN)
        seeds.append(gen.request.seed)
        svc.complete(gen.job_id, gen.token, {"video": f"v{n}.mp4"})
        qa = take(svc, QA)
        assert qa.inputs == {"video": f"v{n}.mp4"}  # the new video, not an older one
        view = svc.call(Reject(qa.job_id, qa.token, ("frozen frames", "too dark")))
        if n < 2:
            assert (view.state, view.stage, view.regenerations) == (
                JobState.QUEUED,
                "generate",
                n + 1,
            )
            assert view.result_uris == {}
    assert seeds == [41, 42, 43]  # seed + regenerations, recorded in the job's params
    assert (view.state, view.regenerations) == (JobState.FAILED, 2)
    assert view.error is not None and view.error.code == "qa_failed"
    assert view.error.message == "qa: frozen frames; too dark"
    assert svc.core.get(job_id).params.seed == 43


def test_only_a_qa_stage_rejects(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    svc.submit(SubmitRequest(prompt="p"))
    gen = take(svc, GEN)
    with pytest.raises(InvalidRequest, match="only a qa stage rejects"):
        svc.reject(gen.job_id, gen.token, ("no",))
    assert svc.get(gen.job_id).state is JobState.LEASED  # nothing changed


def test_a_restart_mid_pipeline_resumes_at_the_stage(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock)
    job_id = svc.submit(SubmitRequest(prompt="p", seed=3)).id
    gen = take(svc, GEN)
    svc.complete(gen.job_id, gen.token, {"video": "v.mp4"})
    qa = take(svc, QA)
    svc.reject(qa.job_id, qa.token, ("blurry",))
    gen = take(svc, GEN)
    svc.complete(gen.job_id, gen.token, {"video": "v2.mp4"})
    qa = take(svc, QA)
    svc.complete(qa.job_id, qa.token, {})  # queued for caption when the actor dies

    restarted = service(db, clock)  # a restarted actor reads the same journal
    job = restarted.core.get(job_id)
    assert (job.state, job.stage, job.regenerations, job.params.seed) == (
        JobState.QUEUED,
        "caption",
        1,
        4,
    )
    assert restarted.pull("g", "local", GEN) is None and restarted.pull("q", "local", QA) is None
    cap = take(restarted, CAP)
    assert cap.inputs == {"video": "v2.mp4"}
    restarted.complete(cap.job_id, cap.token, {}, caption="c")
    thumb = take(restarted, THUMB)
    restarted2 = service(db, clock)  # and a lease held across a restart still commits
    done = restarted2.complete(thumb.job_id, thumb.token, {"thumbnail": "t.png"})
    assert (done.state, done.caption) == (JobState.SUCCEEDED, "c")


def test_models_without_a_pipeline_run_alone(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    job_id = svc.submit(SubmitRequest(prompt="p", model="other")).id
    lease = take(svc, ["other"])
    assert lease.stage is None and lease.inputs == {}
    view = svc.complete(lease.job_id, lease.token, {"video": "v.mp4", "thumbnail": "t.png"})
    assert (view.state, view.stage) == (JobState.SUCCEEDED, None)
    assert svc.core.get(job_id).stages == ()


def test_a_pipeline_must_start_with_generate() -> None:
    from luma_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="must start with 'generate'"):
        parse_config({"pipelines": {"luma-tiny": ["qa", "generate"]}})
    with pytest.raises(ConfigError, match="unknown stage"):
        parse_config({"pipelines": {"luma-tiny": ["generate", "upscale"]}})
