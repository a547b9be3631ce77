"""The one interface every video model implements (docs/models.md).

A model worker builds a model from its class (``registry.get_model_class`` or a repository
manifest's ``module:Class`` entrypoint), calls ``load`` once per version with the local
checkpoint folder, its device and its gang's process group, then calls ``generate`` once per
job with a ``GenerationRequest`` and a step callback. The callback reports progress to the
scheduler and is the only way to stop a running generation: when it returns ``False`` the model
raises ``GenerationCancelled`` before it starts the next step.

The request and the limits live in ``luma_ray.jobs.request`` (the scheduler validates against
them without importing any model code); they are re-exported here for model authors. This
module imports neither torch nor numpy at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from luma_ray.jobs.request import (
    DEFAULT_FRAMES,
    MAX_FPS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    GenerationRequest,
    ModelLimits,
    validate_request,
)

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import numpy
    import torch

__all__ = [
    "DEFAULT_FRAMES",
    "MAX_FPS",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "GenerationCancelled",
    "GenerationRequest",
    "ModelLimits",
    "StepCallback",
    "VideoModel",
    "validate_request",
]


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
