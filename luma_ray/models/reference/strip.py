"""A strip of a generated video's frames as a PNG: ``python -m luma_ray.models.reference.strip``.

::

    python -m luma_ray.models.reference.strip "a green square moving left on a white background" \
        --out docs/images/luma-tiny-strip.png [--seed 0] [--weights DIR] [--scale 2]

Generates the prompt with the shipped weights (or ``--weights``) at the model's defaults and
writes the frames side by side, each scaled up ``--scale`` times, with a 2-pixel gap; prints
the checker's verdict. The README's picture is made this way. PNG is written with zlib (no
imaging library needed).
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from luma_ray.models.interface import GenerationRequest
from luma_ray.models.reference.check import check
from luma_ray.models.reference.model import LIMITS, LumaTiny
from luma_ray.models.reference.publish import SHIPPED_WEIGHTS


def strip(frames: np.ndarray, scale: int = 2, gap: int = 2) -> np.ndarray:
    """``uint8 [F, H, W, 3]`` → one image ``[H*scale, F*(W*scale+gap)-gap, 3]`` (gaps white)."""
    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    f, h, w, _ = big.shape
    out = np.full((h, f * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(f):
        out[:, i * (w + gap) : i * (w + gap) + w] = big[i]
    return out


def write_png(image: np.ndarray, path: Path) -> Path:
    """Write ``uint8 [H, W, 3]`` as an 8-bit RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w, _ = image.shape
    rows = b"".join(b"\x00" + image[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("prompt")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = LumaTiny()
    model.load(args.weights, torch.device("cpu"))
    request = GenerationRequest(
        args.prompt, frames=LIMITS.default_frames, height=64, width=64, seed=args.seed
    )
    video = model.generate(request, lambda step, total: None)
    write_png(strip(video, args.scale), args.out)
    verdict = check(video, args.prompt)
    print(f"{args.out}: check {'ok' if verdict.ok else 'failed: ' + '; '.join(verdict.reasons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
