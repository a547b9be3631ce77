"""Idle gap of a model worker between consecutive jobs, with and without prefetch.

Starts a local cluster with the scheduler and one luma-tiny replica, queues N small jobs at
once, waits for all of them, and reads the replica's measured gaps (end of one model call to
the start of the next). Runs once with prefetch and once without, in the same process, on the
same machine.

    python benchmarks/worker_gap.py [--jobs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from _cluster import local_ray


def run(prefetch: bool, jobs: int, root) -> dict:
    import ray
    from ray import serve

    import luma_ray
    from luma_ray.config import PoolConfig, RuntimeConfig

    runtime = RuntimeConfig(
        http_host=None,
        data_dir=str(root / ("prefetch" if prefetch else "no-prefetch")),
        pools=[PoolConfig(replicas=1, prefetch=prefetch, num_cpus=1, torch_threads=1)],
    )
    if prefetch is False:  # a fresh scheduler and pool for the second run
        from luma_ray.runtime.handle import get_scheduler

        serve.delete("luma-tiny-workers")
        ray.kill(get_scheduler().actor, no_restart=True)
        time.sleep(1.0)  # let the actor name free up (a benchmark, not a test)
    client = luma_ray.connect(runtime=runtime)
    ids = [client.submit(f"clip {i}", frames=8, steps=2, seed=i, tier="api") for i in range(jobs)]
    for job_id in ids:
        assert client.wait(job_id, timeout=600).state == "succeeded"
    handle = serve.get_deployment_handle("luma-tiny-workers", app_name="luma-tiny-workers")
    stats = handle.stats.remote().result(timeout_s=60)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.jobs} jobs of 8 frames, 64x64, 2 steps"
    )
    with local_ray() as root:
        results = {}
        for prefetch in (True, False):
            stats = run(prefetch, args.jobs, root)
            gaps = sorted(g * 1000 for g in stats["gaps_s"])
            results[prefetch] = gaps
            print(
                f"prefetch={str(prefetch):<5}  gaps measured {len(gaps):>3}   median "
                f"{statistics.median(gaps):7.2f} ms   p90 {gaps[int(0.9 * (len(gaps) - 1))]:7.2f}"
                f" ms   max {gaps[-1]:7.2f} ms",
                flush=True,
            )
    with_p, without = statistics.median(results[True]), statistics.median(results[False])
    print(
        f"median gap without prefetch / with prefetch: {without / max(with_p, 1e-6):.1f}x; "
        f"with prefetch {'under' if with_p < 5 else 'OVER'} 5 ms"
    )


if __name__ == "__main__":
    main()
