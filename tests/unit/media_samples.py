"""Small real images and videos for the input tests, made with Pillow and PyAV from a seeded
generator (no files checked in)."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image

from luma_ray.models.encode import encode_mp4


def pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_bytes(height: int = 40, width: int = 60, fmt: str = "PNG", seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels(height, width, seed)).save(out, fmt)
    return out.getvalue()


def mp4_bytes(frames: int, height: int = 32, width: int = 48, tmp: Path | None = None) -> bytes:
    video = np.stack([pixels(height, width, seed=i) for i in range(frames)])
    folder = tmp or Path(tempfile.mkdtemp(prefix="luma-sample-"))
    return encode_mp4(video, 8, folder / f"sample-{frames}.mp4").read_bytes()


def webm_bytes(frames: int, height: int = 32, width: int = 48) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pixels(height, width, seed=i), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
"""Announces PNG by its first bytes, then does not decode."""
