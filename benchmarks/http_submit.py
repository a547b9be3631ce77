"""HTTP submit throughput and latency through Serve, against a no-op Serve endpoint.

Starts a local cluster with the scheduler and the HTTP API (no workers: jobs only queue), plus
a no-op FastAPI deployment behind the same Serve proxy. Drives both with 1, 8 and 64 concurrent
clients (httpx, asyncio) in the same run and reports requests/s, p50 and p99 latency, and the
ratio of the API to the no-op.

    cd benchmarks && python http_submit.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time

import httpx
from _cluster import local_ray

from luma_ray.workers.tcp_ports import free_port


async def drive(url: str, headers: dict[str, str], body: dict, n: int, clients: int):
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            r = await http.post(
                url, json={**body, "prompt": f"{body.get('prompt', '')} {i}"}, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            assert r.status_code in (200, 201), r.text[:200]

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": n / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.requests} requests per point"
    )
    with local_ray() as root:
        from fastapi import FastAPI
        from ray import serve

        from luma_ray import launch
        from luma_ray.api.keys import KeyStore, keys_path
        from luma_ray.config import IngressLimits, RuntimeConfig, SchedulerConfig

        port = free_port()
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            pools=[],
            http_port=port,
            scheduler=SchedulerConfig(),
            ingress=IngressLimits(key_rate_per_s=None),  # one key at full speed: no rate limit
        )
        launch.start(runtime)
        noop = FastAPI()

        @noop.post("/")
        async def accept(body: dict) -> dict:
            return {"ok": True}

        @serve.deployment(name="noop", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
        @serve.ingress(noop)
        class Noop:
            pass

        serve.run(Noop.bind(), name="noop", route_prefix="/noop")
        with KeyStore(keys_path(runtime.data_dir), ["api"]) as ks:
            key, _ = ks.create("bench", "api", now_s=0)
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        body = {"prompt": "bench", "steps": 1}
        print(
            f"{'clients':>7}  {'API req/s':>9} {'p50 ms':>7} {'p99 ms':>7}   "
            f"{'no-op req/s':>11} {'p50 ms':>7} {'p99 ms':>7}   {'API/no-op req/s':>15}"
        )
        for clients in (1, 8, 64):
            asyncio.run(drive(f"{base}/noop/", {}, body, 50, clients))  # warm up
            api = asyncio.run(
                drive(f"{base}/v1/generations", headers, body, args.requests, clients)
            )
            nop = asyncio.run(drive(f"{base}/noop/", {}, body, args.requests, clients))
            print(
                f"{clients:>7}  {api['rps']:>9.0f} {api['p50_ms']:>7.1f} {api['p99_ms']:>7.1f}"
                f"   {nop['rps']:>11.0f} {nop['p50_ms']:>7.1f} {nop['p99_ms']:>7.1f}"
                f"   {api['rps'] / nop['rps']:>15.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
