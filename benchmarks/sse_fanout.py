"""1,000 open event streams on ONE ingress app: scheduler calls/s, pushed vs per-stream polling.

The FastAPI app runs in process and is driven through ASGI (no sockets: each stream is one
``GET /v1/generations/{id}/events`` request whose body frames sse-starlette writes), over the
in-process scheduler port (``InProcessScheduler`` around a real ``SchedulerService`` and
SQLite journal) behind a counting port of our own: what the ingress asks the scheduler. Fake
workers (asyncio tasks on the same loop) drive the jobs with ``Pull``, ``Heartbeat`` per step
and ``Complete`` straight on the service, as workers do on the actor. The service's own
per-op counter (``CallCounts``) is read too.

The baseline, the design before (each stream sent ``GetJob`` every ``sse_poll_s``), is
computed for the same streams and time: streams / sse_poll_s calls a second.

Checks: every stream got every event of its job in order (states queued, leased, running,
succeeded; every step 1..S; then ``done``), with increasing ids.

    python benchmarks/sse_fanout.py [--streams 1000] [--jobs 200] [--workers 50] [--steps 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from luma_ray.api.app import ApiSettings, create_app  # noqa: E402
from luma_ray.api.keys import KeyStore  # noqa: E402
from luma_ray.config import IngressLimits, default_tiers, parse_config  # noqa: E402
from luma_ray.models.interface import ModelLimits  # noqa: E402
from luma_ray.scheduler.journal import Journal  # noqa: E402
from luma_ray.scheduler.protocol import (  # noqa: E402
    CallCounts,
    Complete,
    Heartbeat,
    InProcessScheduler,
    Op,
    Pull,
    SubmitMany,
    SubmitRequest,
)
from luma_ray.scheduler.service import SchedulerService  # noqa: E402
from luma_ray.storage import LocalBlobStore  # noqa: E402

STREAM_OPS = ("EventFeed", "WatchJob", "GetJob")
LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


class CountingPort:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, Counter[str]()

    async def call(self, op: Op[Any]) -> Any:
        self.calls[type(op).__name__] += 1
        return await self.inner.call(op)


class Stream:
    """One event stream over ASGI; keeps ``(arrival, id, event, data)`` of each event."""

    def __init__(self, app: Any, job_id: str, key: str) -> None:
        self.job_id, self.status, self.events = job_id, 0, []
        self.comments = 0
        self._asked = False
        self._left = asyncio.Event()
        path = f"/v1/generations/{job_id}/events"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
        }
        self.opened = asyncio.Event()
        self.task = asyncio.ensure_future(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        now = time.monotonic()
        text = message.get("body", b"").decode().replace("\r\n", "\n")
        for block in text.split("\n\n"):
            lines = [line for line in block.split("\n") if line]
            self.comments += sum(line.startswith(":") for line in lines)
            fields = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
            if "event" in fields:
                data = json.loads(fields["data"])
                self.events.append((now, int(fields["id"]), fields["event"], data))
                self.opened.set()


def expected(steps: int) -> list[tuple[str, object]]:
    return [
        ("state", "queued"),
        ("state", "leased"),
        ("state", "running"),
        *[("progress", s) for s in range(1, steps + 1)],
        ("state", "succeeded"),
        ("progress", steps),
        ("done", "succeeded"),
    ]


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    svc = SchedulerService(parse_config({}), Journal(root / "j.sqlite"), LIMITS, time.time)
    keys = KeyStore(root / "keys.sqlite", [t.name for t in default_tiers()])
    port = CountingPort(InProcessScheduler(svc))
    limits = IngressLimits(max_streams_per_tenant=None, key_rate_per_s=None)
    settings = ApiSettings(limits=limits)
    app = create_app(port, keys, LocalBlobStore(root / "results"), settings)
    key, _ = keys.create("bench", "api", now_s=0)
    requests = tuple(
        SubmitRequest(prompt=f"p{i}", tenant="bench", tier="api", steps=args.steps)
        for i in range(args.jobs)
    )
    jobs = [v.id for v in svc.call(SubmitMany(requests))]  # type: ignore[union-attr]
    published: dict[tuple[str, int], float] = {}

    opened_at = time.monotonic()
    streams = [Stream(app, jobs[i % len(jobs)], key) for i in range(args.streams)]
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 300)
    open_s = time.monotonic() - opened_at
    port_before, svc_before = Counter(port.calls), Counter(svc.call_counts())

    async def worker(name: str) -> None:
        while True:
            lease = svc.call(Pull(name, "local", ("luma-tiny",)))
            if lease is None:
                return
            for step in range(1, args.steps + 1):
                await asyncio.sleep(args.step_s)  # the model's step
                svc.call(Heartbeat(lease.job_id, lease.token, step, args.steps))
                published[(lease.job_id, step)] = time.monotonic()
            svc.call(Complete(lease.job_id, lease.token, {"video": "file:///v.mp4"}))

    started = time.monotonic()
    await asyncio.gather(*(worker(f"w{i}") for i in range(args.workers)))
    await asyncio.wait_for(asyncio.gather(*(s.task for s in streams)), 120)
    run_s = time.monotonic() - started
    svc.call(CallCounts())
    ingress = port.calls - port_before
    service = Counter(svc.call_counts()) - svc_before
    worker_ops = sum(service[k] for k in ("Pull", "Heartbeat", "Complete"))
    want = expected(args.steps)
    complete = in_order = 0
    delays = []
    for s in streams:
        shown = [(e, d.get("step") if e == "progress" else d["state"]) for _, _, e, d in s.events]
        complete += shown == want
        ids = [i for _, i, _, _ in s.events]
        in_order += ids == sorted(ids) and all(d["id"] == s.job_id for _, _, _, d in s.events)
        for at, _, e, d in s.events:
            if e == "progress" and (s.job_id, d["step"]) in published and d["step"] > 0:
                delays.append(at - published.pop((s.job_id, d["step"]), at) or 0.0)
    feed_calls = ingress["EventFeed"] + ingress["GetJob"]
    return {
        "streams": args.streams,
        "jobs": args.jobs,
        "open_s": open_s,
        "opens": port_before["WatchJob"],
        "run_s": run_s,
        "ingress_calls": dict(ingress),
        "ingress_per_s": feed_calls / run_s,
        "service_calls": dict(service),
        "service_streams_per_s": sum(service[k] for k in STREAM_OPS) / run_s,
        "worker_ops": worker_ops,
        "polling_per_s": args.streams / settings.sse_poll_s,
        "complete": complete,
        "in_order": in_order,
        "keepalives": sum(s.comments for s in streams),
        "delay_p50_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "delay_p99_ms": 1000 * sorted(delays)[int(0.99 * (len(delays) - 1))] if delays else 0,
        "events": len(svc.feed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step-s", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="luma-sse-") as tmp:
        r = asyncio.run(run(args, Path(tmp)))
    print(f"# sse_fanout on {platform.node()} ({os.cpu_count()} CPUs), in-process scheduler")
    print(f"{r['streams']} streams on {r['jobs']} jobs; {args.workers} workers, {args.steps} steps")
    print(f"of {args.step_s} s; opened in {r['open_s']:.1f} s ({r['opens']} WatchJob calls)")
    print()
    print("| design | scheduler calls while jobs ran | calls/s |")
    print("|---|---|---|")
    print(
        f"| pushed (one subscriber) | {r['ingress_calls']} in {r['run_s']:.1f} s "
        f"| {r['ingress_per_s']:.2f} |"
    )
    print(
        f"| per-stream polling (computed: {r['streams']} / sse_poll_s) | GetJob "
        f"| {r['polling_per_s']:.0f} |"
    )
    print()
    print(f"scheduler's own counter (CallCounts), while jobs ran: {r['service_calls']}")
    print(f"  for the streams (EventFeed, WatchJob, GetJob): {r['service_streams_per_s']:.2f}/s")
    print(f"streams with every event of their job in order: {r['complete']}/{r['streams']}")
    print(f"streams with increasing ids, own job only: {r['in_order']}/{r['streams']}")
    print(
        f"step to stream delay: p50 {r['delay_p50_ms']:.0f} ms, p99 {r['delay_p99_ms']:.0f} ms; "
        f"keep-alive comments {r['keepalives']}; events in buffer {r['events']}"
    )
    ok = r["ingress_per_s"] <= 5 and r["complete"] == r["in_order"] == r["streams"]
    print(f"verdict: {'PASS' if ok else 'FAIL'} (target: <= 5 calls/s, every event everywhere)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
