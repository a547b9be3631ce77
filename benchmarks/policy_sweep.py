"""The policy sweep: the default policy against strict and pct_slo on days it was not tuned on.

Over scenario days (``luma-ray trace scenarios``; seeds from 2026 up by default, while the
default is tuned on 1000-1009), the launch day (scale 0.1, seeds 1-5) and the GenTD26 replay
(speedup 50, 25 slots), replays each trace with ``DEFAULT_POLICY`` (default parameters),
``strict`` and ``pct_slo`` and reports, per trace, the default's weighted attainment over
strict's and its p99.9 wait/SLO over pct_slo's, the worst of each over the sweep, and PASS or
FAIL against the targets (attainment ratio >= 0.9, tail ratio <= 1.1; issue 13, item 2).
Traces are written once into a cache folder; replays run on ``--workers`` processes.

    python benchmarks/policy_sweep.py [--count 20] [--seed 2026] [--scale 1]
        [--launch-seeds 1,2,3,4,5] [--workers 2] [--markdown docs/policy_sweep.md] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import DEFAULT_POLICY, make_policy
from luma_ray.sim.simulate import simulate
from luma_ray.sim.traces import write_gentd26, write_launch_day
from luma_ray.sim.traces.reader import read_capacity, read_trace
from luma_ray.sim.traces.scenarios import SPEC_FILE, draw_spec, write_scenario

TIER_NAMES = [t.name for t in default_tiers()]
POLICIES = (DEFAULT_POLICY, "strict", "pct_slo")
ATTAINMENT_TARGET = 0.9  # default's weighted attainment / strict's, at least
TAIL_TARGET = 1.1  # default's p99.9 wait/SLO / pct_slo's, at most


def _prepare(task: tuple[str, str, dict[str, Any]]) -> tuple[str, str]:
    """Write one trace into its cache folder unless it is there; return (label, folder)."""
    kind, folder, kwargs = task
    path = Path(folder)
    if kind == "scenario":
        if not (path / SPEC_FILE).exists():  # written last: its presence means complete
            write_scenario(path, draw_spec(kwargs["seed"], kwargs["scale"]))
        return f"scenario-{kwargs['seed']}", folder
    if not (path / "capacity.csv").exists():
        if kind == "launch":
            write_launch_day(path, scale=kwargs["scale"], seed=kwargs["seed"])
        else:
            write_gentd26(path, speedup=kwargs["speedup"], slots=kwargs["slots"])
    if kind == "launch":
        return f"launch-day seed {kwargs['seed']}", folder
    return "gentd26", folder


def trace_tasks(
    cache: Path,
    count: int,
    seed: int,
    scale: float,
    launch_seeds: Iterable[int] = (1, 2, 3, 4, 5),
    launch_scale: float = 0.1,
    gentd26: tuple[float, int] | None = (50.0, 25),
) -> list[tuple[str, str, dict[str, Any]]]:
    """What to write: scenarios ``seed .. seed + count - 1``, launch days, GenTD26."""
    tasks: list[tuple[str, str, dict[str, Any]]] = [
        (
            "scenario",
            str(cache / f"scenarios-x{scale:g}" / f"scenario-{s}"),
            {"seed": s, "scale": scale},
        )
        for s in range(seed, seed + count)
    ]
    tasks += [
        (
            "launch",
            str(cache / f"launch-day-s{launch_scale:g}-seed{s}"),
            {"seed": s, "scale": launch_scale},
        )
        for s in launch_seeds
    ]
    if gentd26 is not None:
        speedup, slots = gentd26
        folder = cache / f"gentd26-x{speedup:g}-slots{slots}"
        tasks.append(("gentd26", str(folder), {"speedup": speedup, "slots": slots}))
    return tasks


def run_one(task: tuple[str, str, str]) -> dict[str, Any]:
    """Replay one trace with one policy (default parameters); the result plus trace and time."""
    label, folder, name = task
    trace = read_trace(Path(folder) / "trace.csv", TIER_NAMES)
    capacity = read_capacity(Path(folder) / "capacity.csv")
    started = time.perf_counter()
    # The default runs as the scheduler runs it (fair share inside a tier); the baselines keep
    # their classic first-come order inside a tier (with fair share, one-band policies lose
    # their age order and pct_slo's tail is no longer the yardstick it is meant to be).
    fair = name == DEFAULT_POLICY
    result = simulate(trace, capacity, make_policy(name), fair_share=fair)
    result["elapsed_s"] = round(time.perf_counter() - started, 2)
    result["trace"] = label
    spec = Path(folder) / SPEC_FILE
    if spec.exists():
        drawn = json.loads(spec.read_text())["spec"]
        flood = drawn["flood"]
        result["scenario"] = {
            "capacity_kind": drawn["capacity_kind"],
            "flood": f"{flood['tier']} {flood['factor']:.1f}x" if flood else "",
        }
    return result


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 1.0 if num <= 0 else math.inf


def compare(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trace: the default against strict (attainment) and pct_slo (tail)."""
    by_trace: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_trace.setdefault(r["trace"], {})[r["policy"]] = r
    rows = []
    for label, runs in by_trace.items():
        d, s, p = (runs[name] for name in POLICIES)
        att = _ratio(d["overall"]["weighted_attainment"], s["overall"]["weighted_attainment"])
        tail = _ratio(d["overall"]["ratio_p999"], p["overall"]["ratio_p999"])
        rows.append(
            {
                "trace": label,
                "jobs": d["jobs"],
                "scenario": d.get("scenario", {}),
                "lower_bound": d["lower_bound_ratio_max"],
                "default_attainment": d["overall"]["weighted_attainment"],
                "strict_attainment": s["overall"]["weighted_attainment"],
                "attainment_ratio": att,
                "default_p999": d["overall"]["ratio_p999"],
                "pct_slo_p999": p["overall"]["ratio_p999"],
                "tail_ratio": tail,
                "pass": att >= ATTAINMENT_TARGET and tail <= TAIL_TARGET,
            }
        )
    return rows


def worst(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst attainment ratio and the worst tail ratio over the rows, and where."""
    low = min(rows, key=lambda r: r["attainment_ratio"])
    high = max(rows, key=lambda r: r["tail_ratio"])
    return {
        "attainment_ratio": low["attainment_ratio"],
        "attainment_trace": low["trace"],
        "tail_ratio": high["tail_ratio"],
        "tail_trace": high["trace"],
        "pass": low["attainment_ratio"] >= ATTAINMENT_TARGET and high["tail_ratio"] <= TAIL_TARGET,
    }


def render(rows: list[dict[str, Any]], header: str = "") -> str:
    """The Markdown table, the worst cases and the verdict."""
    w = worst(rows)
    params = make_policy(DEFAULT_POLICY).params
    described = ", ".join(f"{k}={v:g}" for k, v in sorted(params.items()))
    lines = [
        header,
        "",
        f"Default: `{DEFAULT_POLICY}` ({described}). Targets per trace: weighted attainment "
        f">= {ATTAINMENT_TARGET:g}x strict's, p99.9 wait/SLO <= {TAIL_TARGET:g}x pct_slo's. "
        "LB: the lower bound on max wait/SLO of any non-preemptive policy.",
        "",
        "| trace | jobs | capacity | flood | LB | default w.att. | strict w.att. | ratio | "
        "default p99.9 | pct_slo p99.9 | ratio | verdict |",
        "|---" * 12 + "|",
    ]
    for r in rows:
        sc = r["scenario"]
        lines.append(
            f"| {r['trace']} | {r['jobs']:,} | {sc.get('capacity_kind', '')} | "
            f"{sc.get('flood', '')} | {r['lower_bound']:.2f} | {r['default_attainment']:.3f} | "
            f"{r['strict_attainment']:.3f} | {r['attainment_ratio']:.3f} | "
            f"{r['default_p999']:.2f} | {r['pct_slo_p999']:.2f} | {r['tail_ratio']:.3f} | "
            f"{'PASS' if r['pass'] else 'FAIL'} |"
        )
    failed = sum(not r["pass"] for r in rows)
    att_ok = w["attainment_ratio"] >= ATTAINMENT_TARGET
    lines += [
        "",
        f"Worst attainment ratio: {w['attainment_ratio']:.3f} ({w['attainment_trace']}; target "
        f">= {ATTAINMENT_TARGET:g}: {'PASS' if att_ok else 'FAIL'}).",
        f"Worst tail ratio: {w['tail_ratio']:.3f} ({w['tail_trace']}; target <= {TAIL_TARGET:g}: "
        f"{'PASS' if w['tail_ratio'] <= TAIL_TARGET else 'FAIL'}).",
        f"Traces passing both: {len(rows) - failed} of {len(rows)}.",
        "",
        f"Overall: {'PASS' if w['pass'] else 'FAIL'}",
    ]
    return "\n".join(lines)


def sweep(
    tasks: list[tuple[str, str, dict[str, Any]]],
    workers: int,
    on_ready: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write (or reuse) the traces, replay each with the three policies; (results, rows)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        traces = pool.map(_prepare, tasks, chunksize=1)
        on_ready(f"{len(traces)} traces ready")
        jobs = [(label, folder, name) for label, folder in traces for name in POLICIES]
        results = pool.map(run_one, jobs, chunksize=1)
    return results, compare(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="scenario days")
    parser.add_argument("--seed", type=int, default=2026, help="first scenario seed")
    parser.add_argument("--scale", type=float, default=1.0, help="scenario scale")
    parser.add_argument("--launch-seeds", default="1,2,3,4,5", help="'' for none")
    parser.add_argument("--launch-scale", type=float, default=0.1)
    parser.add_argument("--gentd26-speedup", type=float, default=50.0)
    parser.add_argument("--gentd26-slots", type=int, default=25, help="0: leave GenTD26 out")
    parser.add_argument("--cache", default=os.environ.get("LUMA_BENCH_CACHE", "out/bench"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", help="write the table here as well")
    parser.add_argument("--json", help="write the rows, the worst cases and every result here")
    args = parser.parse_args()
    launch_seeds = [int(s) for s in args.launch_seeds.split(",") if s.strip()]
    gentd = (args.gentd26_speedup, args.gentd26_slots) if args.gentd26_slots > 0 else None
    tasks = trace_tasks(
        Path(args.cache), args.count, args.seed, args.scale, launch_seeds, args.launch_scale, gentd
    )
    started = time.perf_counter()
    results, rows = sweep(tasks, args.workers)
    elapsed = time.perf_counter() - started
    header = (
        "# Policy sweep\n\n"
        "`python benchmarks/policy_sweep.py` (issue 13): the default policy on days it was not "
        "tuned on.\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {len(results)} replays on {args.workers} processes in "
        f"{elapsed:.0f} s (trace writing included). Scenarios: seeds {args.seed}-"
        f"{args.seed + args.count - 1} at scale {args.scale:g}; launch day scale "
        f"{args.launch_scale:g}, seeds {args.launch_seeds or 'none'}; GenTD26 "
        + (f"speedup {gentd[0]:g}, {gentd[1]} slots." if gentd else "left out.")
    )
    text = render(rows, header)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        payload = {"rows": rows, "worst": worst(rows), "results": results}
        Path(args.json).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
