"""Scheduler throughput through the Ray actor, with and without group commit, in the same run.

Starts a local cluster and, for each variant, a scheduler actor of its own (journal on local
disk, WAL, ``synchronous=FULL``) that this driver drives from ``--workers`` concurrent callers
(asyncio, one Ray call in flight per caller): submits one job per call, batched submits
(``SubmitMany``, 100 jobs per call), workers that pull then complete each job, workers that
commit each job and lease the next in one call (``CompleteAndPull``), pulls alone, and
``Ping`` (answered without a change or a commit: the floor of one call through Ray and the
actor, so calls/s of ``Ping`` bound every line that makes one call per job). The
variants: ``journal_group_window_s: null`` (every call commits alone: the code before group
commit), group commit with a 1 ms window (the default, docs/architecture.md), and the same with
``log_level: DEBUG`` (a log line per job submitted, leased and done, which INFO, the default,
leaves out: through Ray each line is copied to the log monitor and the driver). On a shared
machine the absolute numbers move from run to run; the ratio between the variants of one run
is the result.

    python benchmarks/scheduler_throughput.py [--jobs 1280] [--workers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _cluster import local_ray

VARIANTS = (
    ("one commit per call", {"journal_group_window_s": None}),
    ("group commit (1 ms)", {"journal_group_window_s": 0.001}),
    ("group commit, DEBUG log", {"journal_group_window_s": 0.001, "log_level": "DEBUG"}),
)
BATCH = 100
MODELS = ("luma-tiny",)


async def timed(callers: int, caller: Callable[[int], Awaitable[int]]) -> float:
    """Jobs per second of ``callers`` concurrent callers (each returns its job count)."""
    started = time.perf_counter()
    counts = await asyncio.gather(*(caller(c) for c in range(callers)))
    return sum(counts) / (time.perf_counter() - started)


async def measure(actor: Any, jobs: int, workers: int) -> dict[str, float]:
    from luma_ray.scheduler.protocol import (
        CompleteAndPull,
        Ping,
        Pull,
        Submit,
        SubmitMany,
        SubmitRequest,
    )

    async def call(op: Any) -> Any:
        return await actor.call.remote(op)

    async def submitter(c: int) -> int:
        mine = range(c, jobs, workers)
        for i in mine:
            await call(Submit(SubmitRequest(prompt=f"p{i}", steps=2)))
        return len(mine)

    async def batcher(c: int) -> int:
        calls = range(c, jobs // BATCH * 4, workers)  # 4x the jobs: they feed the workers
        for i in calls:
            await call(SubmitMany(tuple(SubmitRequest(prompt=f"b{i}-{k}") for k in range(BATCH))))
        return len(calls) * BATCH

    async def pull_complete(c: int) -> int:
        for _ in range(jobs // workers):
            lease = await call(Pull(f"w{c}", "local", MODELS))
            await call(_complete(lease))
        return jobs // workers

    async def complete_and_pull(c: int) -> int:
        worker, done = f"cp{c}", 0
        lease = await call(Pull(worker, "local", MODELS))
        for _ in range(jobs // workers):
            uris = {"video": "file:///x.mp4"}
            op = CompleteAndPull(lease.job_id, lease.token, uris, worker, "local", MODELS)
            lease = (await call(op)).assignment
            done += 1
        await call(_complete(lease))
        return done

    async def pinger(c: int) -> int:
        for _ in range(jobs // workers):
            await call(Ping())
        return jobs // workers

    async def puller(c: int) -> int:
        for _ in range(jobs // workers):
            await call(Pull(f"p{c}", "local", MODELS))
        return jobs // workers

    await call(Ping())  # the actor is up (journal open) before the first line's clock starts
    return {
        f"submit, one job per call, {workers} callers": await timed(workers, submitter),
        f"submit_many, {BATCH} jobs per call, {workers} callers": await timed(workers, batcher),
        f"pull + complete, {workers} workers": await timed(workers, pull_complete),
        f"complete+pull in one call, {workers} workers": await timed(workers, complete_and_pull),
        f"pull only, {workers} workers": await timed(workers, puller),
        f"ping (no change, no commit: the call's floor), {workers}": await timed(workers, pinger),
    }


def _complete(lease: Any) -> Any:
    from luma_ray.scheduler.protocol import Complete

    return Complete(lease.job_id, lease.token, {"video": "file:///x.mp4"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1280, help="jobs per measurement")
    parser.add_argument("--workers", type=int, default=64, help="concurrent callers")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.jobs} jobs per line, {args.workers} callers"
    )
    with local_ray() as root:
        import ray

        from luma_ray.config import RuntimeConfig, parse_config
        from luma_ray.launch import model_limits
        from luma_ray.runtime.actor import ActorSettings, scheduler_actor_class

        results: dict[str, dict[str, float]] = {}
        for name, variant in VARIANTS:
            # One tenant submits every job: lift the free tier's default cap of queued jobs.
            config = {"tenant_limits": {"free": {"max_queued": None}}}
            scheduler = parse_config({**config, **variant})
            data = Path(root) / f"data-{len(results)}"
            runtime = RuntimeConfig(data_dir=str(data), pools=[], http_host=None)
            settings = ActorSettings(
                config=scheduler.model_dump(),
                journal_path=str(data / "journal.sqlite"),
                models=model_limits(runtime),
            )
            data.mkdir(parents=True, exist_ok=True)
            actor = (
                scheduler_actor_class()
                .options(num_cpus=0, max_concurrency=1000, max_task_retries=0)
                .remote(settings)
            )
            results[name] = asyncio.run(measure(actor, args.jobs, args.workers))
            for line, rate in results[name].items():
                print(f"{name:22} {line:44} {rate:9,.0f} jobs/s", flush=True)
            ray.kill(actor)
        before, after, logged = (results[name] for name, _ in VARIANTS)
        print("\ngroup commit against one commit per call, same run:")
        for line in before:
            ratio = after[line] / before[line]
            print(f"  {line:44} {before[line]:8,.0f} -> {after[line]:8,.0f} jobs/s  {ratio:5.2f}x")
        print("\nthe default log (INFO) against a line per job (DEBUG), group commit, same run:")
        for line in logged:
            ratio = after[line] / logged[line]
            print(f"  {line:44} {logged[line]:8,.0f} -> {after[line]:8,.0f} jobs/s  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
