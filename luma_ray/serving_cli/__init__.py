"""``luma-ray up | down | status | generate``: run the system on this machine.

Entry-point code: it reads the environment once (data directory, Ray auth mode) and passes
values down. ``up --detach`` makes sure of a Ray auth token, starts a Ray head of its own
unless a cluster already runs here, and records what it started (``record``); ``down`` removes
luma_ray and stops Ray only if ``up`` started it. ``generate`` is the quickstart: it joins a
running system or starts a local one, makes one video, saves it and says where.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from luma_ray.config import RuntimeConfig
from luma_ray.errors import Conflict, InvalidRequest, Unavailable
from luma_ray.serving_cli.auth_token import ensure_auth_token
from luma_ray.serving_cli.cluster import data_dir_of, join, luma_apps, runtime_of
from luma_ray.serving_cli.head import is_head, start_head, stop_head
from luma_ray.serving_cli.record import (
    UpRecord,
    forget_record,
    load_record,
    plan_down,
    record_path,
    save_record,
)
from luma_ray.serving_cli.serve_config import add_serve_config_command, deployment_parser

DEFAULT_URL = "http://127.0.0.1:8000"


def cmd_up(args: argparse.Namespace) -> int:
    runtime = runtime_of(args)
    if args.detach:
        return _up_detached(runtime)
    import ray

    from luma_ray import launch
    from luma_ray.runtime.handle import NAMESPACE

    ray.init(namespace=NAMESPACE, logging_level=logging.WARNING)
    launch.start(runtime)
    _print_up(runtime)
    print("serving until Ctrl-C", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()
    return 0


def _print_up(runtime: RuntimeConfig) -> None:
    print(f"luma_ray is up. journal: {runtime.journal}  results: {runtime.store}", flush=True)
    if runtime.http_host is not None:
        print(
            f"HTTP API: http://{runtime.http_host}:{runtime.http_port}/v1  "
            "(create a key: luma-ray keys create --tenant NAME --tier TIER)",
            flush=True,
        )


def _up_detached(runtime: RuntimeConfig) -> int:
    """Put luma_ray on the cluster running here, or on a Ray head started for it; record
    which, so ``down`` stops what this started and nothing else."""
    environ = dict(os.environ)
    data_dir = Path(runtime.data_dir)
    path = record_path(data_dir)
    record = load_record(path)
    # Before Ray is imported: `ray start` and this driver both read the token.
    token = ensure_auth_token(environ, Path(environ.get("HOME") or Path.home()))
    if token.created:
        print(f"created a Ray auth token in {token.source} (private to you)", flush=True)
    import ray

    from luma_ray import launch
    from luma_ray.runtime.handle import NAMESPACE

    head = None
    address = join(environ, record, scan=False)
    if address is None:
        _refuse_a_second_head(record)  # one that runs but does not answer
        head = start_head(environ, os.cpu_count() or 1, data_dir / "ray-head.log")
        address = head.address
        print(f"started a Ray head (pid {head.pid}) at {address}", flush=True)
    try:
        if head is not None:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING)
        session = ray.get_runtime_context().get_session_name()
        if head is not None:
            record = UpRecord(address, session, head_pid=head.pid, temp_dir=str(head.temp_dir))
        elif record is None or record.session != session:
            _refuse_a_second_head(record)
            record = UpRecord(address, session)
            print(
                f"joined the Ray cluster at {address}; luma-ray down leaves it running", flush=True
            )
        elif record.started_ray:
            print(
                f"updating luma_ray on the Ray head up started (pid {record.head_pid})", flush=True
            )
        save_record(path, record)
        launch.start(runtime)
    except BaseException:
        if head is not None:  # leave nothing half-started behind
            ray.shutdown()
            stop_head(head.pid, head.temp_dir, head.address)
            forget_record(path)
        raise
    save_record(path, record.with_apps(luma_apps(runtime)))
    _print_up(runtime)
    print("detached; stop it with: luma-ray down", flush=True)
    return 0


def _refuse_a_second_head(record: UpRecord | None) -> None:
    """Refuse a second cluster while the head ``up`` started still runs: recording the new one
    would lose the only note of that head."""
    if record is None or record.head_pid is None or record.temp_dir is None:
        return
    if is_head(record.head_pid, Path(record.temp_dir)):
        raise Conflict(
            f"luma-ray up started a Ray head (pid {record.head_pid}) at {record.address} "
            "that still runs; stop it first (luma-ray down) or use another --data-dir"
        )


def cmd_down(args: argparse.Namespace) -> int:
    """Remove luma_ray's Serve apps and scheduler; stop Ray if ``up`` started it (or if
    ``--stop-ray``)."""
    import ray

    environ = dict(os.environ)
    path = record_path(data_dir_of(args))
    record = load_record(path)
    default_apps = luma_apps(RuntimeConfig(data_dir=".")) if record is None else []
    plan = plan_down(record, args.stop_ray, default_apps)
    address = join(environ, record, scan=record is None)
    said: list[str] = []
    if address is not None:
        session = ray.get_runtime_context().get_session_name()
        if record is not None and session != record.session:
            ray.shutdown()
            forget_record(path)
            print(
                f"the Ray cluster luma-ray up started is gone: {address} now runs another one "
                f"(session {session}), left alone; removed the record {path}"
            )
            return 0
        apps, scheduler = _remove_luma(plan.apps, everything=plan.stop_head)
        ray.shutdown()
        parts = [f"Serve apps {', '.join(apps)}"] if apps else []
        parts += ["the scheduler"] if scheduler else []
        said.append(
            f"removed luma_ray ({' and '.join(parts)}) from the Ray cluster at {address}"
            if parts
            else f"no luma_ray apps or scheduler ran on the Ray cluster at {address}"
        )
    elif record is None:
        said.append("luma_ray is not running here (no Ray cluster found)")
    if record is not None and record.head_pid is not None and record.temp_dir is not None:
        if stop_head(record.head_pid, Path(record.temp_dir), record.address):
            said.append(f"stopped the Ray cluster luma-ray up started (pid {record.head_pid})")
        else:
            said.append(
                f"the Ray cluster luma-ray up started (pid {record.head_pid}) is not running"
            )
    elif plan.ray_stop:
        stopped = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "stop"], capture_output=True, text=True
        )
        said.append("ran ray stop: " + (stopped.stdout.strip().splitlines() or ["done"])[-1])
    elif address is not None:
        said.append("Ray keeps running: luma-ray up did not start it (--stop-ray stops it)")
    elif record is not None:
        said.append(f"the Ray cluster at {record.address} that luma-ray up joined is gone")
    forget_record(path)
    print("; ".join(said))
    return 0


def _remove_luma(apps: tuple[str, ...], everything: bool) -> tuple[list[str], bool]:
    """Delete luma_ray's Serve apps (with ``everything``: shut Serve down, the cluster is
    luma_ray's), then the scheduler actor; what was there."""
    import ray
    from ray import serve

    from luma_ray.runtime.handle import scheduler_actor

    running = serve.status().applications
    removed = [name for name in running if everything or name in apps]
    if everything:
        serve.shutdown()  # type: ignore[no-untyped-call]
    for name in removed if not everything else []:
        serve.delete(name)
    try:
        ray.kill(scheduler_actor(), no_restart=True)
    except ValueError:
        return removed, False
    return removed, True


def cmd_status(args: argparse.Namespace) -> int:
    from luma_ray.runtime.handle import get_scheduler
    from luma_ray.scheduler.protocol import Stats

    if join(dict(os.environ), load_record(record_path(data_dir_of(args)))) is None:
        print("luma_ray is not running (start it with: luma-ray up --detach)")
        return 1
    try:
        stats = get_scheduler(restart_wait_s=30.0).call(Stats())
    except ValueError:
        print("a Ray cluster runs here, but no luma_ray scheduler")
        return 1
    from ray import serve

    pools = {name: app.status for name, app in serve.status().applications.items()}
    print(json.dumps({"scheduler": stats, "pools": pools}, indent=2, default=str))
    return 0


def _generate_over_http(args: argparse.Namespace) -> int:
    """``generate --tier-key KEY``: through the HTTP API, as the key's tenant and tier."""
    import httpx

    try:
        return _generate_with(args, args.url or DEFAULT_URL)
    except httpx.TransportError as err:
        raise Unavailable(
            f"cannot reach {args.url or DEFAULT_URL}: {_reason(err)}; is `luma-ray up` running?"
        ) from None


def _reason(err: Exception) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    text = str(err).rpartition("] ")[2].strip() or type(err).__name__
    return text[0].lower() + text[1:]


def _generate_with(args: argparse.Namespace, url: str) -> int:
    from luma_ray.client.http import LumaClient

    with LumaClient(url, args.tier_key, timeout_s=60.0) as client:
        gen = client.create(
            args.prompt,
            frames=args.frames,
            size=args.size,
            seed=args.seed,
            steps=args.steps,
            **_inputs_of(args),
        )
        print(f"submitted {gen.id} ({gen.tier} tier)", flush=True)
        final = client.wait(gen.id, timeout_s=args.timeout)
        if final.state != "succeeded":
            message = final.error.message if final.error else ""
            print(f"job {gen.id} {final.state}: {message}", file=sys.stderr)
            return 1
        out = client.download(gen.id, Path(args.out))
    print(f"video: {out.resolve()}")
    return 0


def _inputs_of(args: argparse.Namespace) -> dict[str, Any]:
    """The image and video inputs given on the command line."""
    names = ("first_frame", "last_frame", "source_video", "strength", "extend")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def cmd_generate(args: argparse.Namespace) -> int:
    if args.tier_key:  # over HTTP: needs only the client extra, never Ray
        return _generate_over_http(args)
    if _inputs_of(args):
        raise InvalidRequest(
            "--first-frame, --last-frame, --source-video, --strength and --extend go through "
            "the HTTP API: add --tier-key KEY (luma-ray keys create --tenant NAME --tier TIER)"
        )
    if args.url:
        raise InvalidRequest(
            "--url needs --tier-key KEY (the HTTP API takes an API key: luma-ray keys create "
            "--tenant NAME --tier TIER); without them generate goes through Ray"
        )
    import ray

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # keep the quickstart readable

    from luma_ray.client import connect

    joined = join(dict(os.environ), load_record(record_path(data_dir_of(args)))) is not None
    client = connect(runtime=runtime_of(args, http=False), tenant=args.tenant, quiet=True)
    try:
        job_id = client.submit(
            args.prompt,
            tier=args.tier,
            frames=args.frames,
            size=args.size,
            seed=args.seed,
            steps=args.steps,
        )
        print(f"submitted {job_id}", flush=True)
        view = client.wait(job_id, timeout=args.timeout, progress=sys.stderr.isatty())
        if view.state != "succeeded":
            message = view.error.message if view.error else ""
            print(f"job {job_id} {view.state.value}: {message}", file=sys.stderr)
            return 1
        out = client.download(job_id, Path(args.out))
        print(f"video: {out.resolve()}")
        return 0
    finally:
        if not joined:
            from ray import serve

            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()


def add_commands(sub: Any) -> None:
    """Register the serving subcommands on the ``luma-ray`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="state folder (default: $LUMA_RAY_HOME or ~/.local/share/luma_ray)"
    )
    common.add_argument(
        "--journal",
        help="the scheduler's SQLite journal file (default: <data dir>/journal.sqlite); put it "
        "on durable storage that survives the head node (docs/deploy.md)",
    )
    common.add_argument("--config", help="scheduler config YAML (tiers, policy, limits)")
    common.add_argument("--store", help="result store URI (file:///... or s3://bucket/prefix)")
    common.add_argument("--replicas", type=int, default=1, help="luma-tiny worker replicas")
    common.add_argument(
        "--pools", help="worker pools YAML (model, replicas, accelerators, node_labels, ...)"
    )

    deployed = deployment_parser()  # what `up` runs; `serve-config` writes it down
    up = sub.add_parser("up", parents=[common, deployed], help="start a local cluster and serve")
    up.add_argument("--detach", action="store_true", help="return once ready, leave running")
    up.set_defaults(func=cmd_up)
    add_serve_config_command(sub, [common, deployed])
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="state folder, as given to 'up'")
    down = sub.add_parser(
        "down",
        parents=[data_dir],
        help="remove luma_ray; stop Ray if 'up --detach' started it",
    )
    down.add_argument(
        "--stop-ray",
        action="store_true",
        help="also stop Ray when 'up' did not start it (runs 'ray stop': every Ray process "
        "on this machine)",
    )
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", parents=[data_dir], help="queues, states and worker pools")
    status.set_defaults(func=cmd_status)
    gen = sub.add_parser("generate", parents=[common], help="make one video from a prompt")
    gen.add_argument("prompt")
    gen.add_argument("-o", "--out", default="luma-video.mp4", help="where to save the MP4")
    gen.add_argument("--tier-key", help="API key: go through the HTTP API as its tenant/tier")
    gen.add_argument("--url", help=f"HTTP API base URL, with --tier-key (default {DEFAULT_URL})")
    gen.add_argument("--tier", default="api")
    gen.add_argument("--tenant", default="default")
    gen.add_argument(
        "--frames", type=int, default=None, help="frame count (default: the model's; luma-tiny: 8)"
    )
    gen.add_argument("--size", default="64x64", help="WIDTHxHEIGHT, multiples of 8")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--timeout", type=float, default=600.0)
    media = "a local file (uploaded), a file id, or an http(s) URL; needs --tier-key"
    gen.add_argument("--first-frame", help=f"image the video starts on: {media}")
    gen.add_argument("--last-frame", help=f"image the video ends on: {media}")
    gen.add_argument("--source-video", help=f"video to transform (with --strength): {media}")
    gen.add_argument("--strength", type=float, help="with --source-video: 0 keeps it, 1 ignores")
    gen.add_argument("--extend", help="id of a succeeded generation to continue; needs --tier-key")
    gen.set_defaults(func=cmd_generate)
