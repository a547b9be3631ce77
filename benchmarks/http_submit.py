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
from collections.abc import Awaitable

import httpx
from _cluster import local_ray
from _http_load import Send, drive, interleaved, serve_app

from luma_ray.workers.tcp_ports import free_port


def post(url: str, headers: dict[str, str], body: dict) -> Send:
    """POSTs of ``body`` to ``url``, each with its own prompt."""

    def send(http: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return http.post(
            url, json={**body, "prompt": f"{body.get('prompt', '')} {i}"}, headers=headers
        )

    return send


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

        serve_app(noop, "noop")
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
            "api": post(f"{base}/v1/generations", headers, body),
            "hop": post(f"{base}/hop/", {}, body),
            "noop": post(f"{base}/noop/", {}, body),
        }
        for clients in (1, 8, 64):
            for send in targets.values():  # warm up
                asyncio.run(drive(send, 20, clients))
            got = interleaved(targets, args.requests, clients, rounds=6)
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
