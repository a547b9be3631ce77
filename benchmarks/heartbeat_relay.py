"""Heartbeats through the node's relay against straight to the scheduler, in the same run.

Starts a local cluster with the scheduler (no pools), submits and leases ``--workers`` jobs
from the driver (one lease per simulated worker), then runs that many worker threads that
heartbeat their own lease: straight to the scheduler actor (``Heartbeat``, what a replica does
by default), or through this node's relay (``workers/beat_relay.py``: ``heartbeat_relay: true``
on a pool), which sends the beats that arrive together as one ``Heartbeats`` call. Two loads:
each worker beating as fast as it can (how many beats the scheduler absorbs), and each beating
every ``--period`` seconds (a steady fleet: latency of a beat). The two ways alternate, order
turning. Reported: beats/s, a beat's p50/p99 latency, and scheduler calls per beat (the
scheduler's own ``CallCounts``).

    cd benchmarks && python heartbeat_relay.py [--workers 64] [--seconds 8] [--period 0.25]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from typing import Any

from _cluster import local_ray


def beat_for(
    port: Any, leases: list[Any], seconds: float, period: float | None
) -> tuple[int, list[float]]:
    """One thread per lease beating through ``port()`` for ``seconds`` (every ``period``
    seconds, or flat out when None): beats sent, and their latencies."""
    from luma_ray.scheduler.protocol import Heartbeat

    latencies: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def worker(lease: Any) -> None:
        own, mine, step = port(), [], 0
        while (now := time.perf_counter()) < end:
            step += 1
            own.call(Heartbeat(lease.job_id, lease.token, step % 50 + 1, 50))
            mine.append(time.perf_counter() - now)
            if period is not None:
                time.sleep(max(0.0, period - (time.perf_counter() - now)))  # the pace
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--period", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.workers} worker threads on one node, "
        f"{args.seconds:g} s a point, {args.rounds} rounds"
    )
    with local_ray() as root:
        from luma_ray import launch
        from luma_ray.config import RuntimeConfig
        from luma_ray.runtime.handle import SchedulerHandle, get_scheduler, scheduler_actor
        from luma_ray.scheduler.protocol import CallCounts, Pull, Submit, SubmitRequest
        from luma_ray.workers.beat_relay import RayRelay, RelayedBeats, node_relay

        runtime = RuntimeConfig(data_dir=str(root / "data"), pools=[], pipelines={}, http_host=None)
        launch.start(runtime)
        scheduler = get_scheduler()
        for i in range(args.workers):
            scheduler.call(Submit(SubmitRequest(prompt=f"beat {i}", tenant=f"t{i}", steps=50)))
        leases = [
            scheduler.call(Pull(f"bench-{i}", "local", ("luma-tiny",))) for i in range(args.workers)
        ]
        assert all(lease is not None for lease in leases), "a job was not leased"

        def direct() -> Any:
            return SchedulerHandle(scheduler_actor(), restart_wait_s=0.0, call_timeout_s=10.0)

        def relayed() -> Any:
            relay = RayRelay(wait_s=2.0, call_timeout_s=10.0)
            while not relay.ready():  # the node's relay is up before timing
                time.sleep(0.01)
            return RelayedBeats(direct(), relay)

        ways = {"direct": direct, "relay": relayed}
        node_relay(10.0)  # the node's relay, made before timing
        print(
            f"{'load':>14} {'way':>7} {'beats/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'scheduler calls/beat':>20}"
        )
        for load, period in (("flat out", None), (f"every {args.period:g} s", args.period)):
            got: dict[str, tuple[int, list[float], int, float]] = {w: (0, [], 0, 0.0) for w in ways}
            for r in range(args.rounds):
                for way in list(ways)[r % 2 :] + list(ways)[: r % 2]:
                    calls = sum(scheduler.call(CallCounts()).values())
                    started = time.perf_counter()
                    n, lat = beat_for(ways[way], leases, args.seconds, period)
                    spent = time.perf_counter() - started
                    made = sum(scheduler.call(CallCounts()).values()) - calls - 1
                    b, ls, c, s = got[way]
                    got[way] = (b + n, ls + lat, c + made, s + spent)
            for way, (beats, lat, made, spent) in got.items():
                lat.sort()
                p50, p99 = statistics.median(lat) * 1000, lat[int(0.99 * (len(lat) - 1))] * 1000
                print(
                    f"{load:>14} {way:>7} {beats / spent:>8.0f} {p50:>7.1f} {p99:>7.1f} "
                    f"{made / beats:>20.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
