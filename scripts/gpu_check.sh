#!/usr/bin/env bash
# A short check of a CUDA machine for luma_ray's diffusers models (docs/models.md).
#
#   bash scripts/gpu_check.sh            # from the repository root, with .[diffusers] installed
#
# 1. scaffolds a tiny Wan pipeline, loads it through DiffusersVideoModel on cuda in bfloat16,
#    generates 17 frames of 64x64 in 8 steps, and prints the time per step;
# 2. an NCCL all_reduce between 2 processes (2 GPUs or more), else in a 1-rank NCCL group;
# 3. encodes the frames with h264_nvenc through PyAV if that encoder works, else libx264.
# Prints numbers; exits 0 with a message on a machine without a GPU. Each part is bounded
# (timeout 170 s in all). GPU_CHECK_FORCE_CPU=1 runs the same code on CPU (gloo, libx264),
# to check the script itself on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${GPU_CHECK_FORCE_CPU:-0}" != "1" ]]; then
  if ! python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA GPU visible to torch here; nothing to check (exit 0)"
    exit 0
  fi
fi

# A file, not stdin: the all_reduce's spawned processes import the script's functions.
script="$(mktemp -d)/gpu_check.py"
trap 'rm -rf "$(dirname "$script")"' EXIT
cat > "$script" <<'PY'
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FORCE_CPU = os.environ.get("GPU_CHECK_FORCE_CPU") == "1"
DEVICE = torch.device("cpu") if FORCE_CPU else torch.device("cuda", 0)


def generate() -> "object":
    import numpy as np

    from luma_ray.models.diffusers import DiffusersVideoModel
    from luma_ray.models.diffusers.scaffold import write_tiny_folder
    from luma_ray.models.interface import GenerationRequest

    folder = write_tiny_folder(Path(tempfile.mkdtemp(prefix="gpu-check-")) / "wan", "WanPipeline")
    model = DiffusersVideoModel(
        pipeline_class="WanPipeline",
        image_pipeline_class="WanImageToVideoPipeline",
        dtype="float32" if FORCE_CPU else "bfloat16",
    )
    started = time.perf_counter()
    model.load(folder / "checkpoints", DEVICE)
    print(f"load: {time.perf_counter() - started:.2f} s on {DEVICE}")
    request = GenerationRequest("a paper boat", frames=17, height=64, width=64, steps=8, seed=1)
    model.generate(request, lambda s, t: True)  # warm-up: kernels, allocator
    marks: list[float] = []

    def on_step(step: int, total: int) -> bool:
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return True

    started = time.perf_counter()
    frames = model.generate(request, on_step)
    total = time.perf_counter() - started
    steps = [b - a for a, b in zip([started, *marks[:-1]], marks)]
    print(
        f"generate 17x64x64, 8 steps: {total:.3f} s; per step mean {1000 * sum(steps) / 8:.1f} ms,"
        f" min {1000 * min(steps):.1f} ms, max {1000 * max(steps):.1f} ms; frames {frames.shape}"
    )
    if DEVICE.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
    assert frames.dtype == np.uint8 and frames.shape == (17, 64, 64, 3)
    return frames


def _rank(rank: int, world: int, port: int, backend: str, out: "mp.Queue") -> None:
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    x = torch.ones(64 * 2**20 // 4, device=device) * (rank + 1)  # 64 MiB of float32
    dist.all_reduce(x)
    if backend == "nccl":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(5):
        dist.all_reduce(x)
    if backend == "nccl":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / 5
    expected = sum(range(1, world + 1)) * world**5  # the sum, then 5 more all_reduces
    out.put((rank, float(x[0]), expected, seconds))
    dist.destroy_process_group()


def all_reduce() -> None:
    import socket

    backend = "gloo" if FORCE_CPU else "nccl"
    world = 1 if FORCE_CPU else min(2, torch.cuda.device_count())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, world, port, backend, out)) for r in range(world)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    for rank, value, expected, seconds in sorted(results):
        ok = "ok" if value == expected else f"WRONG (expected {expected})"
        print(
            f"{backend} all_reduce, {world} rank(s), rank {rank}: 64 MiB in "
            f"{1000 * seconds:.2f} ms ({64 / 1024 / seconds:.1f} GiB/s algorithm bandwidth), {ok}"
        )


def encode(frames: "object") -> None:
    import av
    import numpy as np

    video = np.repeat(np.repeat(frames, 4, axis=1), 4, axis=2)  # 256x256: nvenc's minimum
    for codec in ("h264_nvenc", "libx264"):
        if FORCE_CPU and codec == "h264_nvenc":
            continue
        path = Path(tempfile.mkdtemp(prefix="gpu-check-")) / f"{codec}.mp4"
        try:
            started = time.perf_counter()
            with av.open(str(path), "w") as container:
                stream = container.add_stream(codec, rate=16)
                stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
                for frame in video:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        except Exception as exc:  # the encoder is missing from this FFmpeg build, or no GPU
            print(f"{codec}: not usable here ({type(exc).__name__}: {exc})")
            continue
        seconds = time.perf_counter() - started
        print(
            f"{codec}: {len(video)} frames of 256x256 in {1000 * seconds:.1f} ms, "
            f"{path.stat().st_size} bytes"
        )
        return
    print("no H.264 encoder worked")


if __name__ == "__main__":
    print(f"torch {torch.__version__}, cuda {torch.version.cuda}, devices "
          f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}")
    if DEVICE.type == "cuda":
        print(f"GPU 0: {torch.cuda.get_device_name(0)}")
    frames = generate()
    all_reduce()
    encode(frames)
    sys.exit(0)
PY
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 170 python "$script"
