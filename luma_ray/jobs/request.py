"""The one generation request, from the API's intake to the model, and the limits it must meet.

A client's ``SubmitRequest`` (``luma_ray.scheduler.protocol``) is validated once, at intake in
the scheduler (``luma_ray.scheduler.intake``), into a :class:`GenerationRequest` with every
default resolved. The job keeps it, the journal stores it, a worker's ``Assignment`` carries it
and the model's ``generate`` receives it: one shape from intake to the model.

Pure: no torch, numpy or Ray, so the ingress and the scheduler can validate requests against a
model's :class:`ModelLimits` without loading a deep-learning stack.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from luma_ray.errors import ConfigError, InvalidRequest

MAX_PROMPT_CHARS = 2000
"""Longest prompt (and negative prompt) any model accepts, in characters."""

MAX_FPS = 60
"""Highest frame rate a request may ask for; the encoder writes it into the MP4 time base."""

MAX_SEED = 2**63 - 1
"""Largest seed; ``torch.Generator.manual_seed`` takes any value in ``[0, MAX_SEED]``."""


DEFAULT_FRAMES = 16
"""Frames of a request that gives neither frames nor seconds, unless a model says otherwise."""

DEFAULT_STEPS = 8
"""Sampler steps of a model that does not say otherwise."""

NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""Model and version names: lower case, digits, '.', '_', '-'; at most 63 characters."""
_NAME = re.compile(NAME_RE)


def validate_name(value: object, *, what: str = "model name") -> str:
    """Return ``value`` if it matches :data:`NAME_RE`; ``InvalidRequest`` naming the rule if not."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidRequest(
            f"{what} {value!r} is invalid: use 1-63 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit (no slashes, no upper case)"
        )
    return value


INPUT_KINDS = ("first_frame", "last_frame", "source_video", "extend_video")
"""What a request can be conditioned on besides its prompt. A model lists the kinds it takes in
:attr:`ModelLimits.inputs`; a request that uses another kind is refused at intake."""


@dataclass(frozen=True)
class GenerationInputs:
    """Media a request is conditioned on, as keys of blobs already in the blob store.

    The ingress checks every input (decodable, size, frame count) and stores it under the
    tenant before the job is queued; the worker reads the blobs and decodes them into the
    model's ``Conditioning`` (``luma_ray.models.interface``), at the request's size.

    - ``first_frame`` / ``last_frame``: an image the video starts / ends on (image-to-video,
      interpolation when both are given).
    - ``source_video`` with ``strength``: video-to-video; the source is noised to ``strength``
      (0 keeps it, 1 ignores it) and denoised under the prompt.
    - ``extend_video``: the video this one continues (a previous generation's result); its
      last frame becomes the first frame. Not together with ``first_frame``.
    """

    first_frame: str | None = None
    last_frame: str | None = None
    source_video: str | None = None
    strength: float | None = None
    extend_video: str | None = None

    def kinds(self) -> tuple[str, ...]:
        """The input kinds (of :data:`INPUT_KINDS`) this request uses."""
        return tuple(kind for kind in INPUT_KINDS if getattr(self, kind) is not None)


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What a worker hands the model for one job: prompt, video shape, sampler settings.

    ``frames`` is the number of frames (seconds x fps, computed by the caller); ``height`` and
    ``width`` are in pixels; ``steps`` is the number of sampler steps. The same request with the
    same seed gives the same frames on the same kind of device.
    """

    prompt: str
    negative_prompt: str = ""
    frames: int = DEFAULT_FRAMES
    height: int = 64
    width: int = 64
    fps: int = 8
    seed: int = 0
    steps: int = DEFAULT_STEPS
    inputs: GenerationInputs | None = None
    """Images or videos the generation is conditioned on; ``None`` for text-to-video."""


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
    default_frames: int = DEFAULT_FRAMES
    """Frames of a request that gives neither ``frames`` nor ``seconds``."""
    inputs: tuple[str, ...] = ()
    """The input kinds (of :data:`INPUT_KINDS`) the model takes; text-to-video only if empty."""
    frame_step: int = 1
    """Frame counts must be ``frame_step * k + 1`` (a video VAE's temporal compression: 4 for
    Wan, 8 for LTX-Video); 1 takes any count."""


def limits_from_yaml(fields: Mapping[str, object], where: str) -> ModelLimits:
    """``ModelLimits`` from a model.yaml ``limits`` mapping; ``ConfigError`` naming ``where``
    and the fix when a field is unknown, missing or of the wrong type."""
    names = {f.name for f in dataclasses.fields(ModelLimits)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown limits {unknown}; known: {sorted(names)}")
    values: dict[str, object] = {}
    for name, value in fields.items():
        if name == "inputs":
            kinds = tuple(value) if isinstance(value, list | tuple) else None
            if kinds is None or any(kind not in INPUT_KINDS for kind in kinds):
                raise ConfigError(f"{where}: limits.inputs must be a list of {list(INPUT_KINDS)}")
            values[name] = kinds
        elif isinstance(value, int) and not isinstance(value, bool):
            values[name] = value
        else:
            raise ConfigError(f"{where}: limits.{name} must be a whole number, not {value!r}")
    try:
        return ModelLimits(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"{where}: limits are incomplete ({exc})") from None


def validate_request(request: GenerationRequest, limits: ModelLimits) -> None:
    """Raise ``InvalidRequest`` naming everything to fix, or return if the model can run it.

    Intake (``scheduler.intake``) calls it once for every submit, before anything is queued, so
    a bad request is refused with a 400 instead of failing on a GPU. The reference model also
    checks what it is handed when called directly (a notebook, a test), outside the scheduler.
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
    problems.extend(_frame_step_problem(request.frames, limits))
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
    if request.inputs is not None:
        problems.extend(_input_problems(request.inputs, limits))
    return problems


def _input_problems(inputs: GenerationInputs, limits: ModelLimits) -> list[str]:
    """Inputs the model cannot take, and inputs that contradict each other."""
    problems: list[str] = []
    for kind in inputs.kinds():
        if kind not in limits.inputs:
            takes = ", ".join(limits.inputs) or "no image or video inputs (text-to-video only)"
            problems.append(f"{kind} is not supported by this model; it takes {takes}")
    if inputs.first_frame is not None and inputs.extend_video is not None:
        problems.append(
            "give first_frame or extend_video, not both: extending starts the "
            "video on the previous video's last frame"
        )
    if inputs.source_video is not None:
        if inputs.strength is None or not 0.0 < inputs.strength <= 1.0:
            problems.append(
                f"strength is {inputs.strength}; with source_video give a strength "
                "greater than 0 and at most 1 (how far to move from the source)"
            )
    elif inputs.strength is not None:
        problems.append("strength applies to source_video only; remove it or add source_video")
    return problems


def _frame_step_problem(frames: int, limits: ModelLimits) -> list[str]:
    step = limits.frame_step
    if step <= 1 or (frames - 1) % step == 0:
        return []
    below = max(1, (frames - 1) // step * step + 1)
    above = below + step
    options = [n for n in (below, above) if n <= limits.max_frames] or [below]
    use = " or ".join(str(n) for n in options)
    return [f"frames {frames} does not fit this model: it takes {step}k+1 frames; use {use}"]


def _range_problem(field_name: str, value: int, low: int, high: int) -> list[str]:
    if low <= value <= high:
        return []
    return [f"{field_name} is {value}; it must be between {low} and {high}"]


def _nearest_multiple(value: int, multiple: int, top: int) -> int:
    nearest = max(multiple, round(value / multiple) * multiple)
    return min(nearest, top - top % multiple)
