"""Finished jobs in the scheduler's memory: restart time, memory and listing, kept or evicted.

Writes a journal of N finished jobs (spread over the last 30 days, 50 tenants) plus 1,000
queued ones, then starts the scheduler service on it twice, in one run:

- **keep all**: ``keep_finished_s`` of a year (its maximum), so every finished job is loaded
  into memory (what the scheduler did before finished jobs could leave memory);
- **keep 24 h** (the default): only jobs finished in the last day are loaded.

For each it measures the start (journal load and rebuild) time and the Python memory the
service holds afterwards (tracemalloc), and times one tenant's newest page of 100 jobs: the
journal's index (what ``list`` does now) against a sort of every job in memory (what it did
before), both on the keep-all service.

    python benchmarks/job_retention.py [--jobs 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from luma_ray.config import parse_config
from luma_ray.jobs import Job, JobId, JobState, TenantId
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import JobView, SubmitRequest
from luma_ray.scheduler.service import SchedulerService

LIMITS = {"luma-tiny": ModelLimits(64, 128, 128, 50, 8, 8, 8)}
DAY_S = 86400.0
TENANTS = 50
PAGE = 100


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def template(folder: Path, clock: Clock) -> tuple[Job, Job]:
    """One real finished job and one queued job, made by the service, to copy."""
    svc = SchedulerService(parse_config({}), Journal(folder / "t.sqlite"), LIMITS, clock)
    svc.submit(SubmitRequest(prompt="a red fox running through snow", tier="free"))
    a = svc.pull("w", "local", ["luma-tiny"])
    assert a is not None
    svc.heartbeat(a.job_id, a.token, 8, 8)
    svc.complete(a.job_id, a.token, {"video": "s3://results/x/1/video.mp4"}, "v1")
    done = svc.core.get(JobId(a.job_id))
    svc.submit(SubmitRequest(prompt="a paper boat on a pond", tier="free"))
    queued = next(j for j in svc.core.jobs.values() if j.state is JobState.QUEUED)
    svc.journal.close()
    return done, queued


def write_journal(path: Path, n: int, now: float, done: Job, queued: Job) -> None:
    rng = random.Random(0)
    journal = Journal(path)
    ages = sorted((rng.uniform(0, 30 * DAY_S) for _ in range(n)), reverse=True)
    batch: list[Job] = []
    for i, age in enumerate(ages):
        finished = now - age
        batch.append(
            replace(
                done,
                id=JobId(f"gen_{int(finished * 1000):013d}{i:08d}"),
                tenant=TenantId(f"tenant-{rng.randrange(TENANTS)}"),
                created_at_s=finished - 60,
                enqueued_at_s=finished - 60,
                finished_at_s=finished,
            )
        )
        if len(batch) == 20_000:
            journal.record(batch)
            batch = []
    for i in range(1000):
        batch.append(replace(queued, id=JobId(f"gen_{int(now * 1000):013d}q{i:07d}")))
    journal.record(batch, next_token=n + 10)
    journal.close()


def start(path: Path, keep_s: float, now: float) -> tuple[SchedulerService, float, int]:
    """The service started on ``path``: (service, seconds to start, bytes it holds). It
    starts twice: timed, then traced (tracemalloc slows the start down)."""

    def make() -> SchedulerService:
        config = parse_config({"keep_finished_s": keep_s})
        return SchedulerService(config, Journal(path), LIMITS, Clock(now))

    gc.collect()
    began = time.perf_counter()
    timed = make()
    elapsed = time.perf_counter() - began
    timed.journal.close()
    del timed
    gc.collect()
    tracemalloc.start()
    svc = make()
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return svc, elapsed, held


def median_ms(fn, repeat: int = 9) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def scan_page(svc: SchedulerService, tenant: str) -> list[JobView]:
    """Listing as it was: filter and sort every job in memory, view the first page."""
    mine = sorted(
        (j for j in svc.core.jobs.values() if j.tenant == tenant), key=lambda j: j.id, reverse=True
    )
    return [svc.view(j) for j in mine[:PAGE]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--json", help="write the numbers here as well")
    args = parser.parse_args()
    now = 1_790_000_000.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        done, queued = template(folder, Clock(now - 31 * DAY_S))
        path = folder / "journal.sqlite"
        began = time.perf_counter()
        write_journal(path, args.jobs, now, done, queued)
        wrote_s = time.perf_counter() - began
        size = path.stat().st_size + sum(p.stat().st_size for p in folder.glob("journal*-wal"))

        all_svc, all_s, all_bytes = start(path, 365 * DAY_S, now)
        all_jobs = len(all_svc.core.jobs)
        tenant = "tenant-7"
        scan_ms = median_ms(lambda: scan_page(all_svc, tenant))
        index_ms = median_ms(lambda: all_svc.list(tenant=tenant, limit=PAGE))
        same = [v.id for v in scan_page(all_svc, tenant)] == [
            v.id for v in all_svc.list(tenant=tenant, limit=PAGE)
        ]
        all_svc.journal.close()
        day_svc, day_s, day_bytes = start(path, DAY_S, now)
        day_jobs = len(day_svc.core.jobs)
        old = day_svc.list(tenant=tenant, order="asc", limit=1)[0].id
        old_ms = median_ms(lambda: day_svc.get(old))
        day_svc.journal.close()

    lines = [
        f"machine: {platform.machine()}, Python {platform.python_version()}; journal of "
        f"{args.jobs:,} finished jobs over 30 days + 1,000 queued, {size / 2**20:,.0f} MiB, "
        f"written in {wrote_s:.1f} s",
        f"keep all:  {all_jobs:>8,} jobs in memory, start {all_s:6.2f} s, "
        f"holds {all_bytes / 2**20:8.1f} MiB",
        f"keep 24 h: {day_jobs:>8,} jobs in memory, start {day_s:6.2f} s, "
        f"holds {day_bytes / 2**20:8.1f} MiB",
        f"keep 24 h / keep all: start {day_s / all_s:.3f}x, memory {day_bytes / all_bytes:.3f}x",
        f"one tenant's newest {PAGE}: scan memory {scan_ms:.2f} ms, journal index "
        f"{index_ms:.2f} ms ({scan_ms / index_ms:.1f}x faster), same page: {same}",
        f"get of a job finished 30 days ago (read from the journal): {old_ms:.3f} ms",
    ]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "jobs": args.jobs,
                    "keep_all": {"jobs": all_jobs, "start_s": all_s, "bytes": all_bytes},
                    "keep_day": {"jobs": day_jobs, "start_s": day_s, "bytes": day_bytes},
                    "page_scan_ms": scan_ms,
                    "page_index_ms": index_ms,
                    "get_evicted_ms": old_ms,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
