"""Scheduler throughput through the Ray actor: submits, batched submits, pull + complete cycles
and complete+pull in one call (CompleteAndPull), measured in the same run.

Starts a local cluster with only the scheduler actor (journal on local disk, WAL, fsync on
every commit) and drives it from this driver with a window of concurrent calls.

    python benchmarks/scheduler_throughput.py [--jobs 2000] [--window 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _cluster import local_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--window", type=int, default=16, help="calls in flight at once")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.jobs} jobs, window {args.window}"
    )
    with local_ray() as root:
        import ray

        from luma_ray import launch
        from luma_ray.config import RuntimeConfig, parse_config
        from luma_ray.scheduler.protocol import (
            Complete,
            CompleteAndPull,
            Pull,
            Submit,
            SubmitMany,
            SubmitRequest,
        )

        # One tenant submits every job: lift the free tier's default cap of queued jobs.
        scheduler = parse_config({"tenant_limits": {"free": {"max_queued": None}}})
        runtime = RuntimeConfig(
            data_dir=str(root / "data"), pools=[], http_host=None, scheduler=scheduler
        )
        actor = launch.start(runtime).actor  # raw calls, many in flight: the actor's own speed

        def windowed(make_call, n: int) -> float:
            started = time.perf_counter()
            pending = []
            for i in range(n):
                pending.append(make_call(i))
                if len(pending) >= args.window:
                    ray.get(pending)
                    pending = []
            ray.get(pending)
            return n / (time.perf_counter() - started)

        rate = windowed(
            lambda i: actor.call.remote(Submit(SubmitRequest(prompt=f"p{i}", steps=2))), args.jobs
        )
        print(f"submit (one job per call)        {rate:9,.0f} jobs/s", flush=True)

        batch = 100
        started = time.perf_counter()
        refs = [
            actor.call.remote(
                SubmitMany(tuple(SubmitRequest(prompt=f"b{i}-{k}") for k in range(batch)))
            )
            for i in range(args.jobs // batch)
        ]
        ray.get(refs)
        rate = (args.jobs // batch) * batch / (time.perf_counter() - started)
        print(f"submit_many (100 jobs per call)  {rate:9,.0f} jobs/s", flush=True)

        def cycle(i: int):
            a = ray.get(actor.call.remote(Pull(f"w{i % args.window}", "local", ("luma-tiny",))))
            return actor.call.remote(Complete(a.job_id, a.token, {"video": "file:///x.mp4"}))

        rate = windowed(cycle, args.jobs)
        print(f"pull + complete (one job)        {rate:9,.0f} jobs/s", flush=True)

        # The same cycle, one call per job: each of ``window`` workers commits its job and
        # leases its next one with CompleteAndPull (one journal write too).
        more = tuple(SubmitRequest(prompt=f"c{i}", steps=2) for i in range(args.jobs + args.window))
        ray.get(actor.call.remote(SubmitMany(more)))
        workers = [f"cp{w}" for w in range(args.window)]
        held = ray.get([actor.call.remote(Pull(w, "local", ("luma-tiny",))) for w in workers])
        started, done = time.perf_counter(), 0
        while done < args.jobs:
            refs = [
                actor.call.remote(
                    CompleteAndPull(
                        a.job_id, a.token, {"video": "file:///x.mp4"}, w, "local", ("luma-tiny",)
                    )
                )
                for w, a in zip(workers, held, strict=True)
            ]
            answers = ray.get(refs)
            done += len(answers)
            held = [a.assignment for a in answers]
        rate = done / (time.perf_counter() - started)
        print(f"complete+pull in one call        {rate:9,.0f} jobs/s", flush=True)
        started = time.perf_counter()
        refs = [actor.call.remote(Pull(f"w{i}", "local", ("luma-tiny",))) for i in range(args.jobs)]
        leases = ray.get(refs)
        rate = args.jobs / (time.perf_counter() - started)
        print(
            f"pull only ({args.jobs} in flight)         {rate:9,.0f} pulls/s "
            f"({sum(a is not None for a in leases)} leased)",
            flush=True,
        )


if __name__ == "__main__":
    main()
