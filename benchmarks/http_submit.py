"""HTTP submit throughput and latency through Serve, against a no-op Serve endpoint.

Starts a local cluster with the scheduler and the HTTP API (no workers: jobs only queue), plus
two FastAPI deployments behind the same Serve proxy: a no-op, and a *one-hop* endpoint that
makes one call to the scheduler actor (``Ping``, which writes nothing) and returns: the floor
of any ingress that asks the scheduler once per request. Drives the three with 1, 8 and 64
concurrent clients (httpx, asyncio) in the same run and reports requests/s, p50 and p99
latency, and the ratios of the API to the no-op and to the one-hop endpoint.

    cd benchmarks && python http_submit.py [--requests 600]
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


async def drive(
    url: str, headers: dict[str, str], body: dict, n: int, clients: int
) -> tuple[list[float], float]:
    """``n`` POSTs from ``clients`` concurrent clients: (latencies in s, elapsed s)."""
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
    return latencies, elapsed


def interleaved(
    targets: dict[str, tuple[str, dict[str, str]]], body: dict, n: int, clients: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Each target driven ``n`` times in ``rounds`` slices, the order turning every round (so
    a slow spell of this shared machine hits every target alike); requests/s, p50, p99."""
    names = list(targets)
    runs: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            url, headers = targets[name]
            lat, elapsed = asyncio.run(drive(url, headers, body, n // rounds, clients))
            runs[name] = (runs[name][0] + lat, runs[name][1] + elapsed)
    out = {}
    for name, (lat, elapsed) in runs.items():
        lat.sort()
        out[name] = {
            "rps": len(lat) / elapsed,
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
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
        hop = FastAPI()

        @serve.deployment(name="hop", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
        @serve.ingress(hop)
        class OneHop:
            def __init__(self) -> None:
                from luma_ray.runtime.handle import get_async_scheduler

                self.scheduler = get_async_scheduler()

            @hop.post("/")
            async def accept(self, body: dict) -> dict:
                from luma_ray.scheduler.protocol import Ping

                await self.scheduler.call(Ping())
                return {"ok": True}

        serve.run(OneHop.bind(), name="hop", route_prefix="/hop")
        with KeyStore(keys_path(runtime.data_dir), ["api"]) as ks:
            key, _ = ks.create("bench", "api", now_s=0)
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        body = {"prompt": "bench", "steps": 1}
        print(
            f"{'clients':>7}  {'API req/s':>9} {'p50 ms':>7} {'p99 ms':>7}   "
            f"{'one-hop req/s':>13} {'p50 ms':>7}   {'no-op req/s':>11} {'p50 ms':>7} "
            f"{'p99 ms':>7}   {'API/no-op':>9} {'API/one-hop':>11}"
        )
        targets = {
            "api": (f"{base}/v1/generations", headers),
            "hop": (f"{base}/hop/", {}),
            "noop": (f"{base}/noop/", {}),
        }
        for clients in (1, 8, 64):
            for url, _ in targets.values():  # warm up
                asyncio.run(drive(url, headers, body, 20, clients))
            got = interleaved(targets, body, args.requests, clients, rounds=6)
            api, one, nop = got["api"], got["hop"], got["noop"]
            print(
                f"{clients:>7}  {api['rps']:>9.0f} {api['p50_ms']:>7.1f} {api['p99_ms']:>7.1f}"
                f"   {one['rps']:>13.0f} {one['p50_ms']:>7.1f}"
                f"   {nop['rps']:>11.0f} {nop['p50_ms']:>7.1f} {nop['p99_ms']:>7.1f}"
                f"   {api['rps'] / nop['rps']:>9.2f} {api['rps'] / one['rps']:>11.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
