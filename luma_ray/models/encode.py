"""Frames → H.264 MP4 with PyAV (FFmpeg's libraries, bundled in its wheel), and a thumbnail
and spritesheet (PNG or JPEG) with Pillow, in memory.

A worker calls ``encode_mp4`` and ``thumbnail_bytes`` on the ``uint8 [frames, H, W, 3]`` array a
model returned, then uploads both files to the result store; ``decode_mp4`` reads a video back
(from a file or its bytes: the pipeline's stages), ``probe_mp4`` decodes a file (tests use it to
prove the video has the requested frame count, size and codec).

The video is H.264 (libx264, ``yuv420p`` so every browser and player shows it, ``+faststart`` so
playback starts before the download ends). ``yuv420p`` needs even dimensions: an odd height or
width is padded by repeating the last row or column. libx264 here has no minimum size (64x64
and even 2x2 work), so nothing is scaled. Files are written to a temporary sibling and renamed,
so a reader never sees half a video.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
_X264_OPTIONS = {"crf": "18", "preset": "veryfast"}
REPRODUCIBLE_PIXELS = 128 * 128
"""Up to this many pixels a frame, x264 encodes without its macroblock-tree rate control
(``no-mbtree``), so the same frames always make the same file: a job resumed after a park, or
the same seed run again, gives the same video. With it, encodes of the same frames in one
process (other sizes and decodes in between) made up to 3 different files of 24 at 32x32,
48x48 and 64x64, and up to 6 of 24 in other mixes; none at 80 to 256 pixels a side in the
same trials. The price is size at the same quality setting: 4.7 KB instead of 3.0 KB for 8
frames of 64x64."""
SMALL_VIDEO_PIXELS = 256 * 256
"""Up to this many pixels a frame, ``decode_mp4`` decodes on one thread: FFmpeg's frame threads
start, sync and wait longer than a 64x64 video takes to decode (17 ms instead of 36 ms for 16
frames of 64x64 here; the same frames)."""
_MP4_OPTIONS = {"movflags": "+faststart"}
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # suffix → Pillow format
_JPEG_QUALITY = 90
_PNG_LEVEL = 1
"""zlib level of thumbnails and spritesheets: a 4x2 sheet of luma-tiny's 64x64 frames encodes
in 4.4 ms at level 1 against 20 ms at Pillow's default 6, for 14 % more bytes (56 against 49
KB): a preview made once per job, read a few times."""


class VideoProbe(NamedTuple):
    """What ``probe_mp4`` found by decoding a file."""

    frames: int
    width: int
    height: int
    codec_name: str

    @property
    def codec(self) -> str:
        """Alias of ``codec_name`` (FFmpeg's decoder name, ``h264`` for H.264)."""
        return self.codec_name


def encode_mp4(frames: np.ndarray, fps: int, path: Path) -> Path:
    """Write ``frames`` (``uint8 [F, H, W, 3]`` RGB) as an H.264 MP4 at ``fps``; return ``path``."""
    video = _even_sized(_checked(frames))
    if fps < 1:
        raise ValueError(f"fps is {fps}; it must be at least 1")
    path = Path(path)
    height, width = video.shape[1:3]
    with _atomic(path) as tmp, av.open(str(tmp), "w", format="mp4", options=_MP4_OPTIONS) as out:
        options = dict(_X264_OPTIONS)
        if height * width <= REPRODUCIBLE_PIXELS:
            options["x264-params"] = "no-mbtree=1"
        stream = _video_stream(out.add_stream(VIDEO_CODEC, rate=Fraction(fps), options=options))
        stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
        to_yuv = VideoReformatter()  # one scaler for every frame, not one a frame
        for rgb in video:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out.mux(stream.encode(to_yuv.reformat(frame, format=PIXEL_FORMAT)))
        out.mux(stream.encode(None))
    return path


def thumbnail_bytes(frames: np.ndarray, suffix: str = ".png") -> bytes:
    """The middle frame as a PNG (``.png``) or JPEG (``.jpg``/``.jpeg``) file's bytes."""
    video = _checked(frames)
    return _image_bytes(video[len(video) // 2], _image_format(suffix))


def encode_thumbnail(frames: np.ndarray, path: Path) -> Path:
    """Write the middle frame as PNG (``.png``) or JPEG (``.jpg``/``.jpeg``); return ``path``."""
    path = Path(path)
    return _write_image(path, thumbnail_bytes(frames, path.suffix))


def decode_mp4(source: Path | bytes) -> np.ndarray:
    """Every frame of the video at ``source`` (a path, or the file's bytes) as
    ``uint8 [F, H, W, 3]`` RGB (a pipeline stage reads the generated video back with it)."""
    where = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(where, "r") as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        if context.width * context.height <= SMALL_VIDEO_PIXELS:
            context.thread_count = 1  # threads cost more than they save on a small video
            decoded = list(container.decode(stream))  # small: all held, converted together
            video = _to_rgb(decoded) if decoded else None
        else:  # converted as they come, one decoded frame held at a time
            rgb = _each_to_rgb(container.decode(stream))
            video = np.stack(rgb) if rgb else None
    if video is None:
        name = "the video" if isinstance(source, bytes) else str(source)
        raise ValueError(f"{name} holds no video frames")
    return video


def _each_to_rgb(frames: Iterable[av.VideoFrame]) -> list[np.ndarray]:
    """Each frame as ``uint8 [H, W, 3]`` RGB, through one scaler (not one a frame)."""
    to_rgb = VideoReformatter()
    return [to_rgb.reformat(f, format="rgb24").to_ndarray() for f in frames]


def _to_rgb(frames: list[av.VideoFrame]) -> np.ndarray:
    """Decoded frames as ``uint8 [F, H, W, 3]`` RGB, exactly as a plain PyAV decode gives them.

    Frames of one ``yuv420p`` stream, the encoder's format, with a height that is a multiple
    of 4 and an even width, are converted as one tall picture, their planes stacked: swscale's
    yuv420p to RGB conversion at the same size takes each chroma row for its two luma rows, so
    nothing mixes across frames (tested equal), and one call costs less than one a frame, which
    is most of the cost at small sizes (8 frames of 64x64: 1.5 ms, not 2.0). Anything else goes
    frame by frame through one scaler. ``decode_mp4`` calls it for small videos only, which it
    can hold decoded all at once."""
    first = frames[0]
    h, w = first.height, first.width
    if first.format.name == "yuv420p" and h % 4 == 0 and w % 2 == 0 and len(frames) > 1:
        same = all(
            f.format.name == "yuv420p"
            and (f.height, f.width) == (h, w)
            and (f.colorspace, f.color_range) == (first.colorspace, first.color_range)
            for f in frames
        )
        if same:
            planes = [f.to_ndarray() for f in frames]  # [Y rows; U rows; V rows], width w
            luma, quarter = h, h // 4
            stacked: np.ndarray[Any, np.dtype[np.uint8]] = np.concatenate(
                [a[:luma] for a in planes]
                + [a[luma : luma + quarter] for a in planes]
                + [a[luma + quarter :] for a in planes]
            )
            tall = av.VideoFrame.from_ndarray(stacked, format="yuv420p")
            tall.colorspace, tall.color_range = first.colorspace, first.color_range
            rgb = tall.to_ndarray(format="rgb24")
            return rgb.reshape(len(frames), h, w, 3)
    return np.stack(_each_to_rgb(frames))


def spritesheet_bytes(
    frames: np.ndarray, suffix: str = ".png", columns: int = 4, cells: int = 16
) -> bytes:
    """A grid of up to ``cells`` evenly spaced frames, ``columns`` a row, as one PNG or JPEG
    file's bytes (players show it as a scrubbing preview)."""
    video = _checked(frames)
    picks = np.linspace(0, len(video) - 1, num=min(cells, len(video))).round().astype(int)
    tiles = list(video[picks])
    rows = -(-len(tiles) // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    grid = np.concatenate(
        [np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(rows)]
    )
    return _image_bytes(grid, _image_format(suffix))


def encode_spritesheet(frames: np.ndarray, path: Path, columns: int = 4, cells: int = 16) -> Path:
    """Write :func:`spritesheet_bytes` to ``path`` (``.png``, ``.jpg``, ``.jpeg``); return it."""
    path = Path(path)
    return _write_image(path, spritesheet_bytes(frames, path.suffix, columns, cells))


def probe_mp4(path: Path) -> VideoProbe:
    """Decode every frame of the video at ``path``; count them and report size and codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return VideoProbe(
            count,
            stream.codec_context.width,
            stream.codec_context.height,
            stream.codec_context.name,
        )


def _video_stream(stream: object) -> av.video.stream.VideoStream:
    """The stream ``add_stream`` made, typed as the video stream it is for a video codec."""
    assert isinstance(stream, av.video.stream.VideoStream), stream
    return stream


def _image_format(suffix: str) -> str:
    """Pillow's format name for a file suffix; ValueError naming the suffixes there are."""
    if suffix.lower() not in _IMAGE_FORMATS:
        raise ValueError(
            f"an image file name must end in one of {sorted(_IMAGE_FORMATS)}; got {suffix!r}"
        )
    return _IMAGE_FORMATS[suffix.lower()]


def _image_bytes(rgb: np.ndarray, image_format: str) -> bytes:
    """One RGB frame encoded in memory by Pillow (PNG lossless; JPEG at quality 90)."""
    out = io.BytesIO()
    options = (
        {"quality": _JPEG_QUALITY} if image_format == "JPEG" else {"compress_level": _PNG_LEVEL}
    )
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(out, image_format, **options)
    return out.getvalue()


def _write_image(path: Path, data: bytes) -> Path:
    with _atomic(path) as tmp:
        tmp.write_bytes(data)
    return path


def _checked(frames: np.ndarray) -> np.ndarray:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 [frames, height, width, 3]; got {frames.dtype} {frames.shape}"
        )
    if frames.shape[0] < 1:
        raise ValueError("frames is empty; a video needs at least one frame")
    return np.ascontiguousarray(frames)


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one repeated row/column, as 4:2:0 chroma needs even sizes."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the body succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
