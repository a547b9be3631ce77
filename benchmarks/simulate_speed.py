"""Simulator speed: wall time of `luma-ray simulate` on a ~2,000,000-job launch-day trace.

Writes the trace once (scale 1.2, about 2.04M jobs), then runs the real command line once per
policy in a fresh process and reports wall time and peak memory (includes reading the CSV,
the replay, the metrics and the fluid lower bound).

    python benchmarks/simulate_speed.py [--scale 1.2] [--policies fifo,strict,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from luma_ray.scheduler.policies import POLICIES
from luma_ray.sim.traces import write_launch_day

TARGET_S = 20.0  # per policy at 2M jobs (PERFORMANCE.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policies", default=",".join(sorted(POLICIES)))
    parser.add_argument("--cache", default=os.environ.get("LUMA_BENCH_CACHE", "out/bench"))
    args = parser.parse_args()
    folder = Path(args.cache) / f"launch-day-s{args.scale:g}-seed{args.seed}"
    if not (folder / "capacity.csv").exists():
        write_launch_day(folder, scale=args.scale, seed=args.seed)
    with (folder / "trace.csv").open() as f:
        jobs = sum(1 for _ in f) - 1
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; trace: {jobs:,} jobs ({folder})"
    )
    worst = 0.0
    for name in args.policies.split(","):
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "luma_ray.cli",
                "simulate",
                "--trace",
                str(folder / "trace.csv"),
                "--capacity",
                str(folder / "capacity.csv"),
                "--policy",
                name,
                "--out",
                str(folder / f"result-{name}.json"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        worst = max(worst, wall)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"  {name:<10} {wall:6.1f} s   (largest peak RSS so far {peak_mb:,.0f} MB)", flush=True
        )
    verdict = "PASS" if worst <= TARGET_S else "FAIL"
    print(f"slowest policy: {worst:.1f} s ({verdict}: the target is {TARGET_S:.0f} s per policy)")


if __name__ == "__main__":
    main()
