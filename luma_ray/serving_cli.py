"""``luma-ray up | down | status | generate``: run the system on this machine.

Entry-point code: it reads the environment once (data directory, Ray auth mode) and passes
values down. ``generate`` is the quickstart: it joins a running system or starts a local one,
makes one video, saves it and says where.
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

from luma_ray.config import (
    PoolConfig,
    RuntimeConfig,
    default_data_dir,
    load_config,
    load_pools,
)
from luma_ray.errors import LumaError


def _runtime(args: argparse.Namespace, http: bool = True) -> RuntimeConfig:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(dict(os.environ))
    scheduler = load_config(args.config) if getattr(args, "config", None) else None
    if getattr(args, "pools", None):
        pools = load_pools(args.pools)
    else:
        pools = [PoolConfig(replicas=getattr(args, "replicas", 1))]
    fields: dict[str, Any] = {"data_dir": str(data_dir), "pools": pools}
    if http:
        fields["http_host"] = getattr(args, "host", None) or "127.0.0.1"
        fields["http_port"] = getattr(args, "port", None) or 8000
    else:
        fields["http_host"] = None
    if scheduler is not None:
        fields["scheduler"] = scheduler
    if getattr(args, "store", None):
        fields["store_uri"] = args.store
    return RuntimeConfig(**fields)


def _join_running() -> bool:
    """Attach to a cluster started by ``luma-ray up --detach``; False if none runs."""
    import ray

    from luma_ray.runtime.handle import NAMESPACE

    try:
        ray.init(address="auto", namespace=NAMESPACE, logging_level="WARNING")
        return True
    except (ConnectionError, RuntimeError):
        return False


def cmd_up(args: argparse.Namespace) -> int:
    import ray

    from luma_ray import launch
    from luma_ray.runtime.handle import NAMESPACE

    runtime = _runtime(args)
    if args.detach:
        started = subprocess.run(
            [
                "ray",
                "start",
                "--head",
                "--disable-usage-stats",
                "--dashboard-host=127.0.0.1",
                f"--num-cpus={os.cpu_count() or 1}",
            ],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0 and "already" not in started.stderr + started.stdout:
            raise LumaError(f"ray start failed: {started.stderr.strip().splitlines()[-1:]}")
        ray.init(address="auto", namespace=NAMESPACE, logging_level="WARNING")
    else:
        ray.init(namespace=NAMESPACE, logging_level="WARNING")
    launch.start(runtime)
    print(f"luma_ray is up. journal: {runtime.journal}  results: {runtime.store}", flush=True)
    if runtime.http_host is not None:
        print(
            f"HTTP API: http://{runtime.http_host}:{runtime.http_port}/v1  "
            "(create a key: luma-ray keys create --tenant NAME --tier TIER)",
            flush=True,
        )
    if args.detach:
        print("detached; stop it with: luma-ray down")
        return 0
    print("serving until Ctrl-C", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = subprocess.run(["ray", "stop"], capture_output=True, text=True)
    print(stopped.stdout.strip() or "stopped")
    return 0 if stopped.returncode == 0 else 1


def cmd_status(args: argparse.Namespace) -> int:
    from luma_ray.runtime.handle import get_scheduler
    from luma_ray.scheduler.protocol import Stats

    if not _join_running():
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
    from luma_ray.client.http import LumaClient

    with LumaClient(args.url, args.tier_key, timeout_s=60.0) as client:
        gen = client.create(
            args.prompt, frames=args.frames, size=args.size, seed=args.seed, steps=args.steps
        )
        print(f"submitted {gen.id} ({gen.tier} tier)", flush=True)
        final = client.wait(gen.id, timeout_s=args.timeout)
        if final.state != "succeeded":
            message = (final.error or {}).get("message", "")
            print(f"job {gen.id} {final.state}: {message}", file=sys.stderr)
            return 1
        out = client.download(gen.id, Path(args.out))
    print(f"video: {out.resolve()}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import ray

    if args.tier_key:
        return _generate_over_http(args)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # keep the quickstart readable

    from luma_ray.client import connect

    joined = _join_running()
    client = connect(runtime=_runtime(args, http=False), tenant=args.tenant, quiet=True)
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
        if view["state"] != "succeeded":
            error = view.get("error") or {}
            print(f"job {job_id} {view['state']}: {error.get('message', '')}", file=sys.stderr)
            return 1
        out = client.download(job_id, Path(args.out))
        print(f"video: {out.resolve()}")
        return 0
    finally:
        if not joined:
            from ray import serve

            serve.shutdown()
            ray.shutdown()


def add_commands(sub: Any) -> None:
    """Register the serving subcommands on the ``luma-ray`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="state folder (default: $LUMA_RAY_HOME or ~/.local/share/luma_ray)"
    )
    common.add_argument("--config", help="scheduler config YAML (tiers, policy, limits)")
    common.add_argument("--store", help="result store URI (file:///... or s3://bucket/prefix)")
    common.add_argument("--replicas", type=int, default=1, help="luma-tiny worker replicas")
    common.add_argument(
        "--pools", help="worker pools YAML (model, replicas, accelerators, node_labels, ...)"
    )

    up = sub.add_parser("up", parents=[common], help="start a local cluster and serve")
    up.add_argument("--detach", action="store_true", help="return once ready, leave running")
    up.add_argument("--host", default="127.0.0.1", help="HTTP API address")
    up.add_argument("--port", type=int, default=8000, help="HTTP API port")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the cluster started by 'up --detach'")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="queues, states and worker pools")
    status.set_defaults(func=cmd_status)
    gen = sub.add_parser("generate", parents=[common], help="make one video from a prompt")
    gen.add_argument("prompt")
    gen.add_argument("-o", "--out", default="luma-video.mp4", help="where to save the MP4")
    gen.add_argument("--tier-key", help="API key: go through the HTTP API as its tenant/tier")
    gen.add_argument("--url", default="http://127.0.0.1:8000", help="HTTP API base URL")
    gen.add_argument("--tier", default="api")
    gen.add_argument("--tenant", default="default")
    gen.add_argument("--frames", type=int, default=16)
    gen.add_argument("--size", default="64x64", help="WIDTHxHEIGHT, multiples of 8")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--timeout", type=float, default=600.0)
    gen.set_defaults(func=cmd_generate)
