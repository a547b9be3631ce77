"""HTTP reads of finished jobs through Serve: from the journal's file against through the
scheduler actor, in the same run.

Starts a local cluster with the scheduler and two copies of the HTTP API behind the same Serve
proxy: the default one, which reads finished jobs from the journal's file
(``api/finished_reads.py``), and one with ``ingress_journal_reads`` off, which asks the
scheduler actor for every read (under ``/actor``), plus a no-op GET endpoint (the floor of any
Serve route). A driver leases and completes ``--jobs`` jobs as a worker would, so they are
finished with results; then each target is driven with GETs of those jobs by 1, 8 and 64
concurrent clients (httpx, asyncio), the order turning every round, and the script reports
requests/s, p50 and p99 latency, and the ratio file/actor.

    cd benchmarks && python http_reads.py [--requests 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from collections.abc import Awaitable

import httpx
from _cluster import local_ray
from _http_load import Send, drive, interleaved, serve_app

from luma_ray.workers.tcp_ports import free_port


def get(urls: list[str], headers: dict[str, str]) -> Send:
    """GETs turning through ``urls``."""

    def send(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return http.get(urls[i % len(urls)], headers=headers)

    return send


def finished_jobs(base: str, headers: dict[str, str], count: int) -> list[str]:
    """Submit ``count`` jobs over HTTP, then lease and complete each as a worker would."""
    from luma_ray.runtime.handle import get_scheduler
    from luma_ray.scheduler.protocol import Complete, Pull

    with httpx.Client(timeout=60) as http:
        ids = []
        for i in range(count):
            r = http.post(f"{base}/v1/generations", json={"prompt": f"bench {i}"}, headers=headers)
            assert r.status_code == 201, r.text[:200]
            ids.append(r.json()["id"])
    scheduler = get_scheduler()
    for _ in ids:
        lease = scheduler.call(Pull("bench-worker", "local", ("luma-tiny",), 5.0))
        assert lease is not None, "a submitted job was not leased"
        prefix = f"file:///results/{lease.job_id}"
        results = {"video": f"{prefix}/video.mp4", "thumbnail": f"{prefix}/thumb.png"}
        scheduler.call(Complete(lease.job_id, lease.token, results))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.requests} GETs per point over {args.jobs} "
        "finished jobs"
    )
    with local_ray() as root:
        from fastapi import FastAPI
        from ray import serve

        from luma_ray import launch
        from luma_ray.api.ingress import api_application
        from luma_ray.api.keys import KeyStore, keys_path
        from luma_ray.config import IngressLimits, RuntimeConfig, SchedulerConfig

        port = free_port()
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            pools=[],
            pipelines={},
            http_port=port,
            scheduler=SchedulerConfig(),
            ingress=IngressLimits(key_rate_per_s=None),  # one key at full speed: no rate limit
        )
        launch.start(runtime)
        asking = runtime.model_copy(update={"ingress_journal_reads": False})
        serve.run(api_application(asking), name="api-asking", route_prefix="/actor")
        noop = FastAPI()

        @noop.get("/{job}")
        async def answer(job: str) -> dict:
            return {"id": job}

        serve_app(noop, "noop")
        with KeyStore(keys_path(runtime.data_dir), ["api"]) as ks:
            key, _ = ks.create("bench", "api", now_s=0)
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        ids = finished_jobs(base, headers, args.jobs)
        urls = {
            "file": [f"{base}/v1/generations/{j}" for j in ids],
            "actor": [f"{base}/actor/v1/generations/{j}" for j in ids],
            "noop": [f"{base}/noop/{j}" for j in ids],
        }
        auth = {"file": headers, "actor": headers, "noop": {}}
        same = {name: httpx.get(u[0], headers=auth[name]).json() for name, u in urls.items()}
        for view in (same["file"], same["actor"]):
            view.pop("assets", None)  # signed URLs under each API's own prefix
        assert same["file"] == same["actor"], "the two APIs answer differently"
        assert same["file"]["state"] == "succeeded"
        targets = {name: get(u, auth[name]) for name, u in urls.items()}
        print(
            f"{'clients':>7}  {'file req/s':>10} {'p50 ms':>7} {'p99 ms':>7}   "
            f"{'actor req/s':>11} {'p50 ms':>7} {'p99 ms':>7}   {'no-op req/s':>11} "
            f"{'p50 ms':>7}   {'file/actor':>10} {'file/no-op':>10}"
        )
        for clients in (1, 8, 64):
            for send in targets.values():  # warm up
                asyncio.run(drive(send, 40, clients))
            got = interleaved(targets, args.requests, clients, rounds=6)
            f, a, nop = got["file"], got["actor"], got["noop"]
            print(
                f"{clients:>7}  {f['rps']:>10.0f} {f['p50_ms']:>7.1f} {f['p99_ms']:>7.1f}"
                f"   {a['rps']:>11.0f} {a['p50_ms']:>7.1f} {a['p99_ms']:>7.1f}"
                f"   {nop['rps']:>11.0f} {nop['p50_ms']:>7.1f}"
                f"   {f['rps'] / a['rps']:>10.2f} {f['rps'] / nop['rps']:>10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
