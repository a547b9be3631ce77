"""Where the scheduler actor's time goes under pull + complete: cProfile, before and after
group commit, in the same run.

No Ray: the actor's class is built directly and driven on one event loop by ``--workers``
concurrent workers that pull then complete (``--jobs`` jobs), as Ray's calls would drive it,
so the profile is the actor's own work (the service, the journal, the group commit; Ray's
transport is not in it). Prints the throughput and, per variant, the functions with the most
time of their own and the most time in total (cProfile's ``tottime`` and ``cumtime``).

    python benchmarks/profile_actor.py [--jobs 2560] [--workers 64] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import platform
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = (("one commit per call (before)", None), ("group commit, 1 ms (after)", 0.001))
MODELS = ("luma-tiny",)


async def drive(actor: Any, jobs: int, workers: int) -> float:
    from luma_ray.scheduler.protocol import Complete, Pull, SubmitMany, SubmitRequest

    await actor.call(SubmitMany(tuple(SubmitRequest(prompt=f"p{i}", steps=2) for i in range(jobs))))

    async def worker(c: int) -> None:
        for _ in range(jobs // workers):
            lease = await actor.call(Pull(f"w{c}", "local", MODELS))
            await actor.call(Complete(lease.job_id, lease.token, {"video": "file:///x.mp4"}))

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(workers)))
    elapsed = time.perf_counter() - started
    for task in (actor._ticker, actor._publisher):
        if task is not None:
            task.cancel()
    return jobs // workers * workers / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2560)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from luma_ray.config import RuntimeConfig, parse_config
    from luma_ray.launch import model_limits
    from luma_ray.runtime.actor import ActorSettings, SchedulerActor

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.jobs} jobs, {args.workers} workers, "
        "pull + complete, cProfile on (it slows Python code, not the fsyncs)\n"
    )
    root = Path(tempfile.mkdtemp(prefix="luma-profile-"))
    models = model_limits(RuntimeConfig(data_dir=str(root), pools=[], http_host=None))
    for n, (name, window_s) in enumerate(VARIANTS):
        config = parse_config(
            {"tenant_limits": {"free": {"max_queued": None}}, "journal_group_window_s": window_s}
        )
        actor = SchedulerActor(
            ActorSettings(
                config=config.model_dump(),
                journal_path=str(root / f"journal-{n}.sqlite"),
                models=models,
            )
        )
        profile = cProfile.Profile()
        profile.enable()
        rate = asyncio.run(drive(actor, args.jobs, args.workers))
        profile.disable()
        commits = actor._commits
        grouped = (
            f", {commits.writes} writes in {commits.batches} transactions"
            if commits is not None
            else ", one transaction per write"
        )
        print(f"== {name}: {rate:,.0f} jobs/s{grouped}")
        for order in ("tottime", "cumtime"):
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order)
            stats.print_stats(args.top)
            body = out.getvalue()
            print(f"-- by {order}:\n" + body[body.index("ncalls") :].rstrip() + "\n")


if __name__ == "__main__":
    main()
