"""The ``luma-ray`` command line.

Subcommands: ``simulate`` (replay a trace through a policy), ``trace`` (write a launch-day or
GenTD26 trace), and ``up``, ``down``, ``status``, ``generate`` (run the system; see
``serving_cli``). Bad input ends with one line on stderr naming what to fix, and exit code 2; a
system that cannot be reached, with one line saying so, and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from luma_ray import __version__
from luma_ray.errors import LumaError, Unavailable


def _param(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a number") from None


def _cmd_simulate(args: argparse.Namespace) -> int:
    from luma_ray.config import default_tiers, load_tiers
    from luma_ray.scheduler.policies import make_policy
    from luma_ray.sim.simulate import simulate
    from luma_ray.sim.traces.reader import read_capacity, read_trace

    tiers = load_tiers(args.tiers) if args.tiers else default_tiers()
    policy = make_policy(args.policy, dict(args.param))
    started = time.perf_counter()
    trace = read_trace(args.trace, [t.name for t in tiers])
    capacity = read_capacity(args.capacity)
    result = simulate(trace, capacity, policy, tiers, fair_share=args.fair_share)
    result["elapsed_s"] = round(time.perf_counter() - started, 3)
    text = json.dumps(result, indent=2)
    if args.out:
        try:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        except OSError as err:
            raise LumaError(f"{args.out}: cannot write result ({err.strerror})") from None
    print(text)
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from luma_ray.sim.traces import write_gentd26, write_launch_day

    if args.kind == "launch-day":
        summary = write_launch_day(args.out, scale=args.scale, seed=args.seed)
    else:
        summary = write_gentd26(
            args.out, speedup=args.speedup, slots=args.slots, source=args.source, seed=args.seed
        )
    print(
        f"wrote {summary.jobs} jobs over {summary.duration_s / 3600:.1f} h to "
        f"{summary.trace_path} and {summary.capacity_path} "
        f"(offered load {summary.offered_load:.2f})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from luma_ray.scheduler.policies import DEFAULT_POLICY, POLICIES

    parser = argparse.ArgumentParser(prog="luma-ray", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"luma-ray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="replay a trace through a dispatch policy")
    sim.add_argument("--trace", required=True, help="CSV: arrival_s,tenant,tier,model,service_s")
    sim.add_argument("--capacity", required=True, help="CSV: time_s,slots (a step function)")
    sim.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES))
    sim.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="KEY=VALUE",
        help="policy parameter, repeatable (e.g. r_cap=3)",
    )
    sim.add_argument("--tiers", help="YAML file of tiers (default: docs/scheduling.md's five)")
    sim.add_argument("--out", help="also write the result JSON here")
    sim.add_argument(
        "--no-fair-share",
        dest="fair_share",
        action="store_false",
        help="first come, first served across the tenants of a tier (default: fair share)",
    )
    sim.set_defaults(func=_cmd_simulate)

    trace = sub.add_parser("trace", help="write a trace and capacity CSV into a folder")
    kinds = trace.add_subparsers(dest="kind", required=True)
    launch = kinds.add_parser("launch-day", help="the synthetic 48 h launch-day trace")
    launch.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="1.0 = about 1.7M jobs and 9,000 GPUs; 1.2 = about 2M jobs",
    )
    launch.add_argument("--seed", type=int, default=0)
    launch.add_argument("--out", required=True, help="folder for trace.csv and capacity.csv")
    gentd = kinds.add_parser("gentd26", help="the GenTD26 production log, time-compressed")
    gentd.add_argument("--speedup", type=float, default=50.0, help="time compression factor")
    gentd.add_argument("--slots", type=int, default=30, help="constant capacity in slots")
    gentd.add_argument("--source", help="request CSV (default: the copy shipped in the package)")
    gentd.add_argument("--seed", type=int, default=0)
    gentd.add_argument("--out", required=True, help="folder for trace.csv and capacity.csv")
    for p in (launch, gentd):
        p.set_defaults(func=_cmd_trace)

    from luma_ray.api.keys_cli import add_commands as add_key_commands
    from luma_ray.models.repository_cli import add_commands as add_model_commands
    from luma_ray.serving_cli import add_commands

    add_commands(sub)
    add_key_commands(sub)
    add_model_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Ray reads its auth mode when it is imported; clusters started by `luma-ray up` use
    # token auth, so drivers that join them need it set before any Ray import.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    # Ray's own pydantic models warn on import; that is Ray's to fix, not the user's to read.
    warnings.filterwarnings("ignore", message=".*extra keyword arguments on `Field`.*")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LumaError as err:
        print(f"luma-ray: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, Unavailable) else 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
