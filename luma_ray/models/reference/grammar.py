"""The prompt grammar ``luma-tiny@v2`` is trained on, and the procedural videos it learns from.

A prompt names one object, how it moves and the background::

    a <colour> <shape> [moving <left|right|up|down> | growing | still] [on a <colour> background]

for example "a red circle moving right on a blue background", "a red circle on a blue
background" (no motion = still) or "A green square, growing, on white". Case, punctuation and
articles do not matter; "going"/"sliding" read as "moving", "static"/"stationary" as "still".
Without a background the scene is on black (on white for a black object).

``parse(prompt)`` gives the ``Scene`` or ``None`` for a prompt outside the grammar (the model
still draws something for those, but nothing the checker can hold it to). ``render(scene,
frames, height, width, rng)`` draws a video of the scene: without ``rng`` in the canonical
layout the model is trained to draw, with it at a random size and place. Pure numpy; used by
the training script (train.py), the checker's tests and the QA stages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 60, 230),
    "yellow": (240, 220, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "cyan": (30, 220, 230),
    "magenta": (220, 40, 220),
}
"""Colour words and the RGB the renderer paints them with (the corners of the RGB cube, so
the checker's nearest-colour rule cannot confuse two of them)."""

COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still", "growing")

_ARTICLES = {"a", "an", "the", "and", "is", "that", "which", "slowly", "quickly"}
_MOVING = {"moving", "going", "sliding", "travelling", "traveling", "heading", "drifting"}
_STILL = {"still", "static", "stationary", "standing", "resting", "not"}
_GROWING = {"growing", "expanding", "grows", "getting", "bigger", "larger"}
_DIRECTIONS = {"left", "right", "up", "down", "upward", "upwards", "downward", "downwards"}
_SHAPE_WORDS = {"circle": "circle", "disc": "circle", "disk": "circle", "ball": "circle",
                "square": "square", "box": "square", "triangle": "triangle"}  # fmt: skip
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Scene:
    """One prompt of the grammar: an object's colour and shape, its motion, the background."""

    colour: str
    shape: str
    motion: str
    background: str

    def prompt(self) -> str:
        """The canonical prompt, e.g. "a red circle moving right on a blue background"."""
        how = (
            f"moving {self.motion}"
            if self.motion in {"left", "right", "up", "down"}
            else (self.motion)
        )
        return f"a {self.colour} {self.shape} {how} on a {self.background} background"


def parse(prompt: str) -> Scene | None:
    """The ``Scene`` a prompt describes, or ``None`` when it is outside the grammar.

    Needs exactly one shape and an object colour before it; a second colour after the shape is
    the background (with or without "on ... background"); the motion defaults to still.
    Contradictions (two motions, two shapes, object and background of one colour) give ``None``.
    """
    words = [w for w in _WORD.findall(prompt.lower()) if w not in _ARTICLES]
    shapes = [i for i, w in enumerate(words) if w in _SHAPE_WORDS]
    if len(shapes) != 1:
        return None
    at = shapes[0]
    before = [w for w in words[:at] if w in PALETTE]
    after = [w for w in words[at + 1 :] if w in PALETTE]
    if len(before) != 1 or len(after) > 1:
        return None
    colour = before[0]
    background = after[0] if after else ("white" if colour == "black" else "black")
    motion = _motion(words[at + 1 :])
    if motion is None or background == colour:
        return None
    known = set(PALETTE) | set(_SHAPE_WORDS) | _MOVING | _STILL | _GROWING | _DIRECTIONS
    known |= {"on", "background", "backdrop", "over", "against", "in", "of", "to", "the"}
    if any(w not in known for w in words):
        return None
    return Scene(colour, _SHAPE_WORDS[words[at]], motion, background)


def _motion(words: list[str]) -> str | None:
    """The motion named after the shape: a direction, growing, still (the default); ``None``
    when two are named."""
    found = {_direction(w) for w in words if w in _DIRECTIONS}
    if any(w in _GROWING for w in words):
        found.add("growing")
    if any(w in _STILL for w in words) and not found:
        return "still"
    if len(found) > 1:
        return None
    return found.pop() if found else "still"


def _direction(word: str) -> str:
    return word.removesuffix("s").removesuffix("ward")


def all_scenes() -> list[Scene]:
    """Every scene of the grammar (object and background of different colours), in a fixed
    order: colour, shape, motion, background."""
    return [
        Scene(c, s, m, b)
        for c in COLOURS
        for s in SHAPES
        for m in MOTIONS
        for b in COLOURS
        if b != c
    ]


CANONICAL_HALF_SIZE = 0.13
"""Half-size of the object in the canonical layout, as a share of the shorter side (growing:
from ``CANONICAL_GROWTH[0]`` to ``CANONICAL_GROWTH[1]``)."""
CANONICAL_GROWTH = (0.085, 0.17)
CANONICAL_TRAVEL = 0.30
"""How far a moving object travels over the clip in the canonical layout, as a share of the
frame along its direction."""


def render(
    scene: Scene,
    frames: int,
    height: int,
    width: int,
    rng: np.random.Generator | None = None,
    *,
    free: bool = False,
) -> np.ndarray:
    """A video of ``scene``: ``uint8 [frames, height, width, 3]``, flat colours, hard edges.

    Without ``rng``, the canonical layout (what ``luma-tiny@v2`` draws for a prompt): half-size
    13 % of the shorter side (growing: from 8.5 % to 17 %), a moving object travels 30 % of
    the frame along a path centred in it, a still or growing one sits in the middle.

    With ``rng``: the half-size is 10-16 % of the shorter side (growing: from 7-10 % to about
    twice that), a moving object travels 30-45 % of the frame; the start is drawn so that the
    whole path stays inside the frame, or, with ``free``, anywhere the object fits in the
    first frame (the path may then leave the frame, as an extension of a clip does).
    """
    side = min(height, width)
    span = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    dx, dy = span.get(scene.motion, (0, 0))
    grows = scene.motion == "growing"
    if rng is None:
        r0 = side * (CANONICAL_GROWTH[0] if grows else CANONICAL_HALF_SIZE)
        r1 = side * CANONICAL_GROWTH[1] if grows else r0
        travel_x, travel_y = width * CANONICAL_TRAVEL * abs(dx), height * CANONICAL_TRAVEL * abs(dy)
        sx, sy = (width - dx * travel_x) / 2.0, (height - dy * travel_y) / 2.0
    else:
        r0 = side * (rng.uniform(0.07, 0.10) if grows else rng.uniform(0.10, 0.16))
        r1 = r0 * rng.uniform(1.8, 2.2) if grows else r0
        travel_x = abs(dx) * width * rng.uniform(0.30, 0.45)
        travel_y = abs(dy) * height * rng.uniform(0.30, 0.45)
        if free:
            sx = rng.uniform(r0 + 1.0, width - r0 - 1.0)
            sy = rng.uniform(r0 + 1.0, height - r0 - 1.0)
        else:
            margin = r1 + 1.0
            lo_x, hi_x = margin, width - margin - travel_x
            lo_y, hi_y = margin, height - margin - travel_y
            sx = rng.uniform(lo_x, max(lo_x, hi_x)) + (travel_x if dx < 0 else 0.0)
            sy = rng.uniform(lo_y, max(lo_y, hi_y)) + (travel_y if dy < 0 else 0.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    video[:] = np.array(PALETTE[scene.background], dtype=np.uint8)
    colour = np.array(PALETTE[scene.colour], dtype=np.uint8)
    for f in range(frames):
        k = f / (frames - 1) if frames > 1 else 0.0
        cx, cy = sx + dx * travel_x * k, sy + dy * travel_y * k
        r = r0 + (r1 - r0) * k
        video[f][shape_mask(scene.shape, xs, ys, cx, cy, r)] = colour
    return video


def shape_mask(
    shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float
) -> np.ndarray:
    """Pixels (centres ``xs``, ``ys``) inside ``shape`` of half-size ``r`` centred at
    ``(cx, cy)``: a disc, an axis-aligned square, or a triangle pointing up that fills the
    square's box (apex at the top middle, base along the bottom)."""
    u, v = xs - cx, ys - cy
    if shape == "circle":
        mask: np.ndarray = u * u + v * v <= r * r
    elif shape == "square":
        mask = (np.abs(u) <= r) & (np.abs(v) <= r)
    elif shape == "triangle":
        mask = (v <= r) & (np.abs(u) <= (v + r) / 2.0)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return mask
