"""Image and video inputs: recognise, probe, decode, resize and resample (numpy, Pillow, PyAV).

Who calls this: the HTTP ingress (``luma_ray.api.inputs``, ``luma_ray.api.files``) calls
:func:`sniff` and :func:`probe` on every upload and every generation input before anything is
queued; the worker (``luma_ray.workers.conditioning``) calls :func:`decode_image`,
:func:`decode_video`, :func:`fit_frame` and :func:`resample_frames` to build a model's
``Conditioning``. No torch.

- The kind is recognised by the file's first bytes, never by a name or a client's content type:
  PNG, JPEG and WebP images; MP4/MOV (ISO base media) and WebM/Matroska videos.
- :func:`probe` reads what the checks need (kind, size, frames) and decodes one image or one
  video frame to prove the file decodes. An image's size is read from its header before any
  pixel is decoded, so a decompression bomb is refused by size, not after it filled memory.
- :func:`fit_frame` resizes to the request's size by **center-crop then resize**: the largest
  centred region of the source with the request's aspect ratio is cut out and scaled (bicubic)
  to ``width x height``, so nothing is stretched.
- :func:`resample_frames` picks frames evenly over the source (nearest index) to reach the
  request's frame count: fewer frames drop some, more repeat some.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image

Kind = Literal["image", "video"]
Source = bytes | str | Path

IMAGE_FORMATS = ("png", "jpeg", "webp")
VIDEO_FORMATS = ("mp4", "webm")
MAX_PROBE_FRAMES = 100_000
"""A video's frames are counted by reading its packets up to this many (a bound on the cost)."""

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


class MediaError(ValueError):
    """The bytes are not a supported image or video, or they do not decode; the message says
    which, in words for the user (the caller prefixes the field's name)."""


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found: ``kind`` (image or video), ``format`` (png, jpeg, webp, mp4,
    webm), pixel size, and ``frames`` (1 for an image)."""

    kind: Kind
    format: str
    width: int
    height: int
    frames: int


def sniff(head: bytes) -> tuple[Kind, str] | None:
    """The (kind, format) the first bytes of a file announce, or None if no supported one.
    ``head`` needs at most 16 bytes."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "webp"
    if head[4:8] in _ISO_BOXES:
        return "video", "mp4"  # MP4, MOV, M4V: the ISO base media file format
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "webm"  # EBML: WebM or Matroska
    return None


def probe(source: Source, *, max_side: int = 4096, max_frames: int = MAX_PROBE_FRAMES) -> MediaInfo:
    """Recognise ``source`` (bytes or a file path) and prove it decodes; raises
    :class:`MediaError` for an unknown type, a damaged file, a side over ``max_side`` pixels or
    more than ``max_frames`` frames."""
    found = sniff(_head(source))
    if found is None:
        raise MediaError(
            "the file is not a supported image or video; send PNG, JPEG or WebP images, "
            "MP4, MOV or WebM videos"
        )
    kind, fmt = found
    if kind == "image":
        return _probe_image(source, fmt, max_side)
    return _probe_video(source, fmt, max_side, max_frames)


def decode_image(source: Source) -> np.ndarray:
    """The image as ``uint8 [H, W, 3]`` RGB (alpha dropped, palettes expanded)."""
    try:
        with Image.open(_readable(source)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"the image does not decode ({_reason(exc)})") from None


def decode_video(source: Source, *, max_frames: int = MAX_PROBE_FRAMES) -> np.ndarray:
    """The video's frames as ``uint8 [F, H, W, 3]`` RGB, at most ``max_frames`` of them."""
    frames: list[np.ndarray] = []
    try:
        with av.open(_readable(source), mode="r") as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= max_frames:
                    break
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"the video does not decode ({_reason(exc)})") from None
    if not frames:
        raise MediaError("the video has no frames")
    return np.stack(frames)


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` (``uint8 [h, w, 3]``) at ``width x height``: center-crop to that aspect
    ratio, then a bicubic resize. Unchanged (a copy) if it already has that size."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame.copy()
    if w * height > h * width:  # wider than wanted: crop the sides
        crop_w, crop_h = max(1, round(h * width / height)), h
    else:  # taller than wanted: crop top and bottom
        crop_w, crop_h = w, max(1, round(w * height / width))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    cropped = Image.fromarray(frame[top : top + crop_h, left : left + crop_w])
    resized = cropped.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def resample_frames(video: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames of ``video`` (``[F, ...]``) picked evenly by nearest index: the first
    and the last are kept; fewer frames drop some, more repeat some."""
    total = video.shape[0]
    if count < 1 or total < 1:
        raise ValueError(f"cannot resample {total} frames to {count}")
    if count == total:
        return video
    if count == 1:
        return video[:1]
    index = np.rint(np.linspace(0, total - 1, count)).astype(np.int64)
    return video[index]


def fit_video(video: np.ndarray, frames: int, width: int, height: int) -> np.ndarray:
    """``video`` resampled to ``frames`` frames, each fitted to ``width x height``."""
    picked = resample_frames(video, frames)
    return np.stack([fit_frame(f, width, height) for f in picked])


# ---- probing --------------------------------------------------------------------------------


def _probe_image(source: Source, fmt: str, max_side: int) -> MediaInfo:
    try:
        with Image.open(_readable(source)) as img:
            width, height = img.size  # from the header: nothing decoded yet
            _check_side(width, height, max_side, "image")
            img.load()
    except MediaError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise MediaError(f"the image does not decode ({_reason(exc)})") from None
    return MediaInfo("image", fmt, width, height, 1)


def _probe_video(source: Source, fmt: str, max_side: int, max_frames: int) -> MediaInfo:
    try:
        with av.open(_readable(source), mode="r") as container:
            if not container.streams.video:
                raise MediaError("the file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_side(width, height, max_side, "video")
            frames = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet at the end
                frames += 1
                if frames > max_frames:
                    raise MediaError(f"the video has more than {max_frames} frames")
            container.seek(0)
            first = next(container.decode(video=0), None)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"the video does not decode ({_reason(exc)})") from None
    if first is None or frames == 0:
        raise MediaError("the video does not decode (no frame could be read)")
    return MediaInfo("video", fmt, width or first.width, height or first.height, frames)


def _check_side(width: int, height: int, max_side: int, what: str) -> None:
    if width < 1 or height < 1:
        raise MediaError(f"the {what} has no pixels ({width}x{height})")
    if width > max_side or height > max_side:
        raise MediaError(
            f"the {what} is {width}x{height}; at most {max_side}x{max_side} pixels are accepted"
        )


def _head(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source[:16]
    with open(source, "rb") as f:
        return f.read(16)


def _readable(source: Source) -> io.BytesIO | str:
    return io.BytesIO(source) if isinstance(source, bytes) else str(source)


def _reason(exc: BaseException) -> str:
    """A short reason from a decoder's error, without paths (the file is a temporary one)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text or type(exc).__name__)[:160]
