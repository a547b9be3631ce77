"""The one interface every video model implements (docs/models.md).

A model worker builds a model from its class (``registry.get_model_class`` or a repository
manifest's ``module:Class`` entrypoint), calls ``load`` once per version with the local
checkpoint folder, its device and its gang's process group, then calls ``generate`` once per
job with a ``GenerationRequest`` and a step callback. The callback reports progress to the
scheduler and is the only way to stop a running generation: when it returns ``False`` the model
raises ``GenerationCancelled`` before it starts the next step.

Parking (optional): a model whose class sets ``can_park = True`` also stops when the callback
returns :data:`PARK`, raising ``GenerationParked`` with its sampler state as bytes, and takes
``generate(request, on_step, resume=state)`` to go on from that step; the result equals an
unparked run. A model without the flag never parks: ``PARK`` is truthy, so it reads as "go on".

The request and the limits live in ``luma_ray.jobs.request`` (the scheduler validates against
them without importing any model code); they are re-exported here for model authors. This
module imports neither torch nor numpy at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

from luma_ray.jobs.request import (
    DEFAULT_FRAMES,
    INPUT_KINDS,
    MAX_FPS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    GenerationInputs,
    GenerationRequest,
    ModelLimits,
    validate_request,
)

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import numpy
    import torch

__all__ = [
    "DEFAULT_FRAMES",
    "INPUT_KINDS",
    "MAX_FPS",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "PARK",
    "Conditioning",
    "GenerationCancelled",
    "GenerationInputs",
    "GenerationParked",
    "GenerationRequest",
    "ParkedStateInvalid",
    "ModelLimits",
    "StepAnswer",
    "StepCallback",
    "VideoModel",
    "can_park",
    "validate_request",
]


PARK: Final = "park"
"""What a step callback returns to park the job at this step boundary (models with
``can_park``); any other truthy answer, or ``None``, goes on; ``False`` cancels."""

StepAnswer = bool | Literal["park"] | None


class StepCallback(Protocol):
    """Called by ``VideoModel.generate`` after every sampler step (``step`` counts from 1).

    Return ``False`` to stop: the model raises ``GenerationCancelled`` before the next step.
    Return :data:`PARK` to park (a model with ``can_park``): it raises ``GenerationParked``.
    The worker uses it to report progress and to poll for cancellation; keep it fast.
    """

    def __call__(self, step: int, total: int) -> StepAnswer: ...


@dataclass(frozen=True)
class Conditioning:
    """A request's inputs, decoded by the worker, for ``generate(..., conditioning=...)``.

    Every array is ``uint8`` RGB at the request's ``height`` x ``width``: ``first_frame`` and
    ``last_frame`` are ``[H, W, 3]``, ``source_video`` is ``[request.frames, H, W, 3]`` (the
    worker resamples the source's frames to the request's count). Extending a video arrives as
    ``first_frame`` (the previous video's last frame) with ``extended`` set. ``strength`` goes
    with ``source_video``: 0 keeps the source, 1 ignores it. A model receives only the kinds it
    lists in ``limits.inputs`` (the scheduler refuses the others at intake).
    """

    first_frame: numpy.ndarray | None = None
    last_frame: numpy.ndarray | None = None
    source_video: numpy.ndarray | None = None
    strength: float | None = None
    extended: bool = False


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


class GenerationParked(Exception):  # noqa: N818 - the name is the interface's contract
    """Raised by ``generate`` when the step callback returned :data:`PARK` after step ``step``.

    ``state`` is the sampler state after that step (the model's own format, e.g. safetensors
    bytes): ``generate(request, on_step, resume=state)`` goes on from step ``step + 1`` and
    gives the frames an unparked run gives. The worker stores it and the job is queued again;
    it is not a failure. Pickles across Ray processes.
    """

    def __init__(self, step: int, total: int, state: bytes) -> None:
        super().__init__(step, total, state)
        self.step = step
        self.total = total
        self.state = state

    def __str__(self) -> str:
        return f"generation parked after step {self.step} of {self.total}"


class ParkedStateInvalid(ValueError):
    """``generate(..., resume=state)`` got a state it cannot resume from (another request,
    another model, a damaged blob). The worker runs the job again from its first step."""


def can_park(model: object) -> bool:
    """Whether ``model`` parks on :data:`PARK` and resumes (its ``can_park`` flag)."""
    return bool(getattr(model, "can_park", False))


@runtime_checkable
class VideoModel(Protocol):
    """A text-to-video model as a worker sees it.

    ``load`` is called once per model version before any ``generate``; ``process_group`` is the
    gang's ``torch.distributed`` group (``None`` for a single-process worker), and every rank of
    a gang calls ``load`` and ``generate`` with the same arguments. ``generate`` returns
    ``uint8`` frames shaped ``[frames, height, width, 3]`` (RGB) on the host.

    A model that can park sets ``can_park = True`` and takes ``resume`` (a
    ``GenerationParked.state``) as a keyword argument of ``generate``; others need neither.
    A model that lists input kinds in ``limits.inputs`` takes ``conditioning`` (a
    :class:`Conditioning`) as a keyword argument; the worker passes it only to requests
    that carry inputs.
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
