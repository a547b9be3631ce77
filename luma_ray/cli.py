"""The ``luma-ray`` command line.

Subcommands: ``simulate`` (replay a trace through a policy), ``trace`` (write a launch-day or
GenTD26 trace, or a family of scenario days), and ``up``, ``down``, ``status``, ``generate``
(run the system; see ``serving_cli``). Bad input ends with one line on stderr naming what to
fix, and exit code 2; a system that cannot be reached, with one line saying so, and exit code 1.
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 3600 seconds")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number >= 0")
    return value


def _cmd_simulate(args: argparse.Namespace) -> int:
    from luma_ray.config import PreemptionConfig, default_tiers, load_tiers
    from luma_ray.scheduler.policies import make_policy
    from luma_ray.sim.simulate import simulate
    from luma_ray.sim.traces.reader import read_capacity, read_trace

    tiers = load_tiers(args.tiers) if args.tiers else default_tiers()
    policy = make_policy(args.policy, dict(args.param))
    started = time.perf_counter()
    trace = read_trace(args.trace, [t.name for t in tiers])
    capacity = read_capacity(args.capacity)
    preemption = None
    if args.preempt:
        preemption = PreemptionConfig(enabled=True, overhead_s=args.park_overhead_s)
    result = simulate(
        trace,
        capacity,
        policy,
        tiers,
        preemption,
        args.steps,
        jobs_out=args.jobs_out,
        fair_share=args.fair_share,
        **({} if args.lag_jobs is None else {"lag_jobs": args.lag_jobs}),
    )
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


def _whole_arg(text: str, name: str) -> int:
    from luma_ray.errors import TraceError

    try:
        return int(text)
    except ValueError:
        raise TraceError(f"--{name}: {text!r} is not a whole number") from None


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from luma_ray.errors import TraceError
    from luma_ray.sim.traces.scenarios import write_scenarios

    try:
        scale = float(args.scale)
    except ValueError:
        raise TraceError(f"--scale: {args.scale!r} is not a number") from None
    written = write_scenarios(
        args.out,
        count=_whole_arg(args.count, "count"),
        seed=_whole_arg(args.seed, "seed"),
        scale=scale,
    )
    for spec, summary in written:
        flood = f", {spec.flood.tenant} floods {spec.flood.factor:g}x" if spec.flood else ""
        print(
            f"{spec.name}: {summary.jobs} jobs, {spec.capacity_kind} capacity, offered load "
            f"{summary.offered_load:.2f}{flood} -> {summary.trace_path.parent}"
        )
    return 0


# What each optional dependency is installed by (pyproject.toml's extras): a command that
# needs one that is missing says which extra to install, not a traceback.
EXTRA_OF_MODULE = {
    "ray": "server",
    "fastapi": "server",
    "starlette": "server",
    "sse_starlette": "server",
    "multipart": "server",
    "python_multipart": "server",
    "standardwebhooks": "server",
    "torch": "worker",
    "numpy": "worker",
    "av": "worker",
    "safetensors": "worker",
    "PIL": "worker",
    "boto3": "s3",
    "botocore": "s3",
    "diffusers": "diffusers",
    "transformers": "diffusers",
    "accelerate": "diffusers",
    "httpx": "client",
    "httpcore": "client",
    "tqdm": "client",
}


def missing_extra(err: ModuleNotFoundError, command: str) -> str | None:
    """One line naming the extra that installs the module ``err`` is about, or None when the
    module is none of the optional dependencies (then it is a bug, not an install choice)."""
    module = (err.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    if extra == "server":
        also = ""
    elif extra in ("s3", "diffusers"):
        also = " (or 'luma_ray[all]' for everything)"
    else:
        also = " (or 'luma_ray[server]' for the whole system)"
    return (
        f"`luma-ray {command}` needs {module}, which the {extra} extra installs: "
        f"pip install 'luma_ray[{extra}]'{also}"
    )


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
        "--jobs-out",
        metavar="FILE",
        help="also write one CSV row per job here: "
        "arrival_s,tenant,tier,model,service_s,start_s,end_s,preemptions",
    )
    sim.add_argument(
        "--preempt",
        action="store_true",
        help="park running jobs at step boundaries for more urgent ones (docs/scheduling.md)",
    )
    sim.add_argument(
        "--park-overhead-s",
        type=_seconds,
        default=2.0,
        help="with --preempt: seconds one park + resume adds to the parked job (default 2)",
    )
    sim.add_argument(
        "--steps",
        type=_at_least_one,
        default=30,
        help="with --preempt: steps per job when the trace has no steps column (default 30)",
    )
    sim.add_argument(
        "--no-fair-share",
        dest="fair_share",
        action="store_false",
        help="first come, first served across the tenants of a tier (default: fair share)",
    )
    sim.add_argument(
        "--fair-share-lag-jobs",
        dest="lag_jobs",
        type=_non_negative,
        default=None,
        help="how far (in mean job costs) a tenant may run ahead before fair share, not age, "
        "picks its savable jobs; 0: pure fair share (default: the scheduler's, 1000)",
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
    family = kinds.add_parser(
        "scenarios", help="N varied 24 h overload days (docs/traces.md, scenarios)"
    )
    family.add_argument("--count", default="20", help="how many scenarios (1-1000)")
    family.add_argument(
        "--seed", default="0", help="scenario k is drawn from seed + k and named scenario-<seed+k>"
    )
    family.add_argument("--scale", default="1", help="1 = about 60k-250k jobs a day; in (0, 10]")
    family.add_argument("--out", required=True, help="folder; one sub-folder per scenario")
    family.set_defaults(func=_cmd_scenarios)

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
    except ModuleNotFoundError as err:
        line = missing_extra(err, args.command)
        if line is None:
            raise
        print(f"luma-ray: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
