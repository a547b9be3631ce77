"""The queue page's last hour (``scheduler/timeline.py``), its gauges and top tenants
(``scheduler/views.py``) and what the service feeds it: pure functions with time as an
argument, and a real service over a real journal file (restarted on the same file)."""

from __future__ import annotations

from pathlib import Path

from luma_ray.config import parse_config
from luma_ray.jobs import Job, JobError, JobState
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import QueuePage, SubmitRequest
from luma_ray.scheduler.service import SchedulerService
from luma_ray.scheduler.timeline import (
    MAX_FAILURES,
    QueueHistory,
    Snapshot,
    TierGauge,
    seed,
)

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
T0 = 1_800_000_000.0  # a minute boundary (1_800_000_000 / 60 is whole)


def gauges(depth: int, wait_s: float, pools: dict[str, tuple[int, int]] | None = None):
    return Snapshot({"api": TierGauge(depth, wait_s, 120.0)}, pools or {})


def test_a_minute_keeps_its_highest_depth_and_wait_and_its_last_worker_counts() -> None:
    h = QueueHistory()
    h.sample(gauges(3, 30.0, {"tiny": (1, 2)}), T0 + 1)
    h.sample(gauges(7, 150.0, {"tiny": (2, 1)}), T0 + 20)
    h.sample(gauges(2, 10.0, {"tiny": (3, 0)}), T0 + 59)  # still the same minute
    h.sample(gauges(1, 5.0), T0 + 60)  # the next minute
    first, second = h.series(T0 + 61)
    assert first["at_s"] == T0 and second["at_s"] == T0 + 60
    assert first["tiers"]["api"] == {
        "depth": 7,
        "oldest_wait_s": 150.0,
        "slo_used": 1.25,
        "dispatched": 0,
    }
    assert first["pools"] == {"tiny": {"busy": 3, "idle": 0}}
    assert second["tiers"]["api"]["depth"] == 1 and second["pools"] == {}


def test_dispatches_count_per_minute_and_tier() -> None:
    h = QueueHistory()
    for at in (T0, T0 + 10, T0 + 59):
        h.dispatched("api", at)
    h.dispatched("free", T0 + 61)
    first, second = h.series(T0 + 70)
    assert first["tiers"]["api"]["dispatched"] == 3
    assert "free" not in first["tiers"] and second["tiers"]["free"]["dispatched"] == 1


def test_only_the_last_hour_is_kept() -> None:
    h = QueueHistory()
    for minute in range(90):
        h.sample(gauges(minute, 0.0), T0 + 60 * minute)
    series = h.series(T0 + 60 * 89 + 30)
    assert len(series) == 60 and len(h.minutes) == 60  # pruned, not just hidden
    assert [r["tiers"]["api"]["depth"] for r in series] == list(range(30, 90))
    assert h.series(T0 + 60 * 200) == []  # an idle hour later: nothing left


def job(n: int, state: JobState = JobState.QUEUED) -> Job:
    j = Job(f"j{n}", "acme", "api", "luma-tiny", None, T0, T0)  # type: ignore[arg-type]
    j.state = state
    return j


def test_failures_newest_first_bounded_and_of_the_last_hour() -> None:
    h = QueueHistory()
    for n in range(MAX_FAILURES + 5):
        h.failed(job(n, JobState.FAILED), JobError("oom", "x" * 1000), T0 + n)
    h.failed(job(99), JobError("timeout", "retrying"), T0 + 100)  # retryable: requeued
    recent = h.recent_failures(T0 + 120)
    assert len(recent) == MAX_FAILURES
    assert recent[0]["job_id"] == "j99" and recent[0]["final"] is False
    assert recent[1]["job_id"] == f"j{MAX_FAILURES + 4}" and recent[1]["final"] is True
    assert recent[1]["code"] == "oom" and len(recent[1]["message"]) == 300
    assert recent[1]["tenant"] == "acme" and recent[1]["tier"] == "api"
    assert h.recent_failures(T0 + 3650) == [recent[0]]  # only j99 (at T0+100) is < 1 h old


def test_seed_rebuilds_dispatches_and_failures_from_job_histories() -> None:
    leased = job(1, JobState.LEASED)
    leased.history = ((T0 - 4000, JobState.LEASED, "too old"), (T0 + 5, JobState.LEASED, "w"))
    failed = job(2, JobState.FAILED)
    failed.error, failed.finished_at_s = JobError("bad_input", "no such model"), T0 + 70
    failed.history = ((T0 + 65, JobState.LEASED, "w"), (T0 + 70, JobState.FAILED, "gave up"))
    h = QueueHistory()
    seed(h, [leased, failed], T0 + 120)
    assert [(r["at_s"], r["tiers"]["api"]["dispatched"]) for r in h.series(T0 + 120)] == [
        (T0, 1),
        (T0 + 60, 1),
    ]
    (row,) = h.recent_failures(T0 + 120)
    assert (row["job_id"], row["code"], row["at_s"], row["final"]) == (
        "j2",
        "bad_input",
        T0 + 70,
        True,
    )


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock) -> SchedulerService:
    config = parse_config({"max_attempts": 2})
    return SchedulerService(config, Journal(path), LIMITS, clock)


def test_the_service_feeds_the_page_and_a_restart_keeps_dispatches_and_failures(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = service(tmp_path / "j.sqlite", clock)
    for i, tenant in enumerate(["acme", "acme", "acme", "zed", "bo"]):
        svc.submit(SubmitRequest(prompt=f"p{i}", tier="api", tenant=tenant))
    svc.submit(SubmitRequest(prompt="f", tier="free", tenant="zed"))
    clock.now += 30
    a = svc.pull("local/tiny/1", "local", ["luma-tiny"])  # acme's first
    b = svc.pull("local/tiny/2", "local", ["luma-tiny"])  # acme's second
    assert a and b
    svc.fail(a.job_id, a.token, "oom", "CUDA out of memory", retryable=True)  # requeued
    clock.now += 60
    again = svc.pull("local/tiny/1", "local", ["luma-tiny", "luma-tiny@v1"])
    assert svc.pull("local/big/1", "local", ["big-model", "big-model@v3"]) is None  # idle
    assert again and again.job_id == a.job_id
    svc.fail(again.job_id, again.token, "oom", "CUDA out of memory", retryable=True)  # final
    report = svc.call(QueuePage())
    minutes = report["history"]
    assert [m["at_s"] for m in minutes] == [T0, T0 + 60]
    assert minutes[0]["tiers"]["api"]["dispatched"] == 2
    assert minutes[1]["tiers"]["api"] == {
        "depth": 3,  # acme's third, zed's, bo's
        "oldest_wait_s": 90.0,
        "slo_used": 0.75,
        "dispatched": 1,
    }
    assert minutes[1]["tiers"]["free"]["depth"] == 1
    # tiny/2 holds a lease (busy, though it has not pulled for 60 s); tiny/1 pulled just now
    assert minutes[1]["pools"] == {"tiny": {"busy": 1, "idle": 1}, "big": {"busy": 0, "idle": 1}}
    assert report["tenants"]["api"] == {
        "by_queued": [
            {"tenant": "acme", "queued": 1, "leased": 1},
            {"tenant": "bo", "queued": 1, "leased": 0},
            {"tenant": "zed", "queued": 1, "leased": 0},
        ],
        "by_leased": [{"tenant": "acme", "queued": 1, "leased": 1}],
    }
    assert report["tenants"]["free"]["by_leased"] == []
    assert [(f["code"], f["final"], f["tenant"]) for f in report["failures"]] == [
        ("oom", True, "acme"),
        ("oom", False, "acme"),
    ]
    clock.now += 5
    restarted = service(tmp_path / "j.sqlite", clock).call(QueuePage())
    assert [(m["at_s"], m["tiers"]["api"]["dispatched"]) for m in restarted["history"]] == [
        (T0, 2),
        (T0 + 60, 1),
    ]
    assert [(f["job_id"], f["final"]) for f in restarted["failures"]] == [(a.job_id, True)]
