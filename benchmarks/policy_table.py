"""The policy table: every dispatch policy on the launch-day trace and the GenTD26 replay.

Writes each trace once into a cache folder, replays it through every policy (the scheduler's
own policy and queue code, via luma_ray.sim.simulate), and prints Markdown tables:
mean and [min, max] over the launch-day seeds, and the GenTD26 replay at a load that
overloads capacity at its peaks. Ends with the acceptance checks of the default policy:
weighted attainment above strict, p99.9 wait/SLO no more than 10 % above pct_slo.

    python benchmarks/policy_table.py [--scale 0.1] [--seeds 1,2,3,4,5] [--frontier]
                                      [--markdown docs/policy_table.md]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import DEFAULT_POLICY, POLICIES, make_policy
from luma_ray.sim.simulate import simulate
from luma_ray.sim.traces import write_gentd26, write_launch_day
from luma_ray.sim.traces.reader import read_capacity, read_trace

TIER_NAMES = [t.name for t in default_tiers()]
FRONTIER = [{"tail_target": t} for t in (0.9, 1.0, 1.25, 1.5, 2.0, 4.0)]
"""``--frontier``: settings of the default policy's knob, ``tail_target`` (docs/scheduling.md)."""


def run_one(task: tuple[str, str, str, dict[str, float]]) -> dict:
    label, folder, name, params = task
    trace = read_trace(Path(folder) / "trace.csv", TIER_NAMES)
    capacity = read_capacity(Path(folder) / "capacity.csv")
    started = time.perf_counter()
    # The default runs with fair share inside a tier, as the scheduler does; every other policy
    # keeps its classic first-come order inside a tier (what it is named after).
    fair = name == DEFAULT_POLICY
    result = simulate(trace, capacity, make_policy(name, params), fair_share=fair)
    result["elapsed_s"] = time.perf_counter() - started
    result["trace"] = label
    return result


def describe(name: str, params: dict[str, float]) -> str:
    if not params:
        return name
    return name + " " + ",".join(f"{k}={v:g}" for k, v in sorted(params.items()))


def cell(values: list[float], digits: int = 3) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def table(rows: dict[str, list[dict]]) -> list[str]:
    out = [
        "| policy | weighted attainment | attainment | p99.9 wait/SLO | max wait/SLO | "
        "longest wait (h) | " + " | ".join(f"{t} att." for t in TIER_NAMES) + " |",
        "|---" * (6 + len(TIER_NAMES)) + "|",
    ]
    for label, results in rows.items():
        o = [r["overall"] for r in results]
        tiers = [
            cell([r["tiers"].get(t, {}).get("attainment", 1.0) for r in results], 2)
            for t in TIER_NAMES
        ]
        out.append(
            f"| {label} | {cell([x['weighted_attainment'] for x in o])} | "
            f"{cell([x['attainment'] for x in o])} | {cell([x['ratio_p999'] for x in o], 2)} | "
            f"{cell([x['ratio_max'] for x in o], 2)} | "
            f"{cell([x['wait_max_s'] / 3600 for x in o], 1)} | " + " | ".join(tiers) + " |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--gentd26-speedup", type=float, default=50.0)
    parser.add_argument("--gentd26-slots", type=int, default=25)
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="also sweep the default policy's shares",
    )
    parser.add_argument("--cache", default=os.environ.get("LUMA_BENCH_CACHE", "out/bench"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", help="write the tables here as well")
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = Path(args.cache)

    traces = {}
    for seed in seeds:
        folder = cache / f"launch-day-s{args.scale:g}-seed{seed}"
        if not (folder / "capacity.csv").exists():
            write_launch_day(folder, scale=args.scale, seed=seed)
        traces[f"launch-day seed {seed}"] = folder
    gfolder = cache / f"gentd26-x{args.gentd26_speedup:g}-slots{args.gentd26_slots}"
    if not (gfolder / "capacity.csv").exists():
        write_gentd26(gfolder, speedup=args.gentd26_speedup, slots=args.gentd26_slots)
    traces["gentd26"] = gfolder

    policies = [(name, {}) for name in sorted(POLICIES)]
    if args.frontier:
        defaults = make_policy(DEFAULT_POLICY).params
        policies += [
            (DEFAULT_POLICY, p) for p in FRONTIER if any(defaults[k] != v for k, v in p.items())
        ]
    tasks = [
        (label, str(folder), name, params)
        for label, folder in traces.items()
        for name, params in policies
    ]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(run_one, tasks, chunksize=1)
    elapsed = time.perf_counter() - started

    launch: dict[str, list[dict]] = {}
    gentd: dict[str, list[dict]] = {}
    for r in results:
        is_default = r["params"] == make_policy(r["policy"]).params
        label = r["policy"] if is_default else describe(r["policy"], r["params"])
        if is_default and r["policy"] == DEFAULT_POLICY:
            label = f"**{DEFAULT_POLICY}** (default: " + describe("", r["params"]).strip() + ")"
        (gentd if r["trace"] == "gentd26" else launch).setdefault(label, []).append(r)

    g0 = next(iter(gentd.values()))[0]
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {len(tasks)} replays in {elapsed:.0f} s.",
        "",
        f"### Launch day (scale {args.scale:g}, seeds {args.seeds}; mean [min, max])",
        "",
        f"{launch[next(iter(launch))][0]['jobs']:,} jobs (seed {seeds[0]}); fluid lower bound on "
        "max wait/SLO: " + cell([r["lower_bound_ratio_max"] for r in launch["fifo"]], 2) + ".",
        "",
        *table(launch),
        "",
        f"### GenTD26 replay (speedup {args.gentd26_speedup:g}, {args.gentd26_slots} slots)",
        "",
        f"{g0['jobs']:,} jobs; utilisation {g0['overall']['utilization']:.2f}; fluid lower "
        f"bound on max wait/SLO: {g0['lower_bound_ratio_max']:.2f}.",
        "",
        *table(gentd),
        "",
        "### Acceptance checks (launch day, per seed)",
        "",
    ]
    default = next(v for k, v in launch.items() if k.startswith("**"))
    by_seed = {
        name: {r["trace"]: r["overall"] for r in rs}
        for name, rs in (
            ("default", default),
            ("strict", launch["strict"]),
            ("pct_slo", launch["pct_slo"]),
        )
    }
    ok = True
    for seed in seeds:
        trace = f"launch-day seed {seed}"
        d, s, p = (by_seed[k][trace] for k in ("default", "strict", "pct_slo"))
        beat = d["weighted_attainment"] > s["weighted_attainment"]
        tail = d["ratio_p999"] <= 1.10 * p["ratio_p999"]
        ok &= beat and tail
        lines.append(
            f"- seed {seed}: weighted attainment {d['weighted_attainment']:.3f} vs strict "
            f"{s['weighted_attainment']:.3f} ({'PASS' if beat else 'FAIL'}); p99.9 wait/SLO "
            f"{d['ratio_p999']:.2f} vs pct_slo {p['ratio_p999']:.2f} x 1.10 = "
            f"{1.1 * p['ratio_p999']:.2f} ({'PASS' if tail else 'FAIL'})"
        )
    lines += ["", f"Overall: {'PASS' if ok else 'FAIL'}"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
