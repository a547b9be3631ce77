"""HTTP load for the benchmarks: ``clients`` concurrent httpx clients sending ``n`` requests,
and several targets driven in slices whose order turns every round (so a slow spell of this
shared machine hits every target alike)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
"""Sends request number ``i`` on the client given."""


async def drive(send: Send, n: int, clients: int) -> tuple[list[float], float]:
    """``n`` requests from ``clients`` concurrent clients: (latencies in s, elapsed s). Every
    answer must be a success (2xx)."""
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
            r = await send(http, i)
            latencies.append(time.perf_counter() - started)
            assert r.is_success, r.text[:200]

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed


def interleaved(
    targets: dict[str, Send], n: int, clients: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Each target driven ``n`` times in ``rounds`` slices, the order turning every round;
    requests/s, p50 and p99 latency (ms) per target."""
    names = list(targets)
    runs: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            lat, elapsed = asyncio.run(drive(targets[name], n // rounds, clients))
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


def serve_app(app: Any, name: str) -> None:
    """Deploy the FastAPI ``app`` on Serve as application ``name`` under ``/<name>`` (one
    replica, no CPUs reserved, up to 256 requests at once, like the API's)."""
    from ray import serve

    ingress = serve.ingress(app)(type(name.title(), (), {}))
    options = {"num_cpus": 0}
    deployment = serve.deployment(ingress, name=name, ray_actor_options=options)
    serve.run(
        deployment.options(max_ongoing_requests=256).bind(), name=name, route_prefix=f"/{name}"
    )
