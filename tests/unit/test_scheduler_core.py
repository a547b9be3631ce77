"""The pure scheduler core: submit, pull, leases, fencing, cancel, limits, requeues."""

from __future__ import annotations

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import BackPressure, InvalidRequest, NotFound, StaleLease
from luma_ray.jobs import (
    GenerationRequest,
    Job,
    JobError,
    JobId,
    JobState,
    Progress,
    TenantId,
    WorkerId,
)
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.decisions import GiveUp, Requeue

W1, W2 = WorkerId("w1"), WorkerId("w2")


def job(n: int, tier: str = "free", tenant: str = "t1", model: str = "m", at: float = 0.0) -> Job:
    return Job(
        id=JobId(f"gen_{n:04d}"),
        tenant=TenantId(tenant),
        tier=tier,
        model=model,
        params=GenerationRequest(prompt="p"),
        created_at_s=at,
        enqueued_at_s=at,
    )


def sched(**cfg: object) -> SchedulerCore:
    return SchedulerCore(parse_config({"policy": {"name": "pct_slo"}, **cfg}))


def test_pull_leases_in_policy_order_and_complete_commits_once() -> None:
    s = sched()
    s.submit(job(1, "free", at=0.0), 0.0)
    s.submit(job(2, "api", at=50.0), 50.0)
    d = s.pull(W1, "c1", ["m"], 100.0)
    assert d is not None and d.job_id == "gen_0002"  # api at 50/120 beats free at 100/7200
    assert s.get(d.job_id).state is JobState.LEASED
    assert s.heartbeat(d.job_id, d.token, 101.0, step=1, total=4).cancel is False
    assert s.get(d.job_id).state is JobState.RUNNING
    s.complete(d.job_id, d.token, 110.0, {"video": "file:///v.mp4"})
    assert s.get(d.job_id).state is JobState.SUCCEEDED
    # Done at its last heartbeat's step 1 of 4: a succeeded job shows all of its steps done.
    assert s.get(d.job_id).progress == Progress("done", 4, 4)
    with pytest.raises(StaleLease):
        s.complete(d.job_id, d.token, 111.0, {"video": "file:///again.mp4"})
    assert s.get(d.job_id).result_uris == {"video": "file:///v.mp4"}


def test_models_filter_what_a_worker_may_pull() -> None:
    s = sched()
    s.submit(job(1, model="big"), 0.0)
    assert s.pull(W1, "c1", ["small"], 1.0) is None
    d = s.pull(W1, "c1", ["small", "big"], 1.0)
    assert d is not None and d.job_id == "gen_0001"


def test_expired_lease_requeues_and_stale_token_is_refused() -> None:
    s = sched(lease_ttl_s=30)
    s.submit(job(1), 0.0)
    first = s.pull(W1, "c1", ["m"], 1.0)
    assert first is not None
    assert s.expire_leases(20.0) == []
    decisions = s.expire_leases(31.0)
    assert decisions == [Requeue(JobId("gen_0001"), 2, "lease expired")]
    j = s.get(JobId("gen_0001"))
    assert j.state is JobState.QUEUED and j.enqueued_at_s == 0.0 and j.attempts == 2
    second = s.pull(W2, "c1", ["m"], 32.0)
    assert second is not None and second.token > first.token
    with pytest.raises(StaleLease, match="not current"):
        s.complete(first.job_id, first.token, 33.0, {"video": "x"})
    with pytest.raises(StaleLease):
        s.heartbeat(first.job_id, first.token, 33.0)
    s.complete(second.job_id, second.token, 34.0, {"video": "y"})
    assert s.get(second.job_id).result_uris == {"video": "y"}


def test_worker_lost_requeues_and_attempts_run_out() -> None:
    s = sched(max_attempts=2)
    s.submit(job(1), 0.0)
    s.pull(W1, "c1", ["m"], 1.0)
    assert [type(d) for d in s.worker_lost(W1, 2.0)] == [Requeue]
    s.pull(W2, "c1", ["m"], 3.0)
    out = s.worker_lost(W2, 4.0)
    assert [type(d) for d in out] == [GiveUp]
    j = s.get(JobId("gen_0001"))
    assert j.state is JobState.FAILED and j.error is not None
    assert j.error.code == "attempts_exhausted"
    assert s.in_flight["c1"] == 0


def test_cancel_queued_never_starts_and_running_is_told() -> None:
    s = sched()
    s.submit(job(1), 0.0)
    s.submit(job(2, at=1.0), 1.0)
    s.cancel(JobId("gen_0001"), 2.0)
    d = s.pull(W1, "c1", ["m"], 3.0)
    assert d is not None and d.job_id == "gen_0002"
    assert s.pull(W1, "c1", ["m"], 4.0) is None
    s.cancel(d.job_id, 5.0)
    assert s.heartbeat(d.job_id, d.token, 6.0).cancel is True
    with pytest.raises(StaleLease):
        s.complete(d.job_id, d.token, 7.0, {"video": "x"})
    assert s.get(d.job_id).state is JobState.CANCELLED
    assert s.in_flight["c1"] == 0


def test_cluster_dispatch_limit_is_back_pressure() -> None:
    s = sched(clusters={"slurm": {"dispatch_limit": 1}}, default_dispatch_limit=2)
    for n in range(5):
        s.submit(job(n, at=float(n)), float(n))
    a = s.pull(W1, "slurm", ["m"], 10.0)
    assert a is not None
    assert s.pull(W2, "slurm", ["m"], 10.0) is None
    assert s.refused_pulls["slurm"] == 1
    assert s.pull(W2, "slurm", ["m"], 11.0, first_try=False) is None  # the same pull, waiting
    assert s.refused_pulls["slurm"] == 1
    assert s.pull(W1, "cloud", ["m"], 10.0) is not None
    assert s.pull(W1, "cloud", ["m"], 10.0) is not None
    assert s.pull(W1, "cloud", ["m"], 10.0) is None  # the default limit
    s.complete(a.job_id, a.token, 11.0, {})
    assert s.pull(W2, "slurm", ["m"], 12.0) is not None


def test_tenant_caps_inside_a_tier() -> None:
    s = sched(tenant_limits={"free": {"max_queued": 2, "max_leased": 1}})
    s.submit(job(1, tenant="heavy", at=0.0), 0.0)
    s.submit(job(2, tenant="heavy", at=1.0), 1.0)
    with pytest.raises(BackPressure, match="limit") as info:
        s.submit(job(3, tenant="heavy", at=2.0), 2.0)
    assert info.value.retry_after_s > 0
    s.submit(job(4, tenant="light", at=3.0), 3.0)
    assert s.pull(W1, "c", ["m"], 4.0).job_id == "gen_0001"  # type: ignore[union-attr]
    # heavy is at its running cap: its older job waits, the other tenant's job goes.
    assert s.pull(W1, "c", ["m"], 5.0).job_id == "gen_0004"  # type: ignore[union-attr]
    assert s.pull(W1, "c", ["m"], 6.0) is None
    s.submit(job(5, tenant="heavy", at=7.0), 7.0)  # one queued again: room under max_queued


def test_with_no_config_one_tenant_cannot_queue_without_limit() -> None:
    s = sched()
    for n in range(500):
        s.submit(job(n, tenant="flood", at=float(n)), float(n))
    with pytest.raises(BackPressure, match="500 jobs queued in tier free"):
        s.submit(job(500, tenant="flood", at=500.0), 500.0)
    s.submit(job(501, tenant="other", at=501.0), 501.0)  # a cap per tenant, not per tier


def test_bad_submits_change_nothing() -> None:
    s = sched()
    with pytest.raises(InvalidRequest, match="unknown tier 'gold'"):
        s.submit(job(1, tier="gold"), 0.0)
    s.submit(job(1), 0.0)
    with pytest.raises(InvalidRequest, match="already exists"):
        s.submit(job(1), 0.0)
    with pytest.raises(NotFound):
        s.get(JobId("gen_none"))
    assert len(s.queues) == 1


def test_retryable_failure_requeues_and_final_failure_sticks() -> None:
    s = sched()
    s.submit(job(1), 0.0)
    d = s.pull(W1, "c", ["m"], 1.0)
    assert d is not None
    out = s.fail(d.job_id, d.token, 2.0, JobError("oom", "out of memory", retryable=True))
    assert isinstance(out, Requeue)
    d = s.pull(W1, "c", ["m"], 3.0)
    assert d is not None
    out = s.fail(d.job_id, d.token, 4.0, JobError("bad_prompt", "refused", retryable=False))
    assert isinstance(out, GiveUp)
    assert s.get(d.job_id).state is JobState.FAILED


def test_stats_show_depths_waits_and_counters() -> None:
    s = sched()
    s.submit(job(1, "free", at=0.0), 0.0)
    s.submit(job(2, "api", at=5.0), 5.0)
    st = s.stats(65.0)
    assert st["tiers"]["free"]["queued"] == 1
    assert st["tiers"]["api"]["oldest_wait_s"] == 60.0
    assert st["states"] == {"queued": 2}


def test_two_tenants_of_a_tier_alternate_under_a_flood() -> None:
    s = sched(tenant_limits={"free": {"max_queued": None}}, fair_share_lag_jobs=0)
    for n in range(100):  # one tenant floods the free tier first
        s.submit(job(n, tenant="flood", at=float(n)), float(n))
    for n in range(100, 105):
        s.submit(job(n, tenant="small", at=float(n)), float(n))
    got = [s.get(s.pull(W1, "c", ["m"], 200.0 + k).job_id).tenant for k in range(10)]  # type: ignore[union-attr]
    assert got == ["flood", "small"] * 5
    lagged = sched(tenant_limits={"free": {"max_queued": None}}, fair_share_lag_jobs=3)
    for n in range(105):
        lagged.submit(job(n, tenant="flood" if n < 100 else "small", at=float(n)), float(n))
    got = [lagged.get(lagged.pull(W1, "c", ["m"], 200.0).job_id).tenant for _ in range(14)]  # type: ignore[union-attr]
    assert got[:3] == ["flood"] * 3  # oldest first while the flood is within the lag
    assert got.count("small") == 5  # then the small tenant is not kept waiting behind it
    fifo = sched(tenant_limits={"free": {"max_queued": None}}, fair_share=False)
    for n in range(105):
        fifo.submit(job(n, tenant="flood" if n < 100 else "small", at=float(n)), float(n))
    assert {fifo.get(fifo.pull(W1, "c", ["m"], 200.0).job_id).tenant for _ in range(10)} == {  # type: ignore[union-attr]
        "flood"
    }


def test_weights_and_job_size_set_the_shares() -> None:
    s = sched(tenant_weights={"gold": 3.0}, fair_share_lag_jobs=0)
    for n in range(40):
        s.submit(job(n, tenant="gold" if n % 2 else "plain", at=float(n)), float(n))
    got = [s.get(s.pull(W1, "c", ["m"], 100.0).job_id).tenant for _ in range(16)]  # type: ignore[union-attr]
    assert got.count("gold") == 12 and got.count("plain") == 4


def test_a_capped_tenant_is_skipped_and_unparked_when_a_lease_ends() -> None:
    s = sched(tenant_limits={"free": {"max_queued": None, "max_leased": 1}})
    for n in range(50):
        s.submit(job(n, tenant="heavy", at=float(n)), float(n))
    s.submit(job(50, tenant="light", at=60.0), 60.0)
    first = s.pull(W1, "c", ["m"], 100.0)
    assert first is not None and s.get(first.job_id).tenant == "heavy"
    # heavy is at its running cap: its 49 queued jobs are parked, light's job goes.
    assert s.pull(W1, "c", ["m"], 101.0).job_id == "gen_0050"  # type: ignore[union-attr]
    assert s.pull(W1, "c", ["m"], 103.0) is None  # both tenants at their cap
    assert s.oldest_wait_s("free", "m", 103.0) == 102.0  # parked jobs still count as waiting
    s.complete(first.job_id, first.token, 104.0, {"video": "v"})
    again = s.pull(W1, "c", ["m"], 105.0)
    assert again is not None and again.job_id == "gen_0001"
    # the same holds when the lease ends by expiry, failure or hand-back
    s.release(again.job_id, again.token, 106.0)
    assert s.pull(W1, "c", ["m"], 107.0).job_id == "gen_0001"  # type: ignore[union-attr]
    assert s.position(s.get(JobId("gen_0003"))) == 1  # its tenant's own jobs ahead of it
