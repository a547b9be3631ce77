"""The scheduler service over a real SQLite journal, with a fake clock (no Ray)."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from luma_ray.config import parse_config
from luma_ray.errors import InvalidRequest, NotFound, StaleLease, TenantLimited
from luma_ray.jobs import JobId
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import JobView, SubmitRefused, SubmitRequest
from luma_ray.scheduler.service import SchedulerService

LIMITS = {
    "luma-tiny": ModelLimits(
        max_frames=64,
        max_height=128,
        max_width=128,
        max_steps=50,
        default_steps=8,
        default_fps=8,
        size_multiple=8,
    )
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, **cfg: object) -> SchedulerService:
    return SchedulerService(parse_config(cfg), Journal(path), LIMITS, clock)


def test_jobs_survive_a_restart_with_queues_and_leases(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "journal.sqlite"
    svc = service(db, clock, lease_ttl_s=30)
    ids = [svc.submit(SubmitRequest(prompt=f"p{i}", tier="free")).id for i in range(3)]
    clock.now += 1
    first = svc.pull("w1", "local", ["luma-tiny"])
    assert first is not None and first.job_id == ids[0]
    svc.heartbeat(first.job_id, first.token, 1, 8)
    svc.cancel(ids[2])

    clock.now += 5
    again = service(db, clock, lease_ttl_s=30)  # a restarted actor reads the same file
    states = {j.id: j.state for j in again.list()}
    assert states == {ids[0]: "running", ids[1]: "queued", ids[2]: "cancelled"}
    second = again.pull("w2", "local", ["luma-tiny"])
    assert second is not None and second.job_id == ids[1]
    assert second.token > first.token  # fencing tokens never repeat across restarts
    assert again.pull("w2", "local", ["luma-tiny"]) is None  # the cancelled job never starts
    # The worker that held the first lease before the restart can still finish it.
    again.complete(first.job_id, first.token, {"video": "file:///v.mp4"})
    with pytest.raises(StaleLease):
        again.complete(first.job_id, first.token, {"video": "file:///w.mp4"})
    assert again.get(first.job_id).result_uris == {"video": "file:///v.mp4"}


def test_lost_lease_requeues_after_restart_and_attempts_count(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock, lease_ttl_s=10)
    job_id = svc.submit(SubmitRequest(prompt="p")).id
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None
    clock.now += 100
    restarted = service(db, clock, lease_ttl_s=10)
    assert restarted.tick() == 0  # a restart grants live leases one more period
    clock.now += 11
    assert restarted.tick() == 1
    view = restarted.get(job_id)
    assert view.state == "queued" and view.attempts == 2


@pytest.mark.parametrize(
    "change,message",
    [
        ({"model": "sora-9"}, "unknown model 'sora-9'"),
        ({"frames": 0}, "frames is 0"),
        ({"frames": 500}, "frames is 500"),
        ({"size": "60x64"}, "width 60 is not a multiple of 8"),
        ({"size": "64by64"}, "size '64by64' must look like"),
        ({"frames": 4, "seconds": 1.0}, "either frames or seconds"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"tier": "gold"}, "unknown tier 'gold'"),
        ({"steps": 1000}, "steps is 1000"),
        ({"tenant": "../etc"}, "tenant must be"),
    ],
)
def test_bad_requests_are_refused_and_never_queued(tmp_path: Path, change, message) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    request = SubmitRequest(**{"prompt": "a red fox", **change})
    with pytest.raises(InvalidRequest, match=message):
        svc.submit(request)
    assert svc.list() == []
    rows = sqlite3.connect(tmp_path / "j.sqlite").execute("SELECT count(*) FROM jobs").fetchone()
    assert rows == (0,)


def test_tenants_never_see_each_others_jobs(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    mine = svc.submit(SubmitRequest(prompt="p", tenant="alice")).id
    svc.submit(SubmitRequest(prompt="q", tenant="bob"))
    assert [j.id for j in svc.list(tenant="alice")] == [mine]
    with pytest.raises(NotFound):
        svc.get(mine, tenant="bob")
    with pytest.raises(NotFound):
        svc.cancel(mine, tenant="bob")
    assert svc.get(mine, tenant="alice").state == "queued"


def test_submit_many_keeps_good_ones_and_reports_bad_ones(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock(), tenant_limits={"free": {"max_queued": 2}})
    out = svc.submit_many(
        [
            SubmitRequest(prompt="a"),
            SubmitRequest(prompt=""),
            SubmitRequest(prompt="b"),
            SubmitRequest(prompt="c"),
        ]
    )
    assert [isinstance(o, JobView) for o in out] == [True, False, True, False]
    assert isinstance(out[3], SubmitRefused) and out[3].code == TenantLimited.code == "tenant_limit"
    assert len(svc.list()) == 2


def test_seed_and_steps_are_resolved_at_submit(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    view = svc.submit(SubmitRequest(prompt="p"))
    assert view.params.steps == 8 and isinstance(view.params.seed, int)
    lease = svc.pull("w", "local", ["luma-tiny"])
    assert lease is not None and lease.request.seed == view.params.seed


def test_idempotency_same_body_one_job_other_body_conflict(tmp_path: Path) -> None:
    from luma_ray.errors import Conflict

    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    first = svc.submit(SubmitRequest(prompt="p", idempotency_key="k1"))
    again = svc.submit(SubmitRequest(prompt="p", idempotency_key="k1"))
    assert again.id == first.id and len(svc.list()) == 1
    with pytest.raises(Conflict, match="different request"):
        svc.submit(SubmitRequest(prompt="another", idempotency_key="k1"))
    other_tenant = svc.submit(SubmitRequest(prompt="p", tenant="t2", idempotency_key="k1"))
    assert other_tenant.id != first.id  # keys are scoped per tenant
    restarted = service(tmp_path / "j.sqlite", clock)  # survives a restart
    assert restarted.submit(SubmitRequest(prompt="p", idempotency_key="k1")).id == first.id


def test_delete_forgets_the_job_everywhere(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    job = svc.submit(SubmitRequest(prompt="p", tenant="alice")).id
    with pytest.raises(NotFound):
        svc.delete(job, tenant="bob")
    assert svc.delete(job, tenant="alice").id == job
    with pytest.raises(NotFound):
        svc.get(job)
    assert svc.pull("w", "local", ["luma-tiny"]) is None  # it never starts
    assert service(tmp_path / "j.sqlite", clock).list() == []


def test_admission_sheds_an_overloaded_tier_but_never_api(tmp_path: Path) -> None:
    from luma_ray.errors import Overloaded

    clock = Clock()
    tiers = [
        {"name": "api", "max_wait_s": 60, "weight": 5},
        {"name": "free", "max_wait_s": 30, "weight": 1, "shed_ratio": 2},
    ]
    svc = service(tmp_path / "j.sqlite", clock, tiers=tiers)
    svc.pull("w1", "local", ["luma-tiny"])  # one worker is known
    accepted = 0
    with pytest.raises(Overloaded) as info:
        for _ in range(100):
            svc.submit(SubmitRequest(prompt="p", tier="free"))
            accepted += 1
    # 10 s per job until one finishes, one worker: job 7 would wait 70 s, past 2 x 30 s.
    assert accepted == 6
    assert 1 <= info.value.retry_after_s <= 3600
    for _ in range(20):
        svc.submit(SubmitRequest(prompt="p", tier="api"))  # never shed
    lease = svc.pull("w1", "local", ["luma-tiny"])
    assert lease is not None and svc.get(lease.job_id).tier == "api"


def test_view_shows_position_eta_and_slo_used(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    ids = [svc.submit(SubmitRequest(prompt="p", tier="free")).id for _ in range(3)]
    svc.pull("w1", "local", ["luma-tiny"])
    clock.now += 72
    views = [svc.get(i) for i in ids]
    assert views[0].queue_position is None  # leased
    assert [v.queue_position for v in views[1:]] == [0, 1]
    assert views[2].eta_s > views[1].eta_s > 0
    assert views[1].slo_used == pytest.approx(72 / 7200)


def test_list_pages_with_a_cursor(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    ids = []
    for _ in range(5):
        clock.now += 1
        ids.append(svc.submit(SubmitRequest(prompt="p")).id)
    page1 = svc.list(limit=2)
    page2 = svc.list(limit=2, after=page1[-1].id)
    page3 = svc.list(limit=2, after=page2[-1].id)
    assert [v.id for v in page1 + page2 + page3] == ids[::-1]
    assert [v.id for v in svc.list(limit=10, order="asc")] == ids


def test_seconds_and_model_version(tmp_path: Path) -> None:
    svc = service(tmp_path / "j.sqlite", Clock())
    view = svc.submit(SubmitRequest(prompt="p", seconds=2.0, fps=8))
    assert view.params.frames == 16
    with pytest.raises(InvalidRequest, match="not served from the model repository"):
        svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v3"))


def pinning_service(path: Path, clock: Clock, active: str | None = "v2") -> SchedulerService:
    return SchedulerService(parse_config({}), Journal(path), LIMITS, clock, lambda m: active)


def test_pinned_jobs_go_only_to_workers_on_that_version(tmp_path: Path) -> None:
    clock = Clock()
    svc = pinning_service(tmp_path / "j.sqlite", clock)
    svc.pull("old", "local", ["luma-tiny", "luma-tiny@v1"])  # a worker still on v1
    on_v1 = svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v1", tier="free"))
    on_v2 = svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v2", tier="free"))
    assert (on_v1.model, on_v1.model_version) == ("luma-tiny@v1", "v1")
    got = svc.pull("new", "local", ["luma-tiny", "luma-tiny@v2"])
    assert got is not None and got.job_id == on_v2.id
    assert svc.pull("new", "local", ["luma-tiny", "luma-tiny@v2"]) is None  # v1 job stays
    got = svc.pull("old", "local", ["luma-tiny", "luma-tiny@v1"])
    assert got is not None and got.job_id == on_v1.id
    assert got.request.steps == LIMITS["luma-tiny"].default_steps


def test_pinning_a_version_nobody_runs_is_refused(tmp_path: Path) -> None:
    svc = pinning_service(tmp_path / "j.sqlite", Clock())
    with pytest.raises(InvalidRequest, match="no worker runs version 'v9'.*pin one of: v2"):
        svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v9"))
    with pytest.raises(InvalidRequest, match="version '../x' is invalid"):
        svc.submit(SubmitRequest(prompt="p", model="luma-tiny@../x"))


def test_complete_records_the_version_that_ran(tmp_path: Path) -> None:
    svc = pinning_service(tmp_path / "j.sqlite", Clock())
    job = svc.submit(SubmitRequest(prompt="p"))
    a = svc.pull("w", "local", ["luma-tiny", "luma-tiny@v2"])
    assert a is not None
    assert svc.complete(a.job_id, a.token, {"video": "file:///v"}, "v2").model_version == "v2"
    assert svc.get(job.id).model_version == "v2"


def test_release_requeues_without_counting_an_attempt(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, max_attempts=1)
    job = svc.submit(SubmitRequest(prompt="p"))
    for _ in range(3):  # more releases than attempts: none counts
        a = svc.pull("w", "local", ["luma-tiny"])
        assert a is not None and a.job_id == job.id
        view = svc.release(a.job_id, a.token)
        assert (view.state, view.attempts) == ("queued", 1)
    a = svc.pull("w", "local", ["luma-tiny"])
    assert a is not None
    with pytest.raises(StaleLease):
        svc.release(a.job_id, a.token + 1)


def test_rollout_slots_and_halt(tmp_path: Path) -> None:
    clock = Clock()
    svc = pinning_service(tmp_path / "j.sqlite", clock)
    for w in ("a", "b", "c", "d"):
        svc.pull(w, "local", ["luma-tiny", "luma-tiny@v1"])
    # 50% of 4 workers: two swap at once, the third waits for a slot.
    assert svc.request_swap("a", "luma-tiny", "v2", 4, "50%") == "go"
    assert svc.request_swap("b", "luma-tiny", "v2", 4, "50%") == "go"
    assert svc.request_swap("c", "luma-tiny", "v2", 4, "50%") == "wait"
    svc.finish_swap("a", "luma-tiny", "v2", None)
    assert svc.request_swap("c", "luma-tiny", "v2", 4, "50%") == "go"
    svc.finish_swap("b", "luma-tiny", "v2", "RuntimeError: boom")
    assert svc.request_swap("d", "luma-tiny", "v2", 4, "50%") == "halted"
    status = svc.rollout_status("luma-tiny")
    assert status["halted"]["v2"]["error"] == "RuntimeError: boom"
    assert status["workers"] == {"a": "v2", "b": "v1", "c": "v1", "d": "v1"}
    assert status["swapping"] == ["c"]


def test_halts_survive_a_restart_through_the_stored_rollout(tmp_path: Path) -> None:
    """The scheduler stores each rollout status in the repository (rollout.yaml); a restarted
    scheduler takes its halts back, so no worker tries the halted version again."""
    from luma_ray.models.repository import ModelRepository
    from luma_ray.storage import open_store

    clock = Clock()
    repo = ModelRepository(open_store((tmp_path / "repo").as_uri()), clock)
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, clock)
    assert svc.request_swap("a", "luma-tiny", "v2", 2, "50%") == "go"
    svc.finish_swap("a", "luma-tiny", "v2", "RuntimeError: boom")
    repo.write_rollout("luma-tiny", svc.rollout_status("luma-tiny"))  # what the actor does

    reads: list[str] = []

    def stored(model: str):
        reads.append(model)
        if len(reads) == 1:
            raise OSError("store unreachable")  # read again on the next call
        return repo.rollout(model)

    again = SchedulerService(
        parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, clock, None, stored
    )
    assert again.halted_versions("luma-tiny") == []  # the store failed: nothing recalled yet
    assert again.request_swap("b", "luma-tiny", "v2", 2, "50%") == "halted"
    assert again.rollout_status("luma-tiny")["halted"]["v2"]["error"] == "RuntimeError: boom"
    assert again.halted_versions("luma-tiny") == ["v2"]
    assert again.request_swap("b", "luma-tiny", "v3", 2, "50%") == "go"  # others roll out
    assert reads == ["luma-tiny", "luma-tiny"]  # read once it succeeded, not on every call

    # Without a stored status (a model never rolled out) nothing is halted.
    fresh = SchedulerService(
        parse_config({}), Journal(tmp_path / "k.sqlite"), LIMITS, clock, None, repo.rollout
    )
    assert fresh.halted_versions("other-model") == []


def finish(svc: SchedulerService, worker: str = "w") -> str:
    a = svc.pull(worker, "local", ["luma-tiny"])
    assert a is not None
    svc.complete(a.job_id, a.token, {"video": f"memory://{a.job_id}.mp4"})
    return a.job_id


def test_finished_jobs_leave_memory_and_stay_readable_from_the_journal(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock, keep_finished_s=600)
    old = svc.submit(SubmitRequest(prompt="old", tenant="acme", idempotency_key="k1")).id
    assert finish(svc) == old
    clock.now += 300
    recent = svc.submit(SubmitRequest(prompt="recent", tenant="acme")).id
    assert finish(svc) == recent
    clock.now += 1  # ids sort by creation time, to the millisecond
    queued = svc.submit(SubmitRequest(prompt="queued", tenant="acme")).id
    clock.now += 1
    other = svc.submit(SubmitRequest(prompt="other", tenant="zeta")).id
    svc.tick()
    assert old in svc.core.jobs  # 302 s after it finished: kept
    clock.now += 300
    svc.tick()
    assert old not in svc.core.jobs  # 602 s: evicted; the others stay
    assert {recent, queued, other} <= set(svc.core.jobs)

    view = svc.get(old, tenant="acme")
    assert (view.state, view.result_uris) == ("succeeded", {"video": f"memory://{old}.mp4"})
    with pytest.raises(NotFound):
        svc.get(old, tenant="zeta")  # another tenant still cannot see it
    assert svc.cancel(old, tenant="acme").state == "succeeded"  # nothing to cancel
    listed = [j.id for j in svc.list(tenant="acme")]
    assert listed == [queued, recent, old]  # newest first, evicted ones included
    assert [j.id for j in svc.list(tenant="acme", state="succeeded", limit=1)] == [recent]
    assert [j.id for j in svc.list(tenant="acme", after=recent)] == [old]
    assert [j.id for j in svc.list(order="asc", limit=2)] == [old, recent]
    assert [j.id for j in svc.list(tenant="zeta")] == [other]
    # Its Idempotency-Key was forgotten with it: the same key makes a new job.
    again = svc.submit(SubmitRequest(prompt="old", tenant="acme", idempotency_key="k1"))
    assert again.id != old
    svc.delete(old, tenant="acme")
    with pytest.raises(NotFound):
        svc.get(old, tenant="acme")

    # A restart loads only what memory would hold: live jobs and recent finished ones.
    clock.now += 300
    restarted = service(db, clock, keep_finished_s=600)
    assert recent not in restarted.core.jobs  # finished 602 s ago
    assert {queued, other, again.id} <= set(restarted.core.jobs)
    assert restarted.get(recent).state == "succeeded"
    assert restarted.pull("w", "local", ["luma-tiny"]).job_id == queued


def test_memory_holds_only_the_recent_finished_jobs(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, keep_finished_s=60)
    ids = []
    for i in range(200):
        ids.append(svc.submit(SubmitRequest(prompt=f"p{i}")).id)
        finish(svc)
        clock.now += 1
        svc.tick()
        assert len(svc.core.jobs) <= 61
    assert len(svc.list(limit=1000)) == 200 and svc.get(ids[0]).state == "succeeded"


def test_an_old_journal_gets_the_finish_column(tmp_path: Path) -> None:
    """A journal file written before finished jobs could leave memory opens and works."""
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock)
    done = svc.submit(SubmitRequest(prompt="done")).id
    finish(svc)
    live = svc.submit(SubmitRequest(prompt="live")).id
    svc.journal.close()
    con = sqlite3.connect(db)  # back to the old layout: no finish-time column
    con.executescript("DROP INDEX jobs_by_finish; ALTER TABLE jobs DROP COLUMN finished_at_s;")
    con.close()

    clock.now += 7200
    again = service(db, clock, keep_finished_s=3600)
    assert done not in again.core.jobs and live in again.core.jobs
    assert again.get(done).state == "succeeded"
    columns = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(jobs)")]
    assert "finished_at_s" in columns


def test_pinned_jobs_fail_once_their_version_is_gone(tmp_path: Path) -> None:
    """v1 is promoted away and every worker moves to v2: a job still pinned to v1 would wait
    for ever, so it fails after the grace period. Jobs pinned to a served or the active
    version wait on, and a restarted scheduler gives workers the grace period to report."""
    clock, active = Clock(), {"version": "v1"}
    db = tmp_path / "j.sqlite"

    def make() -> SchedulerService:
        config = parse_config({"pinned_grace_s": 600})
        return SchedulerService(config, Journal(db), LIMITS, clock, lambda m: active["version"])

    svc = make()
    assert svc.pull("a", "local", ["luma-tiny", "luma-tiny@v1"]) is None  # a runs v1
    old = svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v1")).id
    active["version"] = "v2"  # promoted; the worker swaps and names v2 from now on
    assert svc.pull("a", "local", ["luma-tiny", "luma-tiny@v2"]) is None
    on_v2 = svc.submit(SubmitRequest(prompt="p", model="luma-tiny@v2")).id
    clock.now += 599
    svc.pull("a", "local", ["luma-tiny"])  # keeps serving, takes nothing pinned
    svc.tick()
    assert svc.get(old).state == "queued"  # within the grace period: a rollback may come
    clock.now += 2
    svc.tick()
    view = svc.get(old)
    assert view.state == "failed" and view.error.code == "version_unavailable"
    assert "'@v1'" in view.error.message and view.error.retryable is False
    assert svc.get(on_v2).state == "queued"  # v2 is the active version

    active["version"] = "v3"  # promoted again, and no worker has reported since
    restarted = make()
    clock.now += 599
    restarted.tick()
    assert restarted.get(on_v2).state == "queued"  # workers get the grace period
    clock.now += 2
    restarted.tick()
    assert restarted.get(on_v2).state == "failed"


def test_fencing_tokens_never_repeat_even_when_no_job_comes_back(tmp_path: Path) -> None:
    clock = Clock()
    db = tmp_path / "j.sqlite"
    svc = service(db, clock)
    job = svc.submit(SubmitRequest(prompt="p", tenant="acme")).id
    first = svc.pull("w1", "local", ["luma-tiny"])
    assert first is not None
    svc.complete(first.job_id, first.token, {"video": "file:///v.mp4"})
    svc.delete(job, tenant="acme")  # the journal keeps no job, only the token mark
    restarted = service(db, clock)
    restarted.submit(SubmitRequest(prompt="q"))
    second = restarted.pull("w2", "local", ["luma-tiny"])
    assert second is not None and second.token > first.token


def queued_bytes_per_job(path: Path) -> float:
    """Python-heap bytes per queued job over 2,000 submits, by tracemalloc. Run it in a process
    of its own: tracemalloc.stop() races native threads that allocate (Ray's, once a test
    connected), and on Python 3.11 that race can crash the process."""
    clock = Clock()
    svc = service(path, clock, tenant_limits={"free": {"max_queued": None}})
    svc.submit_many([SubmitRequest(prompt="warm-up", tier="free")])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for batch in range(4):
            svc.submit_many(
                [SubmitRequest(prompt=f"job {batch}-{i}", tier="free") for i in range(500)]
            )
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / 2000
    finally:
        tracemalloc.stop()


def test_a_queued_job_costs_little_memory(tmp_path: Path) -> None:
    """Job and GenerationRequest keep their fields in slots (no per-instance dict) and a job
    submitted without an Idempotency-Key keeps no request hash (queue_100k.py measures it)."""
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock, tenant_limits={"free": {"max_queued": None}})
    keyed = svc.submit(SubmitRequest(prompt="p", tier="free", idempotency_key="k1"))
    assert svc.core.jobs[JobId(keyed.id)].request_hash is not None
    plain = svc.submit(SubmitRequest(prompt="plain", tier="free"))
    job = svc.core.jobs[JobId(plain.id)]
    assert not hasattr(job, "__dict__") and not hasattr(job.params, "__dict__")
    assert job.request_hash is None
    code = (
        "import sys; from pathlib import Path; "
        "from tests.unit.test_service import queued_bytes_per_job; "
        "print(queued_bytes_per_job(Path(sys.argv[1])))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.sqlite")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    per_job = float(out.stdout.strip().splitlines()[-1])
    assert per_job < 2600, per_job  #  3,955 B before (1k jobs; with the event feed's copies)
