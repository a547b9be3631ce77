"""Checkpoint load throughput against same-run baselines: a cold S3 fetch against a raw boto3
download of the same object, a warm cache hit against a plain read of the same bytes.

Starts SeaweedFS on 127.0.0.1 with the project's own script (scripts/seaweedfs.py; stopped at
the end), publishes a version with one checkpoint of --mb megabytes to an s3:// repository,
then runs --rounds rounds, each timing, in turn:

- store ceiling: parallel ranged GETs of the object into memory (10 at once, 8 MiB each,
  nothing written or hashed): what the S3 gateway itself serves on this machine;
- raw boto3: ``client.download_file`` of the same object to a file (boto3's defaults);
- cold fetch: ``ModelCache.fetch`` with an empty cache (manifest, parallel ranged GETs written
  in order and hashed as they stream, the sha256 checked against the manifest, index written);
then, after ``sync`` (so that the cold phase's write-back does not land on the warm one),
--rounds rounds of:

- plain read: reading the source file (in the page cache) in 8 MiB blocks;
- warm: ``ModelCache.fetch`` on the filled cache, then reading the cached file.

Raw boto3 and the cold fetch swap order every round, each after a ``sync`` and a pause of
--settle-s (2 s). Ratios are of the
medians over rounds (each round runs every variant once, so load from other processes on a
shared machine hits all alike). The cached file's sha256, computed while it
streamed, is checked against the manifest's.

    cd benchmarks && python checkpoint_load.py [--mb 512] [--rounds 5] [--out F]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.storage import open_store

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "seaweedfs.py"
BUCKET = "luma-bench"
PART = 8 << 20


def load_seaweedfs():
    spec = importlib.util.spec_from_file_location("luma_scripts_seaweedfs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_all(path: Path) -> int:
    total = 0
    with path.open("rb") as f:
        while chunk := f.read(PART):
            total += len(chunk)
    return total


def parallel_get(client, key: str, size: int) -> int:
    def part(start: int) -> int:
        stop = min(start + PART, size) - 1
        body = client.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={start}-{stop}")["Body"]
        return len(body.read())

    with ThreadPoolExecutor(10) as pool:
        return sum(pool.map(part, range(0, size, PART)))


def cold_fetch(cache_root: Path, repo: ModelRepository, size: int) -> Path:
    return ModelCache(cache_root, repo, max_bytes=10 * size).fetch("bench", "v1")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle-s", type=float, default=2.0, help="pause before each download")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="luma-ckpt-"))
    seaweedfs = load_seaweedfs()
    server = seaweedfs.start_seaweedfs(root / "seaweedfs", timeout_s=120.0)
    try:
        lines = run(args, root, server.connection())
    finally:
        server.stop(grace_s=1.0)
        shutil.rmtree(root, ignore_errors=True)
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")


def run(args, root: Path, connection: dict[str, str]) -> list[str]:
    src = root / "src"
    (src / "checkpoints").mkdir(parents=True)
    (src / "model.yaml").write_text("entrypoint: luma_ray.models.reference.model:LumaTiny\n")
    weights = src / "checkpoints" / "model.safetensors"
    with weights.open("wb") as f:
        for _ in range(args.mb):
            f.write(os.urandom(1 << 20))
    store = open_store(f"s3://{BUCKET}/repo", create_bucket=True, **connection)
    repo = ModelRepository(store, time.time)
    manifest = repo.publish("bench", "v1", src)
    entry = next(e for e in manifest.files if e.path.endswith("model.safetensors"))
    key = repo.version_key("bench", "v1", entry.path)
    name = f"{store.prefix}/{key}"
    size = entry.size_bytes
    client = store.client
    cache_root = root / "cache"
    raw_out = root / "raw.bin"
    times: dict[str, list[float]] = {
        k: [] for k in ("ceiling", "raw", "cold", "plain", "warm_fetch", "warm_read")
    }
    for k in range(args.rounds):
        assert parallel_get(client, name, size) == size  # warm-up of the gateway's caches too
        times["ceiling"].append(timed(lambda: parallel_get(client, name, size)))
        for variant in ("raw", "cold") if k % 2 == 0 else ("cold", "raw"):
            raw_out.unlink(missing_ok=True)
            shutil.rmtree(cache_root, ignore_errors=True)
            os.sync()  # neither download pays for the other's write-back
            time.sleep(args.settle_s)  # nor for the gateway's work after the last one
            if variant == "raw":
                fn = lambda: client.download_file(BUCKET, name, str(raw_out))  # noqa: E731
            else:
                fn = lambda: cold_fetch(cache_root, repo, size)  # noqa: E731
            times[variant].append(timed(fn))
    os.sync()  # the cold phase's write-back is not the warm phase's cost
    warm = ModelCache(cache_root, repo, max_bytes=10 * size)
    cached = cache_root / "files" / "bench" / "v1" / entry.path
    for _ in range(args.rounds):
        times["plain"].append(timed(lambda: read_all(weights)))
        times["warm_fetch"].append(timed(lambda: warm.fetch("bench", "v1")))
        times["warm_read"].append(timed(lambda: read_all(cached)))
    fetched = store.fetch_file(key, root / "check.bin")
    source_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    integrity = "OK" if fetched.sha256 == entry.sha256 == source_digest else "MISMATCH"
    med = {k: statistics.median(v) for k, v in times.items()}
    mb = size / 1e6
    warm_total = med["warm_fetch"] + med["warm_read"]
    cold_ratio = med["raw"] / med["cold"]
    warm_ratio = med["plain"] / warm_total

    def row(label: str, k: str, note: str = "") -> str:
        runs = " ".join(f"{t:.2f}" for t in times[k])
        return f"{label:<34}{mb / med[k]:7.0f} MB/s  median {med[k]:6.2f} s  [{runs}]  {note}"

    return [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at the end "
        f"{os.getloadavg()[0]:.1f}; SeaweedFS {connection['endpoint_url']} (127.0.0.1)",
        f"checkpoint {mb:.0f} MB, {args.rounds} rounds, each running every variant once",
        row("store ceiling (10 ranged GETs)", "ceiling", "to memory, no write, no hash"),
        row("raw boto3 download_file", "raw", "baseline for the cold fetch"),
        row("cold fetch (ModelCache)", "cold", f"{cold_ratio:.2f}x raw boto3 (target >= 0.8)"),
        row("plain file read", "plain", "baseline for the warm fetch"),
        f"{'warm fetch (cache hit)':<34}{med['warm_fetch'] * 1000:7.1f} ms    median",
        f"{'warm fetch + read cached file':<34}{mb / warm_total:7.0f} MB/s  median "
        f"{warm_total:6.2f} s  {warm_ratio:.2f}x plain read (target >= 0.9)",
        f"integrity: sha256 taken while streaming {fetched.sha256[:16]}..., the manifest's "
        f"{entry.sha256[:16]}..., the source file's {source_digest[:16]}...: {integrity}",
        f"PASS cold >= 0.8x: {cold_ratio >= 0.8}; PASS warm >= 0.9x: {warm_ratio >= 0.9}",
    ]


if __name__ == "__main__":
    main()
