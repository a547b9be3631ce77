"""The one interface every video model implements (DESIGN.md §5).

A model worker builds a model from its class (``registry.get_model_class`` or a repository
manifest's ``module:Class`` entrypoint), calls ``load`` once per version with the local
checkpoint folder, its device and its gang's process group, then calls ``generate`` once per
job with a ``GenerationRequest`` and a step callback. The callback reports progress to the
scheduler and is the only way to stop a running generation: when it returns ``False`` the model
raises ``GenerationCancelled`` before it starts the next step.

This module imports neither torch nor numpy at run time, so the ingress and the scheduler can
validate requests against a model's ``ModelLimits`` without loading a deep-learning stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from luma_ray.errors import InvalidRequest

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import numpy
    import torch

MAX_PROMPT_CHARS = 2000
"""Longest prompt (and negative prompt) any model accepts, in characters."""

MAX_FPS = 60
"""Highest frame rate a request may ask for; the encoder writes it into the MP4 time base."""

MAX_SEED = 2**63 - 1
"""Largest seed; ``torch.Generator.manual_seed`` takes any value in ``[0, MAX_SEED]``."""


@dataclass(frozen=True)
class GenerationRequest:
    """What a worker hands the model for one job: prompt, video shape, sampler settings.

    ``frames`` is the number of frames (seconds x fps, computed by the caller); ``height`` and
    ``width`` are in pixels; ``steps`` is the number of sampler steps. The same request with the
    same seed gives the same frames on the same kind of device.
    """

    prompt: str
    negative_prompt: str = ""
    frames: int = 16
    height: int = 64
    width: int = 64
    fps: int = 8
    seed: int = 0
    steps: int = 8


class StepCallback(Protocol):
    """Called by ``VideoModel.generate`` after every sampler step (``step`` counts from 1).

    Return ``False`` to stop: the model raises ``GenerationCancelled`` before the next step.
    The worker uses it to report progress and to poll for cancellation; keep it fast.
    """

    def __call__(self, step: int, total: int) -> bool: ...


class GenerationCancelled(Exception):  # noqa: N818 - the name is the interface's contract
    """Raised by ``generate`` when the step callback returned ``False`` after step ``step``.

    The worker catches it and reports the job as cancelled; it is not a failure. Arguments go
    to ``super().__init__`` so it pickles across Ray processes.
    """

    def __init__(self, step: int, total: int) -> None:
        super().__init__(step, total)
        self.step = step
        self.total = total

    def __str__(self) -> str:
        return f"generation cancelled after step {self.step} of {self.total}"


@dataclass(frozen=True)
class ModelLimits:
    """What a model can produce; the ingress validates requests against these before queueing.

    Heights and widths must be multiples of ``size_multiple`` (the model's patch size) and at
    least ``size_multiple``; ``default_steps`` and ``default_fps`` fill requests that leave them
    out.
    """

    max_frames: int
    max_height: int
    max_width: int
    max_steps: int
    default_steps: int
    default_fps: int
    size_multiple: int


@runtime_checkable
class VideoModel(Protocol):
    """A text-to-video model as a worker sees it.

    ``load`` is called once per model version before any ``generate``; ``process_group`` is the
    gang's ``torch.distributed`` group (``None`` for a single-process worker), and every rank of
    a gang calls ``load`` and ``generate`` with the same arguments. ``generate`` returns
    ``uint8`` frames shaped ``[frames, height, width, 3]`` (RGB) on the host.
    """

    name: str
    limits: ModelLimits

    def load(
        self,
        checkpoint_dir: Path,
        device: torch.device,
        process_group: object | None = None,
    ) -> None: ...

    def generate(self, request: GenerationRequest, on_step: StepCallback) -> numpy.ndarray: ...


def validate_request(request: GenerationRequest, limits: ModelLimits) -> None:
    """Raise ``InvalidRequest`` naming everything to fix, or return if the model can run it.

    Called by the ingress before a job is queued and again by the model before it generates,
    so a bad request is refused with a 400 instead of failing on a GPU.
    """
    problems = _problems(request, limits)
    if problems:
        raise InvalidRequest("; ".join(problems))


def _problems(request: GenerationRequest, limits: ModelLimits) -> list[str]:
    """Every reason ``request`` is unacceptable, in the order a user should fix them."""
    problems: list[str] = []
    if not request.prompt.strip():
        problems.append("prompt is empty; describe the video to generate")
    texts = (("prompt", request.prompt), ("negative_prompt", request.negative_prompt))
    for field_name, text in texts:
        if len(text) > MAX_PROMPT_CHARS:
            problems.append(
                f"{field_name} has {len(text)} characters; shorten it to at most {MAX_PROMPT_CHARS}"
            )
    problems.extend(_range_problem("frames", request.frames, 1, limits.max_frames))
    for field_name, value, top in (
        ("height", request.height, limits.max_height),
        ("width", request.width, limits.max_width),
    ):
        problems.extend(_range_problem(field_name, value, limits.size_multiple, top))
        if value % limits.size_multiple:
            problems.append(
                f"{field_name} {value} is not a multiple of {limits.size_multiple}; "
                f"use for example {_nearest_multiple(value, limits.size_multiple, top)}"
            )
    problems.extend(_range_problem("steps", request.steps, 1, limits.max_steps))
    problems.extend(_range_problem("fps", request.fps, 1, MAX_FPS))
    problems.extend(_range_problem("seed", request.seed, 0, MAX_SEED))
    return problems


def _range_problem(field_name: str, value: int, low: int, high: int) -> list[str]:
    if low <= value <= high:
        return []
    return [f"{field_name} is {value}; it must be between {low} and {high}"]


def _nearest_multiple(value: int, multiple: int, top: int) -> int:
    nearest = max(multiple, round(value / multiple) * multiple)
    return min(nearest, top - top % multiple)
