"""Checkpoint load throughput: cold from the store, warm from the per-node cache, against
plain file reads of the same bytes, in the same run.

Publishes a version with one checkpoint of --mb megabytes to a file:// repository (or an S3
one with --s3-port-file from scripts/seaweedfs.py), then times: a plain read of the source
file; a cold fetch (download and verify every byte); a warm fetch (cache hit); and reading the
cached file. Each is the best of --repeat runs.

    cd benchmarks && python checkpoint_load.py [--mb 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.storage import open_store


def read_all(path: Path) -> int:
    total = 0
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            total += len(chunk)
    return total


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3-port-file", help="JSON from scripts/seaweedfs.py start")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="luma-ckpt-"))
    try:
        src = root / "src"
        (src / "checkpoints").mkdir(parents=True)
        (src / "model.yaml").write_text("entrypoint: luma_ray.models.reference.model:LumaTiny\n")
        weights = src / "checkpoints" / "model.safetensors"
        with weights.open("wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        if args.s3_port_file:
            options = json.loads(Path(args.s3_port_file).read_text())
            store = open_store("s3://luma-bench/repo", create_bucket=True, **options)
        else:
            store = open_store((root / "repo").as_uri())
        repo = ModelRepository(store, time.time)
        repo.publish("bench", "v1", src)
        size = weights.stat().st_size
        mb = size / 1e6

        plain = best(lambda: read_all(weights), args.repeat)

        def cold() -> None:
            shutil.rmtree(root / "cache", ignore_errors=True)
            ModelCache(root / "cache", repo, max_bytes=10 * size).fetch("bench", "v1")

        cold_s = best(cold, args.repeat)
        cache = ModelCache(root / "cache", repo, max_bytes=10 * size)
        folder = cache.fetch("bench", "v1")
        warm_s = best(lambda: cache.fetch("bench", "v1"), args.repeat)
        cached = folder / "checkpoints" / "model.safetensors"
        warm_read = best(lambda: read_all(cached), args.repeat)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; store {store.uri.split(':')[0]}://, "
            f"checkpoint {mb:.0f} MB, best of {args.repeat}"
        )
        print(f"plain file read                 {mb / plain:8.0f} MB/s   (baseline)")
        print(
            f"cold fetch (download + verify)  {mb / cold_s:8.0f} MB/s   "
            f"{plain / cold_s:.2f}x of plain"
        )
        print(
            f"warm fetch (cache hit)          {warm_s * 1000:8.1f} ms     "
            f"{plain / warm_s:.0f}x faster than reading the file"
        )
        print(
            f"warm fetch + read cached file   {mb / (warm_s + warm_read):8.0f} MB/s   "
            f"{plain / (warm_s + warm_read):.2f}x of plain"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
