"""The job state machine: the table, one checked transition, terminal finality, requeues."""

from __future__ import annotations

import pytest

from luma_ray.errors import IllegalTransition
from luma_ray.jobs import (
    TERMINAL,
    TRANSITIONS,
    GenerationRequest,
    Job,
    JobId,
    JobState,
    Lease,
    Progress,
    TenantId,
    WorkerId,
    new_job_id,
    transition,
)


def make_job(**kw: object) -> Job:
    base = dict(
        id=JobId("gen_x"),
        tenant=TenantId("t1"),
        tier="free",
        model="luma-tiny",
        params=GenerationRequest(prompt="a cat"),
        created_at_s=10.0,
        enqueued_at_s=10.0,
    )
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


def test_every_state_has_a_row_and_terminal_rows_are_empty() -> None:
    assert set(TRANSITIONS) == set(JobState)
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        assert state.terminal


@pytest.mark.parametrize("src", list(JobState))
@pytest.mark.parametrize("dst", list(JobState))
def test_transition_follows_the_table(src: JobState, dst: JobState) -> None:
    job = make_job(state=src)
    if dst in TRANSITIONS[src]:
        transition(job, dst, 20.0, "test")
        assert job.state is dst
        assert job.history[-1] == (20.0, dst, "test")
    else:
        with pytest.raises(IllegalTransition, match=f"{src.value} to {dst.value}"):
            transition(job, dst, 20.0)
        assert job.state is src and job.history == ()


def test_requeue_counts_attempts_drops_lease_and_keeps_enqueue_time() -> None:
    job = make_job()
    assert job.attempts == 1
    transition(job, JobState.LEASED, 11.0)
    job.lease = Lease(WorkerId("w1"), "c1", 71.0, token=7)
    transition(job, JobState.RUNNING, 12.0)
    transition(job, JobState.QUEUED, 90.0, "lease expired")
    assert job.attempts == 2
    assert job.lease is None
    assert job.enqueued_at_s == 10.0
    assert [h[1] for h in job.history] == [JobState.LEASED, JobState.RUNNING, JobState.QUEUED]


def test_terminal_states_are_final() -> None:
    job = make_job()
    transition(job, JobState.CANCELLED, 11.0)
    assert job.finished_at_s == 11.0
    for dst in JobState:
        with pytest.raises(IllegalTransition, match="terminal states are final"):
            transition(job, dst, 12.0)


def test_ids_sort_by_time_and_are_unguessable() -> None:
    early = new_job_id(1_700_000_000.0)
    late = new_job_id(1_700_000_000.5)
    assert early < late
    assert early.startswith("gen_") and len(early) == 30
    many = {new_job_id(1_700_000_000.0) for _ in range(2000)}
    assert len(many) == 2000  # 80 random bits per id
    fixed = new_job_id(5.0, bytes(10))
    assert fixed == new_job_id(5.0, bytes(10))


def test_codec_round_trips_every_field() -> None:
    from luma_ray.jobs import JobError
    from luma_ray.jobs.codec import job_from_json, job_to_json

    job = make_job(params=GenerationRequest(prompt="a cat", seed=7, steps=4, width=64, height=64))
    transition(job, JobState.LEASED, 11.0, "leased")
    job.lease = Lease(WorkerId("w1"), "c1", 71.0, token=7)
    job.progress = Progress("running", 2, 4)
    job.error = JobError("oom", "out of memory", retryable=True)
    job.result_uris = {"video": "file:///x.mp4"}
    back = job_from_json(job_to_json(job))
    assert back == job
    assert isinstance(back.history[0], tuple) and back.state is JobState.LEASED


def test_a_queued_job_shares_one_empty_mapping_and_history_and_cannot_write_to_them() -> None:
    from luma_ray.jobs.codec import job_from_json, job_to_json
    from luma_ray.jobs.model import EMPTY

    job = make_job()
    back = job_from_json(job_to_json(job))
    for j in (job, back):  # as made, and as a restart reads it back
        assert j.metadata is EMPTY and j.result_uris is EMPTY and j.stage_attempts is EMPTY
        assert j.history == ()
    with pytest.raises(TypeError, match="read-only"):
        back.metadata["label"] = "x"  # type: ignore[index]
    assert EMPTY == {}
    back.metadata = {"label": "x"}  # a change assigns a new mapping
    assert job_from_json(job_to_json(back)).metadata == {"label": "x"}


def test_a_row_the_fast_decoder_refuses_is_mended_or_named() -> None:
    import json

    from luma_ray.jobs.codec import job_from_json, job_to_json
    from luma_ray.jobs.request import DEFAULT_STEPS

    row = json.loads(job_to_json(make_job()))
    row["params"]["steps"] = None  # rows from before intake resolved steps
    assert job_from_json(json.dumps(row)).params.steps == DEFAULT_STEPS
    row["attempts"] = "many"
    with pytest.raises(ValueError, match="attempts"):
        job_from_json(json.dumps(row))
