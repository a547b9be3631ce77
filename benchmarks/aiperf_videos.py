"""NVIDIA AIPerf against the live ``/v1/videos`` API, beside the pure model compute time.

Starts a local cluster with the scheduler, the HTTP API and a luma-tiny pool, creates an api
tier key, and runs ``aiperf profile --endpoint-type video_generation`` (submit, poll every
``--poll-s``, download the MP4) at each concurrency. In the same run, right after each
setup's cluster stopped, it times ``LumaTiny.generate`` in process on the same prompt, size,
steps (one torch thread, like a replica; the trained weights the pool serves), and the MP4
encode of its frames. Per concurrency it shows
the request latency p50/p99 from AIPerf's JSON export, the throughput (videos/s), the system
overhead per job (latency minus pure compute) and the throughput against what the replicas
can compute (as many generates side by side). It also reads the generator replicas' own clock
over each point (``stats``: seconds in the model, the step callbacks left out, per job
finished): the throughput against ``replicas / that`` says how much of the time the replicas
computed, under the load of the served run itself (on a CPU machine the model shares its cores
with the HTTP stack and AIPerf, so it computes slower there than in process).

AIPerf runs at the niceness of Ray's workers (15, ``--nice``): at 0 its polls would go ahead
of the replicas, the API and the scheduler on the cores they share, which a client on another
machine never does.

AIPerf has its own dependencies (pandas, huggingface_hub, rich ... pinned differently from
ours): install it into a separate virtual environment and pass its executable.

    python -m venv /tmp/aiperf-venv && /tmp/aiperf-venv/bin/pip install aiperf==0.13.0
    cd benchmarks && python aiperf_videos.py --aiperf /tmp/aiperf-venv/bin/aiperf \\
        --out ../docs/aiperf_videos.txt

AIPerf needs a tokenizer even for video: a 16-word WordLevel tokenizer is built here and put
in a private Hugging Face cache folder (``HF_HOME``) under a made-up repository name, and
AIPerf runs with ``HF_HUB_OFFLINE=1``: it never touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _cluster import local_ray

from luma_ray.models.reference.model import LIMITS
from luma_ray.workers.tcp_ports import free_port

TOKENIZER_REPO = "luma-bench/tiny-words"
PROMPT = "a red ball bouncing on green grass"
WORDS = (*PROMPT.split(" "), "blue", "sky", "over", "the", "sea", "at", "night")
# What a served /v1/videos job of 1 s gets: the model's default fps and steps (the OpenAI body
# has no steps field); server_times checks every served job against them.
FPS = LIMITS.default_fps
STEPS = LIMITS.default_steps


def tiny_tokenizer(hf_home: Path) -> None:
    """A WordLevel tokenizer in ``hf_home`` laid out as the Hub cache keeps a snapshot."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    commit = "0" * 40
    repo = hf_home / "hub" / ("models--" + TOKENIZER_REPO.replace("/", "--"))
    fast.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def pure_compute(root: Path, runs: int, replicas: int) -> tuple[list[float], list[float], float]:
    """Seconds of ``LumaTiny.generate`` and of the MP4 encode, ``runs`` times each, one at a
    time; then videos/s with ``replicas`` threads generating side by side (torch releases the
    GIL), what that many replicas can compute on this machine's cores."""
    import torch

    from luma_ray.jobs.request import GenerationRequest
    from luma_ray.models.encode import encode_mp4
    from luma_ray.models.reference.model import LumaTiny
    from luma_ray.models.reference.publish import SHIPPED_WEIGHTS

    torch.set_num_threads(1)
    model = LumaTiny()
    # The weights the pool serves (luma-tiny's trained version, published from these), not a
    # random network of the default shape, which is twice as wide and twice as slow.
    model.load(SHIPPED_WEIGHTS, torch.device("cpu"))

    def request(i: int) -> GenerationRequest:
        return GenerationRequest(
            prompt=PROMPT, frames=FPS, height=64, width=64, fps=FPS, seed=i, steps=STEPS
        )

    generate, encode = [], []
    for i in range(runs + 1):  # the first is a warm-up
        began = time.perf_counter()
        frames = model.generate(request(i), lambda step, total: True)
        made = time.perf_counter()
        encode_mp4(frames, FPS, root / f"clip{i}.mp4")
        done = time.perf_counter()
        if i:
            generate.append(made - began)
            encode.append(done - made)

    def replica(r: int) -> None:
        for i in range(runs):
            model.generate(request(r * runs + i), lambda step, total: True)

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(replicas)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return generate, encode, replicas * runs / (time.perf_counter() - began)


def run_aiperf(args, url: str, key: str, concurrency: int, root: Path) -> dict:
    """One ``aiperf profile`` run; its JSON export."""
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"text": f"{PROMPT} {i}"}) + "\n" for i in range(64)))
    out = root / f"aiperf-c{concurrency}"
    niced = ["nice", "-n", str(args.nice)] if args.nice else []
    command = [
        *niced, args.aiperf, "profile",
        "--url", url,
        "--model", "luma-tiny",
        "--endpoint-type", "video_generation",
        "--download-video-content",
        "--api-key", key,
        "--tokenizer", TOKENIZER_REPO,
        "--input-file", str(prompts),
        "--custom-dataset-type", "single_turn",
        "--extra-inputs", "size:64x64", "--extra-inputs", "seconds:1",
        "--concurrency", str(concurrency),
        "--request-count", str(args.requests * concurrency),
        "--warmup-request-count", str(concurrency),
        "--request-timeout-seconds", "300",
        "--workers-max", "2",
        "--record-processors", "1",
        "--ui-type", "none",
        "--artifact-dir", str(out),
    ]  # fmt: skip
    env = {
        **os.environ,
        "HF_HOME": str(root / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AIPERF_HTTP_VIDEO_POLL_INTERVAL": str(args.poll_s),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    exported = list(out.rglob("profile_export_aiperf.json"))
    if done.returncode != 0 or not exported:
        raise SystemExit(
            f"aiperf failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return json.loads(exported[0].read_text())


def metric(export: dict, name: str, stat: str) -> float:
    """A statistic of one metric in AIPerf's JSON export, in its own unit."""
    found = export.get(name) or export.get("records", {}).get(name)
    if found is None:
        raise KeyError(f"{name} not in the aiperf export: {sorted(export)}")
    return float(found[stat])


def server_times(url: str, key: str, skip: int) -> tuple[list[float], list[float]]:
    """Seconds from accepted to succeeded, and queue waits, of the key's jobs as the native API
    shows them (``timings``), leaving out the ``skip`` oldest (AIPerf's warm-up requests).
    Stops the run if a served job's size or steps differ from what ``pure_compute`` times."""
    import httpx

    listed = httpx.get(
        f"{url}/v1/generations",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ).json()["data"]
    timed = {"frames": FPS, "width": 64, "height": 64, "fps": FPS, "steps": STEPS}
    for g in listed:
        served = {k: g["request"][k] for k in timed}
        if served != timed:
            raise SystemExit(f"served job {g['id']} is {served}; the baseline times {timed}")
    jobs = sorted((g["timings"] for g in listed), key=lambda t: t["created_at"])[skip:]
    return (
        [t["finished_at"] - t["created_at"] for t in jobs if t["finished_at"]],
        [t["started_at"] - t["created_at"] for t in jobs if t["started_at"]],
    )


def replica_clocks(replicas: int) -> tuple[float, int, float]:
    """The generator replicas' own compute so far (``busy_s`` less the step callbacks, summed
    over every replica), the jobs they finished and the seconds their models waited for step
    callbacks (the heartbeats); ``stats`` is asked until each replica answered."""
    from ray import serve

    handle = serve.get_deployment_handle("luma-tiny-workers", app_name="luma-tiny-workers")
    seen: dict[str, tuple[float, int, float]] = {}
    for _ in range(400):
        stats = handle.stats.remote().result(timeout_s=60)
        beats = stats["step_calls_s"]
        seen[stats["worker"]] = (stats["busy_s"] - beats, stats["succeeded"], beats)
        if len(seen) == replicas:
            return tuple(sum(v[k] for v in seen.values()) for k in range(3))  # type: ignore[return-value]
    raise SystemExit(f"only {len(seen)} of {replicas} generator replicas answered stats")


Served = tuple[dict, list[float], list[float], float, float]


def serve_and_profile(args, pipeline: bool) -> dict[int, Served]:
    """A fresh cluster (with or without the default pipeline); AIPerf at each concurrency, and
    the generator replicas' compute seconds per job over that point (warm-ups included)."""
    with local_ray() as root:
        from luma_ray import launch
        from luma_ray.api.keys import KeyStore, keys_path
        from luma_ray.config import IngressLimits, PoolConfig, RuntimeConfig, SchedulerConfig

        tiny_tokenizer(root / "hf")
        port = free_port()
        alone = {} if pipeline else {"pipelines": {}}  # else the shipped default
        runtime = RuntimeConfig(
            data_dir=str(root / "data"),
            pools=[PoolConfig(replicas=args.replicas, num_cpus=1, torch_threads=1)],
            http_port=port,
            scheduler=SchedulerConfig(),
            ingress=IngressLimits(key_rate_per_s=None),
            **alone,
        )
        launch.start(runtime)
        url = f"http://127.0.0.1:{port}"
        results = {}
        for c in args.concurrency:
            with KeyStore(keys_path(runtime.data_dir), ["api"]) as ks:
                key, _ = ks.create(f"aiperf-c{c}", "api", now_s=0)  # one tenant per point
            before = replica_clocks(args.replicas)
            export = run_aiperf(args, url, key, c, root)
            after = replica_clocks(args.replicas)
            jobs = max(after[1] - before[1], 1)
            per_job, beats = (after[0] - before[0]) / jobs, (after[2] - before[2]) / jobs
            results[c] = (export, *server_times(url, key, skip=c), per_job, beats)
        return results


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aiperf", default="/tmp/aiperf-venv/bin/aiperf")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=6, help="per unit of concurrency")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--compute-runs", type=int, default=10)
    parser.add_argument("--poll-s", type=float, default=0.05, help="AIPerf's poll interval")
    parser.add_argument(
        "--nice",
        type=int,
        default=15,
        help="AIPerf's niceness; Ray runs its workers (the replicas, the API, the scheduler) at "
        "15, so at 0 AIPerf's polls go ahead of the served system on a machine they share",
    )
    parser.add_argument(
        "--setups",
        nargs="+",
        choices=["pipeline", "alone"],
        default=["pipeline", "alone"],
        help="pipeline: the shipped default (generate, caption, thumbnail); alone: generate only",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    version = subprocess.run([args.aiperf, "--version"], capture_output=True, text=True)
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; aiperf {version.stdout.strip()}; load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    say(
        f"jobs: luma-tiny, 1 s = {FPS} frames, 64x64, {STEPS} steps; {args.replicas} replicas "
        f"(1 torch thread each); AIPerf polls every {args.poll_s * 1000:.0f} ms and downloads "
        f"the MP4; {args.requests} x concurrency requests per point after as many warm-ups; "
        f"AIPerf at niceness {args.nice} (Ray's workers: 15)"
    )
    say(
        "latency: AIPerf's request latency (submit, polls, download); overhead = latency p50 - "
        "generate; server: accepted to succeeded (native API timings), wait: accepted to "
        "started; capacity: generates side by side, in process, right after the setup's "
        "cluster stopped (the same minutes of this shared machine); served: the generator "
        "replicas' own clock during the point (model compute per job, heartbeats left out), "
        "x served = videos/s against replicas / that (1.0: the replicas never waited for work); "
        "beats: per job, the seconds its model waited for its step callbacks (heartbeats)"
    )
    for setup in args.setups:
        results = serve_and_profile(args, setup == "pipeline")
        with tempfile.TemporaryDirectory(prefix="luma-aiperf-compute-") as tmp:
            generate, encode, capacity = pure_compute(Path(tmp), args.compute_runs, args.replicas)
        compute_s = statistics.median(generate)
        say(
            f"{setup}: pure compute LumaTiny.generate median {compute_s * 1000:.0f} ms (max "
            f"{max(generate) * 1000:.0f} ms, {len(generate)} runs one at a time); MP4 encode "
            f"median {p50_ms(encode):.0f} ms; {args.replicas} side by side: {capacity:.2f} "
            f"videos/s ({args.replicas} / median: {args.replicas / compute_s:.2f}); load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        say(
            f"{'setup':<8} {'conc':>4} {'reqs':>4} {'p50 ms':>7} {'p99 ms':>7} {'videos/s':>8} "
            f"{'x capacity':>10} {'overhead p50':>12} {'server p50':>10} {'wait p50':>8} "
            f"{'served ms':>9} {'x served':>8} {'beats ms':>8}"
        )
        for c, (export, server, waits, per_job, beats) in results.items():
            p50 = metric(export, "request_latency", "p50")
            p99 = metric(export, "request_latency", "p99")
            rps = metric(export, "request_throughput", "avg")
            count = int(metric(export, "request_count", "avg"))
            say(
                f"{setup:<8} {c:>4} {count:>4} {p50:>7.0f} {p99:>7.0f} {rps:>8.2f} "
                f"{rps / capacity:>10.2f} {p50 - compute_s * 1000:>12.0f} "
                f"{p50_ms(server):>10.0f} {p50_ms(waits):>8.0f} {per_job * 1000:>9.0f} "
                f"{rps * per_job / args.replicas:>8.2f} {beats * 1000:>8.0f}"
            )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
