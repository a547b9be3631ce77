"""Preemption at step boundaries: does the default policy with it reach the issue-13 target?

The target, per trace: weighted attainment >= ``strict``'s AND p99.9 wait/SLO <= ``pct_slo``'s.
Replays the launch day (scale 0.1, seeds 1-5) and the GenTD26 replay (speedup 50, 25 slots),
written as benchmarks/policy_table.py writes them (same cache folder), through whatever
``DEFAULT_POLICY`` is, without preemption and with it at a few park+resume overheads, next to
``strict`` and ``pct_slo``. Prints a Markdown table per trace and the verdict per trace.

The preemptive replay queues first come, first served inside a tier (no fair share between
tenants), while the default without preemption runs with fair share, as the scheduler does.
So that the gain of preemption alone can be read, each trace also gets the default without
preemption AND without fair share (the row "fifo in tier"): the preemption rows differ from
it in preemption only.

    python benchmarks/preemption.py [--scale 0.1] [--seeds 1,2,3,4,5] [--overheads 0,2,10]
                                    [--steps 30] [--workers 2] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from pathlib import Path
from typing import Any

from luma_ray.config import PreemptionConfig, default_tiers
from luma_ray.scheduler.policies import DEFAULT_POLICY, make_policy
from luma_ray.sim.simulate import simulate
from luma_ray.sim.traces import write_gentd26, write_launch_day
from luma_ray.sim.traces.reader import Trace, read_capacity, read_trace

TIER_NAMES = [t.name for t in default_tiers()]

Task = tuple[str, str, int, str, float | None, int, bool]


def stretched(trace: Trace, k: int) -> Trace:
    """Every ``k``-th job, ``k`` times longer: the same load on the same slots, but a slot
    frees ``k`` times less often (a pool of long 4K-like jobs)."""
    if k == 1:
        return trace
    return Trace(
        trace.arrival_s[::k],
        trace.tenant[::k],
        trace.tier[::k],
        trace.model[::k],
        [s * k for s in trace.service_s[::k]],
    )


def run_one(task: Task) -> dict[str, Any]:
    label, folder, stretch, policy, overhead, steps, fair = task
    trace = stretched(read_trace(Path(folder) / "trace.csv", TIER_NAMES), stretch)
    capacity = read_capacity(Path(folder) / "capacity.csv")
    preemption = None if overhead is None else PreemptionConfig(enabled=True, overhead_s=overhead)
    started = time.perf_counter()
    policy_ = make_policy(policy)
    result = simulate(
        trace, capacity, policy_, preemption=preemption, default_steps=steps, fair_share=fair
    )
    result["elapsed_s"] = time.perf_counter() - started
    result["trace"] = label
    result["overhead"] = overhead
    return result


def row_label(r: dict[str, Any]) -> str:
    if r["overhead"] is None:
        if not r["fair_share"]:
            return f"{r['policy']}, fifo in tier (preemption's baseline)"
        return str(r["policy"]) + (" (default)" if r["policy"] == DEFAULT_POLICY else "")
    return f"{r['policy']} + preemption, overhead {r['overhead']:g} s"


def table(results: list[dict[str, Any]]) -> list[str]:
    out = [
        "| run | weighted att. | p99.9 wait/SLO | api att. | enterprise att. | parks | "
        "jobs parked | max parks/job | parked job ends later: p50 / max (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o, p = r["overall"], r.get("preemption")
        parks = "–" if p is None else f"{p['parks']:,}"
        jobs = "–" if p is None else f"{p['jobs_parked']:,}"
        most = "–" if p is None else str(p["max_parks_per_job"])
        late = "–"
        if p is not None:
            late = f"{p['parked_delay_p50_s']:.0f} / {p['parked_delay_max_s']:.0f}"
        tiers = r["tiers"]
        out.append(
            f"| {row_label(r)} | {o['weighted_attainment']:.3f} | {o['ratio_p999']:.2f} | "
            f"{tiers.get('api', {}).get('attainment', 1.0):.3f} | "
            f"{tiers.get('enterprise', {}).get('attainment', 1.0):.3f} | "
            f"{parks} | {jobs} | {most} | {late} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--overheads", default="0,2,10", help="park+resume overheads (s)")
    parser.add_argument("--steps", type=int, default=30, help="sampler steps per job")
    parser.add_argument("--gentd26-speedup", type=float, default=50.0)
    parser.add_argument("--gentd26-slots", type=int, default=25)
    parser.add_argument(
        "--long-jobs",
        type=int,
        default=10,
        help="also GenTD26 with every Kth job K times longer (1: skip)",
    )
    parser.add_argument("--cache", default=os.environ.get("LUMA_BENCH_CACHE", "out/bench"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", help="write the tables here as well")
    args = parser.parse_args()
    cache = Path(args.cache)
    overheads = [float(x) for x in args.overheads.split(",")]

    traces: dict[str, tuple[Path, int]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        folder = cache / f"launch-day-s{args.scale:g}-seed{seed}"
        if not (folder / "capacity.csv").exists():
            write_launch_day(folder, scale=args.scale, seed=seed)
        traces[f"launch day seed {seed}"] = (folder, 1)
    gfolder = cache / f"gentd26-x{args.gentd26_speedup:g}-slots{args.gentd26_slots}"
    if not (gfolder / "capacity.csv").exists():
        write_gentd26(gfolder, speedup=args.gentd26_speedup, slots=args.gentd26_slots)
    gname = f"GenTD26 (speedup {args.gentd26_speedup:g}, {args.gentd26_slots} slots)"
    traces[gname] = (gfolder, 1)
    if args.long_jobs > 1:
        k = args.long_jobs
        traces[f"{gname}, every {k}th job {k}x longer (stress)"] = (gfolder, k)

    runs: list[tuple[str, float | None, bool]] = [("strict", None, True), ("pct_slo", None, True)]
    runs += [(DEFAULT_POLICY, None, True), (DEFAULT_POLICY, None, False)]
    runs += [(DEFAULT_POLICY, o, False) for o in overheads]  # the preemptive replay: fifo in tier
    tasks: list[Task] = [
        (label, str(folder), k, policy, overhead, args.steps, fair)
        for label, (folder, k) in traces.items()
        for policy, overhead, fair in runs
    ]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(run_one, tasks, chunksize=1)
    elapsed = time.perf_counter() - started

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {len(tasks)} replays in {elapsed:.0f} s. Default policy: "
        f"{DEFAULT_POLICY} {make_policy(DEFAULT_POLICY).params}; {args.steps} steps per job; "
        "other preemption settings: "
        f"{PreemptionConfig().model_dump(exclude={'enabled', 'overhead_s'})}.",
        "",
    ]
    verdicts = []
    for label in traces:
        rs = [r for r in results if r["trace"] == label]
        by = {
            (r["policy"], r["overhead"]): r["overall"]
            for r in rs
            if r["fair_share"] or r["overhead"] is not None
        }
        strict, pct = by[("strict", None)], by[("pct_slo", None)]
        lines += [f"### {label}", "", *table(rs), ""]
        for overhead in [None, *overheads]:
            d = by[(DEFAULT_POLICY, overhead)]
            att = d["weighted_attainment"] >= strict["weighted_attainment"]
            tail = d["ratio_p999"] <= pct["ratio_p999"]
            what = "without preemption" if overhead is None else f"overhead {overhead:g} s"
            verdicts.append(
                f"- {label}, {what}: weighted attainment {d['weighted_attainment']:.3f} vs strict "
                f"{strict['weighted_attainment']:.3f} ({'PASS' if att else 'FAIL'}); p99.9 "
                f"{d['ratio_p999']:.3f} vs pct_slo {pct['ratio_p999']:.3f} "
                f"({'PASS' if tail else 'FAIL'})"
            )
    lines += ["### Target: attainment >= strict's AND p99.9 <= pct_slo's, per trace", ""]
    lines += verdicts
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
