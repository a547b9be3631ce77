"""Turn a requested size or aspect ratio into a frame size the model can make.

A size the model supports is used as is. A larger one (``1280x720`` from an OpenAI client)
keeps its aspect ratio and is scaled down to the model's limits; an aspect ratio (``16:9``)
picks the largest such size within the model's default area. Sides are multiples of the
model's patch size. Intake (``intake.make_job``) calls it for every submit.
"""

from __future__ import annotations

import re

from luma_ray.errors import InvalidRequest
from luma_ray.jobs import ModelLimits

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")
_RATIO = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
DEFAULT_SIDE = 64


def resolve_size(
    size: str | None, aspect_ratio: str | None, limits: ModelLimits
) -> tuple[int, int]:
    """(width, height) for a request; ``InvalidRequest`` says what to send instead."""
    if size and aspect_ratio:
        raise InvalidRequest("give either size or aspect_ratio, not both")
    if size:
        m = _SIZE.match(size)
        if not m:
            raise InvalidRequest(f"size {size!r} must look like '64x64' (width x height)")
        w, h = int(m.group(1)), int(m.group(2))
        if w < 1 or h < 1:
            raise InvalidRequest("size sides must be positive")
        if w <= limits.max_width and h <= limits.max_height:
            return w, h
        return _fit(w / h, limits, limits.max_width, limits.max_height)
    if aspect_ratio:
        m = _RATIO.match(aspect_ratio)
        if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            raise InvalidRequest(f"aspect_ratio {aspect_ratio!r} must look like '16:9'")
        ratio = int(m.group(1)) / int(m.group(2))
        area_side = min(DEFAULT_SIDE * 2, limits.max_width, limits.max_height)
        return _fit(ratio, limits, area_side * max(1.0, ratio), area_side * max(1.0, 1 / ratio))
    return DEFAULT_SIDE, DEFAULT_SIDE


def _fit(ratio: float, limits: ModelLimits, max_w: float, max_h: float) -> tuple[int, int]:
    m = limits.size_multiple
    w = min(max_w, limits.max_width, max_h * ratio)
    h = w / ratio
    if h > min(max_h, limits.max_height):
        h = min(max_h, limits.max_height)
        w = h * ratio
    return max(m, int(w // m) * m), max(m, int(h // m) * m)
