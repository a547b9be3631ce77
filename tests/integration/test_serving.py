"""End to end on a real local Ray cluster: submit through luma_ray's client, real Serve
replicas run the real reference model, results are real MP4 files; crash and cancel paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from luma_ray.errors import InvalidRequest, StaleLease
from luma_ray.scheduler.protocol import Complete
from tests.integration.conftest import LEASE_TTL_S, journal_record, wait_for

pytestmark = pytest.mark.timeout(600)


def test_jobs_of_several_tiers_yield_mp4s(system, tmp_path: Path) -> None:
    from luma_ray.models.encode import probe_mp4

    client = system["client"]
    asks = [("api", 16, "64x64"), ("enterprise", 8, "48x32"), ("free", 12, "32x64")]
    ids = [
        client.submit(
            f"a {tier} fox in the snow", tier=tier, frames=frames, size=size, steps=3, seed=7
        )
        for tier, frames, size in asks
    ]
    for job_id, (tier, frames, size) in zip(ids, asks, strict=True):
        view = client.wait(job_id, timeout=300)
        assert view.state == "succeeded", view
        assert view.tier == tier and view.attempts == 1
        video = client.download(job_id, tmp_path / f"{job_id}.mp4")
        probe = probe_mp4(video)
        width, height = (int(v) for v in size.split("x"))
        assert (probe.frames, probe.width, probe.height) == (frames, width, height)
        assert probe.codec in ("h264", "libx264", "libopenh264")
        thumb = client.download(job_id, tmp_path / f"{job_id}.png", variant="thumbnail")
        assert thumb.read_bytes()[:4] == b"\x89PNG"


def test_bad_parameters_are_refused_at_submit(system) -> None:
    client = system["client"]
    before = len(client.list(limit=1000))
    for kwargs, message in [
        ({"model": "nope"}, "unknown model 'nope'"),
        ({"frames": 0}, "frames is 0"),
        ({"frames": 10_000}, "frames is 10000"),
        ({"size": "0x64"}, "size sides must be positive"),
        ({"size": "60x64"}, "width 60 is not a multiple"),
        ({"size": "big"}, "must look like '64x64'"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            client.submit("a cat", **kwargs)
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        client.submit("   ")
    assert len(client.list(limit=1000)) == before


def test_cancel_queued_never_starts_and_running_stops_within_a_step(system) -> None:
    client = system["client"]
    # The local cluster may hold 2 leases (one running, one prefetched): a third job queues.
    long_id = client.submit("a very long take", steps=40, seed=1, tier="api")
    held_id = client.submit("the next take", steps=2, seed=2, tier="api")
    wait_for(lambda: client.get(long_id).state == "running", what="the long job to run")
    wait_for(lambda: client.get(held_id).state == "leased", what="a prefetched lease")
    queued_id = client.submit("never to be made", steps=2, seed=3, tier="api")
    assert client.get(queued_id).state == "queued"
    assert client.cancel(queued_id).state == "cancelled"

    wait_for(lambda: client.get(long_id).progress.step, what="progress")
    cancelled = client.cancel(long_id)
    assert cancelled.state == "cancelled"
    step = cancelled.progress.step  # the last step the scheduler heard of
    assert client.wait(held_id, timeout=300).state == "succeeded"
    # The queued job was passed over for good: it never got a lease.
    record = journal_record(system, queued_id)
    assert record["state"] == "cancelled"
    assert [h[1] for h in record["history"]] == ["cancelled"]
    # The running job stopped at the step after the cancel.
    stopped = wait_for(
        lambda: next(
            (
                s["stopped_at"][long_id]
                for s in worker_stats_via_serve()
                if long_id in s["stopped_at"]
            ),
            None,
        ),
        what="the worker to report the stop",
    )
    # The first heartbeat after the cancel stopped the model: within one sampler step.
    assert stopped == (step + 1, 40)


def worker_stats_via_serve() -> list[dict[str, Any]]:
    from ray import serve

    handle = serve.get_deployment_handle("luma-tiny-workers", app_name="luma-tiny-workers")
    return [handle.stats.remote().result(timeout_s=30)]


def test_killed_worker_job_is_requeued_and_completes_once(system) -> None:
    import ray

    client = system["client"]
    job_id = client.submit("a job whose worker dies", steps=40, seed=5, tier="api")
    wait_for(lambda: client.get(job_id).progress.step >= 1, what="the job to run")
    old_token = journal_record(system, job_id)["lease"]["token"]
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::luma-tiny-workers")
    ]
    assert len(replicas) == 1
    ray.kill(
        ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True
    )

    wait_for(
        lambda: client.get(job_id).attempts == 2,
        timeout_s=LEASE_TTL_S * 10,
        what="the lost lease to expire and requeue",
    )
    view = client.wait(job_id, timeout=300)
    assert view.state == "succeeded" and view.attempts == 2
    with pytest.raises(StaleLease):
        client.scheduler.call(Complete(job_id, old_token, {"video": "file:///stale.mp4"}))
    record = journal_record(system, job_id)
    assert [h[2] for h in record["history"]].count("result committed") == 1
    assert record["result_uris"] == view.result_uris


def test_scheduler_restart_loses_no_job(system) -> None:
    import ray

    client = system["client"]
    ids = [
        client.submit(f"survivor {i}", steps=40 if i == 0 else 4, seed=i, tier="free")
        for i in range(5)
    ]
    wait_for(lambda: client.get(ids[0]).state == "running", what="the first job to start")
    states = {client.get(i).state for i in ids}
    assert "running" in states and "queued" in states
    ray.kill(system["scheduler"].actor, no_restart=False)  # Ray restarts it from the journal
    wait_for(lambda: _ping(system["scheduler"]), what="the scheduler to restart")
    for job_id in ids:
        view = client.wait(job_id, timeout=300)
        assert view.state == "succeeded", view
        record = journal_record(system, job_id)
        assert [h[2] for h in record["history"]].count("result committed") == 1
    generated = worker_stats_via_serve()[0]["generated"]
    assert [generated.get(job_id) for job_id in ids] == [1] * len(ids)  # none ran twice


def _ping(handle: Any) -> bool:
    from luma_ray.runtime.handle import SchedulerHandle
    from luma_ray.scheduler.protocol import Ping

    try:
        return SchedulerHandle(handle.actor, 0.0, 5.0).call(Ping()) == "ok"
    except Exception:
        return False


def test_a_draining_node_hands_its_job_back_with_its_place(system) -> None:
    """Burst capacity leaving: Ray drains the node (as the Slurm script does when the
    allocation ends) with too little time left for the running job; the worker stops it,
    hands it back, and it runs elsewhere with its original enqueue time and attempt count.
    Last in the session: the drained node stays drained."""
    import subprocess
    import sys

    import ray

    from .test_hetero import pool_stats
    from .versions import MIXED_MODEL

    client = system["client"]
    job = client.submit("a long burst take", model=MIXED_MODEL, frames=16, steps=50, seed=9)

    def runner() -> dict[str, Any] | None:
        for app in ("mixed-a", "mixed-b"):
            stats = pool_stats(app)
            if stats["current"] == job and client.get(job).progress.step >= 2:
                return stats
        return None

    stats = wait_for(runner, what="the job to run on a mixed pool")
    node_id = stats["node_labels"]["ray.io/node-id"]
    drain = [
        sys.executable, "-m", "ray.scripts.scripts", "drain-node",
        "--address", ray.get_runtime_context().gcs_address,
        "--node-id", node_id,
        "--reason", "DRAIN_NODE_REASON_PREEMPTION",
        "--reason-message", "burst allocation ends",
        "--deadline-remaining-seconds", "3",
    ]  # fmt: skip
    subprocess.run(drain, check=True, capture_output=True, timeout=60)
    # Serve stops the drained node's replica at the deadline, so the journal is the witness:
    # a lease that merely expired would have counted an attempt and said so.
    view = client.wait(job, timeout=300)
    assert (view.state, view.attempts) == ("succeeded", 1), view
    record = journal_record(system, job)
    assert record["enqueued_at_s"] == record["created_at_s"]
    reasons = [h[2] for h in record["history"]]
    assert "handed back by its worker" in reasons and "lease expired" not in reasons
    leased = [h[2] for h in record["history"] if h[1] == "leased"]
    assert len(leased) == 2 and leased[0] != leased[1]  # it ran on the other pool
