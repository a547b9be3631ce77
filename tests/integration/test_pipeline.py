"""Pipelines on a real cluster (docs/pipelines.md): ``tiny-pipe`` (the reference weights under
another name) runs generate → qa → caption → thumbnail, each stage on its own pool (the
session's config, conftest.py). QA is the reference check with two scripted prompts
(``pipeline_stages.py``); caption and thumbnail are the built-in stages."""

from __future__ import annotations

from typing import Any

from .conftest import LEASE_TTL_S, journal_record, wait_for
from .versions import PIPE_MODEL


def generated(app: str) -> dict[str, int]:
    from ray import serve

    handle = serve.get_deployment_handle(app, app_name=app)
    stats: dict[str, Any] = handle.stats.remote().result(timeout_s=30)
    return dict(stats["generated"])


def submit(client: Any, prompt: str, seed: int, **size: Any) -> str:
    shape = size or {"frames": 4, "size": "16x16", "steps": 2}
    job_id: str = client.submit(prompt, model=PIPE_MODEL, seed=seed, tier="api", **shape)
    return job_id


def an_empty_or_grammar_caption(caption: str | None) -> bool:
    """The built-in captioner's answer for any video: a grammar prompt or an empty frame."""
    return caption is not None and caption.endswith(" background")


def test_a_job_passes_every_stage_and_a_killed_qa_replica_reruns_only_qa(system, tmp_path) -> None:
    import ray

    client = system["client"]
    job_id = submit(client, f"slow-qa {tmp_path / 'qa-started'}", seed=7)
    wait_for(
        lambda: (v := client.get(job_id)).stage == "qa" and v.state == "running",
        what="the QA stage to run",
    )
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{PIPE_MODEL}-qa-workers")
    ]
    assert len(replicas) == 1
    ray.kill(
        ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True
    )
    view = client.wait(job_id, timeout=LEASE_TTL_S * 10 + 120)
    assert view.state == "succeeded", view
    assert view.stage == "thumbnail" and an_empty_or_grammar_caption(view.caption), view
    assert set(view.result_uris) == {"video", "thumbnail", "spritesheet"}
    job = journal_record(system, job_id)
    # The lapsed QA lease re-ran QA only: generation ran once, QA twice, the rest once.
    assert job["stage_attempts"] == {"generate": 1, "qa": 2, "caption": 1}
    assert job["attempts"] == 1
    assert generated(f"{PIPE_MODEL}-workers")[job_id] == 1
    reasons = [h[2] for h in job["history"]]
    assert reasons.count("generate done; queued for qa") == 1
    assert "lease expired" in reasons


def test_a_qa_rejection_regenerates_with_a_new_seed(system, tmp_path) -> None:
    client = system["client"]
    job_id = submit(client, f"reject-once {tmp_path / 'rejected'}", seed=11)
    view = client.wait(job_id, timeout=300)
    assert view.state == "succeeded", view
    assert (view.regenerations, view.params.seed) == (1, 12)
    assert an_empty_or_grammar_caption(view.caption), view
    assert generated(f"{PIPE_MODEL}-workers")[job_id] == 2  # generated again, once
    reasons = [h[2] for h in journal_record(system, job_id)["history"]]
    assert any(r.startswith("qa rejected: the first video") for r in reasons)


def test_a_grammar_prompt_passes_the_reference_qa_and_its_caption_names_what_it_shows(
    system,
) -> None:
    client = system["client"]
    prompt = "a red circle moving right on a black background"
    job_id = submit(client, prompt, seed=0, frames=8, size="64x64")  # the model's defaults
    view = client.wait(job_id, timeout=300)
    job = journal_record(system, job_id)
    assert view.state == "succeeded", (view, job["history"], job.get("error"))
    assert set(view.result_uris) == {"video", "thumbnail", "spritesheet"}
    assert job["stage_attempts"]["qa"] >= 1 and job["stage_attempts"]["caption"] == 1
    # QA passed the video it kept: the caption, measured from those frames, is the prompt.
    assert view.caption is not None and "red circle" in view.caption, view.caption
    assert view.caption.endswith("on a black background"), view.caption


def relayed_beats() -> int:
    """Beats the node relays have sent so far (the pipeline's pools use them: conftest.py)."""
    import ray

    from luma_ray.workers.beat_relay import RELAY_PREFIX

    total = 0
    for named in ray.util.list_named_actors(all_namespaces=True):
        if named["name"].startswith(RELAY_PREFIX):
            relay = ray.get_actor(named["name"], namespace=named["namespace"])
            total += ray.get(relay.counts.remote(), timeout=30)["beats"]
    return total


def test_the_pipelines_workers_beat_through_their_nodes_relay(system) -> None:
    """Their heartbeats reach the scheduler as ``Heartbeats`` calls from the node's relay,
    and the job's progress and lease go on as with direct beats."""
    from luma_ray.scheduler.protocol import CallCounts

    client = system["client"]
    before = relayed_beats()
    calls = system["scheduler"].call(CallCounts()).get("Heartbeats", 0)
    prompt = "a red circle moving right on a black background"  # passes the reference QA
    job_id = submit(client, prompt, seed=0, frames=8, size="64x64")
    view = client.wait(job_id, timeout=300)
    assert view.state == "succeeded" and view.attempts == 1, view
    assert relayed_beats() >= before + 4  # generate's four steps at least
    assert system["scheduler"].call(CallCounts()).get("Heartbeats", 0) > calls
