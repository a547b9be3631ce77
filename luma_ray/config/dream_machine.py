"""The Dream Machine-compatible API's model table: which of our models answers a Dream Machine
model name, and what its resolution and duration labels mean for that model.

A label the table does not list is refused with a 400 naming the labels it does list, so a
client learns what this deployment can make instead of getting a video it did not ask for.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from luma_ray.config.base import Strict

_Side = Field(ge=8, le=8192)


class DreamModel(Strict):
    """One Dream Machine model name (``ray-2``) as one of our models."""

    model: str = Field(min_length=1, max_length=128)
    """Our model (``name`` or ``name@version``) that serves it."""
    resolutions: dict[str, int] = Field(min_length=1)
    """Resolution label (``540p``) → the video's short side in pixels; the long side follows
    the aspect ratio. Both are rounded down to ``size_multiple``."""
    durations: dict[str, float] = Field(min_length=1)
    """Duration label (``5s``) → seconds of video."""
    default_resolution: str
    default_duration: str
    size_multiple: int = Field(default=8, ge=1, le=256)
    """Sides are multiples of this (the model's patch size)."""

    @model_validator(mode="after")
    def _defaults_listed(self) -> DreamModel:
        if self.default_resolution not in self.resolutions:
            raise ValueError(f"default_resolution {self.default_resolution!r} is not listed")
        if self.default_duration not in self.durations:
            raise ValueError(f"default_duration {self.default_duration!r} is not listed")
        for label, side in self.resolutions.items():
            if not 8 <= side <= 8192:
                raise ValueError(f"resolution {label!r}: {side} px must be within 8..8192")
        for label, seconds in self.durations.items():
            if not 0 < seconds <= 600:
                raise ValueError(f"duration {label!r}: {seconds} s must be within (0, 600]")
        return self


def _reference() -> DreamModel:
    return DreamModel(
        model="luma-tiny",
        resolutions={"540p": 64, "720p": 96, "1080p": 128},
        durations={"5s": 5.0},
        default_resolution="540p",
        default_duration="5s",
    )


class DreamMachineConfig(Strict):
    """The ``/dream-machine/v1`` API (docs/api.md): model names and what their labels mean."""

    models: dict[str, DreamModel] = Field(
        default_factory=lambda: {"ray-2": _reference(), "ray-flash-2": _reference()}
    )
    """Dream Machine model name → our model; by default both video names serve the
    reference model, at 64-128 px and 5 s."""
