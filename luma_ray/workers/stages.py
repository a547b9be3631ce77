"""Pipeline stages a stage worker runs instead of a video model (docs/pipelines.md).

A :class:`Stage` gets the job's request and the outputs of its earlier stages
(:class:`StageInputs`, read from the result store) and returns a :class:`StageResult`: files
to store next to the MP4, a caption, or a QA rejection. The built-in ones: ``qa``
(``luma_ray.models.reference.check.check(frames, prompt) -> Verdict``), ``caption``
(``luma_ray.models.reference.check.caption(frames) -> str``) and ``thumbnail`` (a thumbnail
and a spritesheet of the video). A pool may name its own with ``stage_impl: module:factory``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from luma_ray.jobs import GenerationRequest
from luma_ray.jobs.stages import CAPTION, QA, THUMBNAIL
from luma_ray.models.encode import decode_mp4, spritesheet_bytes, thumbnail_bytes
from luma_ray.storage import BlobStore

log = logging.getLogger(__name__)

CHECK_MODULE = "luma_ray.models.reference.check"
"""Where the reference QA check and captioner live: ``check(frames, prompt) -> Verdict``
(``ok``, ``reasons``) and ``caption(frames) -> str``."""


@dataclass(frozen=True)
class OutputFile:
    """One file a stage stores under the lease's result key."""

    name: str
    """File name, e.g. ``spritesheet.png``."""
    data: bytes
    content_type: str


@dataclass(frozen=True)
class StageResult:
    """What a stage returns: ``files`` by output name (``thumbnail``, ``spritesheet``), a
    ``caption``, and, for a QA stage that rejects the video, its ``rejected`` reasons."""

    files: Mapping[str, OutputFile] = field(default_factory=dict)
    caption: str | None = None
    rejected: tuple[str, ...] | None = None


class StageInputs:
    """The outputs of a job's earlier stages, read from the result store when asked."""

    def __init__(self, blobs: BlobStore, uris: Mapping[str, str]) -> None:
        self.blobs = blobs
        self.uris = dict(uris)
        self._frames: np.ndarray | None = None

    def read(self, name: str) -> bytes:
        """The bytes of output ``name`` (``video``, ``thumbnail``…); KeyError if absent."""
        uri = self.uris[name]
        base = self.blobs.uri.rstrip("/") + "/"
        if not uri.startswith(base):
            raise ValueError(f"output {name!r} is not in this result store: {uri}")
        return self.blobs.get_bytes(uri[len(base) :])

    def frames(self) -> np.ndarray:
        """The generated video decoded as ``uint8 [F, H, W, 3]`` (decoded once, in memory)."""
        if self._frames is None:
            self._frames = decode_mp4(self.read("video"))
        return self._frames


class Stage(Protocol):
    """One stage of a pipeline: the request and the earlier outputs in, a result out."""

    name: str

    def run(self, request: GenerationRequest, inputs: StageInputs) -> StageResult: ...


def _reference(module: str, attr: str) -> Callable[..., Any] | None:
    """``attr`` of the reference check module, or None while it is not installed (it is
    another branch's work): the stage then passes every video and writes no caption, with a
    warning, so the default pipeline does not stop generation."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not module.startswith(err.name):
            raise  # the module is there but one of its own imports is missing
        log.warning("%s is not installed: the %s stage lets every video through", module, attr)
        return None
    return getattr(found, attr)  # type: ignore[no-any-return]


class QualityCheck:
    """QA: ``check(frames, prompt)``'s verdict; a rejected video goes back to generate.

    Only what the check can judge is judged: a prompt outside its grammar (the verdict's
    ``expected`` scene is None, as the reference check answers) and a job conditioned on the
    user's own images or video (their colours and layout decide the frames, not the prompt
    alone) pass as they are."""

    name = QA

    def __init__(
        self, check: Callable[[np.ndarray, str], Any] | None = None, module: str = CHECK_MODULE
    ) -> None:
        self.check = check
        self.module = module

    def run(self, request: GenerationRequest, inputs: StageInputs) -> StageResult:
        check = self.check or _reference(self.module, "check")
        if check is None or request.inputs is not None:
            return StageResult()
        verdict = check(inputs.frames(), request.prompt)
        if verdict.ok or getattr(verdict, "expected", True) is None:
            return StageResult()
        return StageResult(rejected=tuple(str(r) for r in verdict.reasons) or ("rejected",))


class Captioner:
    """Caption: ``caption(frames)`` into the job's result."""

    name = CAPTION

    def __init__(
        self, caption: Callable[[np.ndarray], str] | None = None, module: str = CHECK_MODULE
    ) -> None:
        self.caption = caption
        self.module = module

    def run(self, request: GenerationRequest, inputs: StageInputs) -> StageResult:
        caption = self.caption or _reference(self.module, "caption")
        if caption is None:
            return StageResult()
        return StageResult(caption=str(caption(inputs.frames())))


class Thumbnailer:
    """Thumbnail: the middle frame (PNG) and a spritesheet (a grid of frames, PNG)."""

    name = THUMBNAIL

    def run(self, request: GenerationRequest, inputs: StageInputs) -> StageResult:
        frames = inputs.frames()
        thumb, sheet = thumbnail_bytes(frames), spritesheet_bytes(frames)
        return StageResult(
            files={
                "thumbnail": OutputFile("thumbnail.png", thumb, "image/png"),
                "spritesheet": OutputFile("spritesheet.png", sheet, "image/png"),
            }
        )


BUILT_IN: dict[str, Callable[[], Stage]] = {
    QA: QualityCheck,
    CAPTION: Captioner,
    THUMBNAIL: Thumbnailer,
}


def load_stage(stage: str, impl: str | None = None) -> Stage:
    """The stage to run: ``impl`` (``module:factory``, from the operator's pool config) or
    the built-in one for ``stage``."""
    if impl is None:
        if stage not in BUILT_IN:
            raise ValueError(f"no built-in stage {stage!r}; use one of {sorted(BUILT_IN)}")
        return BUILT_IN[stage]()
    module, _, attr = impl.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    made: Stage = factory()
    return made
