"""Per-job overhead on an idle system: submit to result available, minus the model's compute.

Starts a local cluster with the scheduler, the HTTP API and one luma-tiny replica (generation
alone, no pipeline), creates an api tier key, and runs ``--jobs`` jobs one after another with
the project's own client (``LumaClient``: ``create``, then ``wait``, which follows the job's
server-sent events until ``done``, when the video's URL is there). The replica's own clock says
how long the model computed each job (``busy_s`` less the time its step callbacks took, the
heartbeats, before and after, one job at a time), so the
overhead of a job is its latency at the client minus that, measured on the same job in the
same run. The job's timings split the overhead: queue wait (accepted to leased), and the rest
after the model (encode, upload, commit, the event reaching the client).

    python benchmarks/job_overhead.py [--jobs 30] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from _cluster import local_ray

from luma_ray.workers.tcp_ports import free_port


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--target-ms", type=float, default=100.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}; {args.jobs} jobs "
        f"of 8 frames 64x64, {args.steps} steps, one at a time, one luma-tiny replica"
    )
    with local_ray() as root:
        from ray import serve

        from luma_ray import launch
        from luma_ray.api.keys import KeyStore, keys_path
        from luma_ray.client import LumaClient
        from luma_ray.config import IngressLimits, PoolConfig, RuntimeConfig

        port = free_port()
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            pools=[PoolConfig(replicas=1, num_cpus=1, torch_threads=1)],
            http_port=port,
            ingress=IngressLimits(key_rate_per_s=None),
            pipelines={},
        )
        launch.start(runtime)
        with KeyStore(keys_path(runtime.data_dir), ["api"]) as ks:
            key, _ = ks.create("overhead", "api", now_s=0)
        replica = serve.get_deployment_handle("luma-tiny-workers", app_name="luma-tiny-workers")

        def busy_s() -> tuple[float, float]:
            """The model's own compute so far (generating, less the step callbacks), and the
            step callbacks' time (the heartbeats the model waited for)."""
            stats = replica.stats.remote().result(timeout_s=60)
            return stats["busy_s"] - stats["step_calls_s"], stats["step_calls_s"]

        rows = []
        with LumaClient(f"http://127.0.0.1:{port}", key) as client:
            for i in range(args.warmup + args.jobs):
                before = busy_s()
                began, began_epoch = time.perf_counter(), time.time()
                created = client.create(
                    f"a red circle moving right {i}", frames=8, steps=args.steps, seed=i
                )
                done = client.wait(created.id, timeout_s=300)
                latency, ended_epoch = time.perf_counter() - began, time.time()
                after = busy_s()
                compute, beats = after[0] - before[0], after[1] - before[1]
                assert done.state == "succeeded", done
                t = done.raw["timings"]
                step = compute / args.steps  # the job is "running" from its first step
                if i >= args.warmup:
                    rows.append(
                        {
                            "latency": latency,
                            "compute": compute,
                            "overhead": latency - compute,
                            "submit": t["created_at"] - began_epoch,
                            "to first step": t["started_at"] - t["created_at"] - step,
                            "heartbeats": beats,
                            "after the model": t["finished_at"]
                            - t["started_at"]
                            - (compute + beats)
                            + step,
                            "to the client": ended_epoch - t["finished_at"],
                        }
                    )
    print(f"{'p50 / p90 / max (ms)':<22}" + "".join(f"{k:>18}" for k in rows[0]))
    for name, q in (("p50", 0.5), ("p90", 0.9), ("max", 1.0)):
        cells = "".join(f"{quantile([r[k] for r in rows], q) * 1000:>18.0f}" for k in rows[0])
        print(f"{name:<22}{cells}")
    print(
        "submit: the client's create until the job was accepted; to first step: accepted until "
        "the worker reported step 1, less one step of compute (lease, input, model start); "
        "heartbeats: the model waiting for its step callbacks (one heartbeat per step); after "
        "the model: its last step until the result was committed (encode, upload, commit); to "
        "the client: committed until `wait` returned (the done event)"
    )
    p50 = statistics.median(r["overhead"] for r in rows) * 1000
    verdict = "PASS" if p50 <= args.target_ms else "FAIL"
    print(f"overhead p50 {p50:.0f} ms against the {args.target_ms:.0f} ms target: {verdict}")


if __name__ == "__main__":
    main()
