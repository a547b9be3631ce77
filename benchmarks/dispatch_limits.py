"""The dispatch-limit study: priority inversions and idle accelerators against the limit.

Three clusters (32 slots 0.5 s away, 16 slots 1 s, 8 slots 3 s; 56 slots, what the launch day
has after 10 h at scale 0.05) pull from one scheduler core through
luma_ray.sim.dispatch_sim, on the 22 h - 34 h window of the launch-day trace at scale
0.05 (the second surge: load 0.6 -> 1.4 -> 0.85 of the 56 slots). Every row sets the
same limit on every cluster, except the "far only" rows. Prints Markdown tables, one per
policy, each row compared with the unlimited row of the same run (mean over the seeds).

    python benchmarks/dispatch_limits.py [--seeds 1,2,3] [--policies slo_shadow,slo_guard,strict]
                                         [--markdown docs/dispatch_limits.md] [--json F]

With --markdown, the tables replace the text between the two "dispatch_limits" markers of
that file (the reading around them is kept), or make a new file.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from luma_ray.config import default_tiers
from luma_ray.sim.dispatch_sim import ClusterSpec, run_dispatch_sim, scheduler_config
from luma_ray.sim.traces import write_launch_day
from luma_ray.sim.traces.reader import Trace, read_trace

TIER_NAMES = [t.name for t in default_tiers()]
CLUSTERS = (
    ClusterSpec("near", 32, None, 0.5),
    ClusterSpec("mid", 16, None, 1.0),
    ClusterSpec("far", 8, None, 3.0),
)
SCALE = 0.05
WINDOW_H = (22.0, 34.0)
POLL_S = 1.0  # WorkerLoop.pull_wait_s
BEGIN, END = "<!-- dispatch_limits: begin -->", "<!-- dispatch_limits: end -->"


Limits = tuple[int | None, ...]


Row = tuple[Limits, float, float | None]


def rows() -> dict[str, Row]:
    """Row label → (limit per cluster in CLUSTERS order, None unlimited; prefetch poll s;
    prefetch lead s, None: at the start of each job).

    The prefetch poll is how long a busy worker's prefetch pull waits at the scheduler
    (``WorkerLoop.pull_wait_s``, 1 s); the one row at 0 s asks once and does not wait. The
    lead is how long before its job ends a worker sends that pull
    (``WorkerLoop.prefetch_lead_s``); the rows without one prefetch at the start of a job."""
    slots = [c.slots for c in CLUSTERS]
    n_c = len(CLUSTERS)
    out: dict[str, Row] = {str(n): ((n,) * n_c, POLL_S, None) for n in (0, 1, 4, 16)}
    for factor, label in ((1.0, "= slots"), (1.25, "1.25 x slots"), (2.0, "2 x slots")):
        limits = tuple(round(s * factor) for s in slots)
        out[f"{label} ({'/'.join(map(str, limits))})"] = (limits, POLL_S, None)
    out["= slots, prefetch poll 0 s"] = (tuple(slots), 0.0, None)
    out["unlimited"] = ((None,) * n_c, POLL_S, None)
    for n in (0, 4):
        out[f"far only: {n}"] = ((None,) * (n_c - 1) + (n,), POLL_S, None)
    for lead in (2.0, 5.0):
        out[f"unlimited, prefetch lead {lead:g} s"] = ((None,) * n_c, POLL_S, lead)
    out["= slots, prefetch lead 5 s"] = (tuple(slots), POLL_S, 5.0)
    return out


def window(trace: Trace, start_s: float, end_s: float) -> Trace:
    """Rows arriving in [start_s, end_s), with times shifted to start at 0."""
    keep = [i for i, a in enumerate(trace.arrival_s) if start_s <= a < end_s]
    return Trace(
        [trace.arrival_s[i] - start_s for i in keep],
        [trace.tenant[i] for i in keep],
        [trace.tier[i] for i in keep],
        [trace.model[i] for i in keep],
        [trace.service_s[i] for i in keep],
    )


@functools.cache
def load(folder: str) -> Trace:
    """The study's window of one seed's trace, read once per worker process."""
    trace = read_trace(Path(folder) / "trace.csv", TIER_NAMES)
    return window(trace, WINDOW_H[0] * 3600, WINDOW_H[1] * 3600)


def run_one(task: tuple[str, str, str, Row]) -> dict:
    folder, policy, label, (limits, poll_s, lead_s) = task
    trace = load(folder)
    clusters = [replace(c, dispatch_limit=n) for c, n in zip(CLUSTERS, limits, strict=True)]
    config = scheduler_config(clusters, policy)
    started, cpu = time.perf_counter(), time.process_time()
    result = asdict(
        run_dispatch_sim(trace, clusters, config, prefetch_poll_s=poll_s, prefetch_lead_s=lead_s)
    )
    result.pop("start_s")
    result.update(elapsed_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu)
    result.update(policy=policy, row=label, seed_folder=folder)
    return result


def mean(results: list[dict], key: str) -> float:
    return sum(r[key] for r in results) / len(results)


def ratio(value: float, base: float) -> str:
    if base == 0:
        return "-" if value == 0 else "inf"
    return f"{value / base:.2f}"


def table(by_row: dict[str, list[dict]]) -> list[str]:
    base = by_row["unlimited"]
    b_inv, b_wait = mean(base, "inversions"), mean(base, "inversion_wait_s")
    b_att = mean(base, "weighted_attainment")
    out = [
        "| limit (near/mid/far) | inversions | x unl. | inversion wait (h) | x unl. | "
        "idle at limit (accel-s) | idle on latency (accel-s) | weighted attainment | "
        "- unl. | p99 wait api (s) | p99 wait free (s) | last finish (h) |",
        "|---" * 12 + "|",
    ]
    for label, rs in by_row.items():
        inv, wait = mean(rs, "inversions"), mean(rs, "inversion_wait_s")
        att = mean(rs, "weighted_attainment")
        p99 = {t: sum(r["tiers"][t]["wait_p99_s"] for r in rs) / len(rs) for t in ("api", "free")}
        out.append(
            f"| {label} | {inv:,.0f} | {ratio(inv, b_inv)} | {wait / 3600:,.1f} | "
            f"{ratio(wait, b_wait)} | {mean(rs, 'idle_limit_s'):,.0f} | "
            f"{mean(rs, 'idle_latency_s'):,.0f} | {att:.3f} | {att - b_att:+.3f} | "
            f"{p99['api']:,.0f} | {p99['free']:,.0f} | {mean(rs, 'end_s') / 3600:.1f} |"
        )
    return out


def write_markdown(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + block + "\n" + END + rest.split(END, 1)[1]
    else:
        text = f"# Dispatch-limit study\n\n{BEGIN}\n{block}\n{END}\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--policies", default="slo_shadow,slo_guard,strict")
    parser.add_argument("--cache", default=os.environ.get("LUMA_BENCH_CACHE", "out/bench"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", help="write the tables into this file as well")
    parser.add_argument("--json", help="write every run's result here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    policies = args.policies.split(",")

    folders = []
    for seed in seeds:
        folder = Path(args.cache) / f"launch-day-s{SCALE:g}-seed{seed}"
        if not (folder / "capacity.csv").exists():
            write_launch_day(folder, scale=SCALE, seed=seed)
        folders.append(str(folder))
    tasks = [(f, p, label, lim) for p in policies for label, lim in rows().items() for f in folders]
    load_1m = os.getloadavg()[0]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(run_one, tasks, chunksize=1)
    elapsed = time.perf_counter() - started

    clusters = ", ".join(f"{c.name} {c.slots} slots / {c.pull_latency_s:g} s" for c in CLUSTERS)
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU only, Python "
        f"{platform.python_version()}; {len(tasks)} runs in {elapsed:.0f} s wall, "
        f"{sum(r['cpu_s'] for r in results):.0f} CPU-s in the runs (load average "
        f"{load_1m:.1f} at the start).",
        "",
        f"Clusters: {clusters}. Trace: launch day at scale {SCALE:g}, hours "
        f"{WINDOW_H[0]:g}-{WINDOW_H[1]:g}, seeds {args.seeds}: "
        f"{results[0]['jobs']:,} jobs (seed {seeds[0]}). Every cell is the mean over the "
        'seeds; "x unl." and "- unl." compare with the unlimited row of the same table. '
        "Limit 0 everywhere serves nothing, hence no p99.",
    ]
    for policy in policies:
        by_row: dict[str, list[dict]] = {}
        for r in results:
            if r["policy"] == policy:
                by_row.setdefault(r["row"], []).append(r)
        lines += ["", f"### Policy `{policy}`", "", *table(by_row)]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        write_markdown(Path(args.markdown), text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
