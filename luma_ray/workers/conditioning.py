"""A job's inputs, from blob keys to the model's ``Conditioning``.

The pull loop calls :func:`build_conditioning` before ``generate`` for a request that carries
``inputs`` (``GenerationInputs``: keys the ingress checked and stored). Each blob is read with
``read`` (the result store's ``get_bytes``), decoded (``luma_ray.models.media``) and fitted to
the request: images center-cropped and resized to ``width x height``; a source video's frames
resampled evenly to ``request.frames``, each fitted the same way; a video being extended gives
its last frame as ``first_frame``, with ``extended`` set. A blob that is gone (its generation
deleted before this job ran) or does not decode raises :class:`InputUnavailable`, which the
loop reports as a final failure naming the input, not as a crash to retry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from luma_ray.errors import NotFound
from luma_ray.models.interface import Conditioning, GenerationRequest
from luma_ray.models.media import MediaError, decode_image, decode_video, fit_frame, fit_video


class InputUnavailable(Exception):
    """An input of the job cannot be read or decoded; the message names it, for the tenant."""


def build_conditioning(
    request: GenerationRequest, read: Callable[[str], bytes]
) -> Conditioning | None:
    """The decoded inputs of ``request`` at its size and frame count; None without inputs."""
    inputs = request.inputs
    if inputs is None:
        return None
    size = (request.width, request.height)
    first = _image(read, "first_frame", inputs.first_frame, size)
    last = _image(read, "last_frame", inputs.last_frame, size)
    source = None
    if inputs.source_video is not None:
        video = _video(read, "source_video", inputs.source_video)
        source = fit_video(video, request.frames, *size)
    extended = inputs.extend_video is not None
    if inputs.extend_video is not None:
        video = _video(read, "extend_video", inputs.extend_video)
        first = fit_frame(video[-1], *size)
    return Conditioning(
        first_frame=first,
        last_frame=last,
        source_video=source,
        strength=inputs.strength,
        extended=extended,
    )


def _read(read: Callable[[str], bytes], name: str, key: str) -> bytes:
    try:
        return read(key)
    except NotFound:
        raise InputUnavailable(
            f"{name}: the input is gone from the store (its generation was deleted before "
            "this one ran); submit again"
        ) from None


def _image(
    read: Callable[[str], bytes], name: str, key: str | None, size: tuple[int, int]
) -> np.ndarray | None:
    if key is None:
        return None
    try:
        return fit_frame(decode_image(_read(read, name, key)), *size)
    except MediaError as err:
        raise InputUnavailable(f"{name}: {err}") from None


def _video(read: Callable[[str], bytes], name: str, key: str) -> np.ndarray:
    try:
        return decode_video(_read(read, name, key))
    except MediaError as err:
        raise InputUnavailable(f"{name}: {err}") from None
