"""``DiffusersVideoModel``: any diffusers video pipeline folder as a luma_ray model version.

A version folder's ``model.yaml`` names ``entrypoint: luma_ray.models.diffusers:
DiffusersVideoModel``, ``params`` (the keyword arguments of :class:`DiffusersVideoModel`) and
``limits``; ``checkpoints/<pipeline>/`` holds a diffusers ``save_pretrained`` folder. The
worker builds the model from ``params``, calls ``load`` with the verified local
``checkpoints/`` folder, then ``generate`` per job (docs/models.md, "Serving a diffusers
pipeline").

- Text-to-video runs the folder's pipeline class; a request with ``conditioning.first_frame``
  runs ``image_pipeline_class``, built with ``from_pipe`` on the same components (Wan 2.2
  TI2V, LTX-Video), or the folder's class itself when that is an image-to-video class.
- Progress: ``callback_on_step_end`` calls ``on_step(step, total)`` after every step; a
  ``False`` answer sets ``pipe._interrupt`` and raises ``GenerationCancelled`` at once.
- Parking: see ``parking.py``; a resumed run equals an unparked one bit for bit on CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from luma_ray.errors import ConfigError, InvalidRequest
from luma_ray.jobs.request import limits_from_yaml
from luma_ray.models.diffusers.families import Family, family_of
from luma_ray.models.diffusers.parking import (
    FastForward,
    pack_state,
    restore_scheduler,
    scheduler_state,
    unpack_state,
)
from luma_ray.models.interface import (
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ModelLimits,
    StepCallback,
    validate_request,
)

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OFFLOAD = ("none", "model", "sequential")
IMAGE_KINDS = ("first_frame", "extend_video")


def default_limits(family: Family) -> ModelLimits:
    """Limits of a folder whose version has no ``model.yaml`` limits (tests, notebooks)."""
    return ModelLimits(
        max_frames=16 * family.frame_step + 1,
        max_height=720,
        max_width=1280,
        max_steps=50,
        default_steps=30,
        default_fps=16,
        size_multiple=family.size_multiple,
        default_frames=4 * family.frame_step + 1,
        frame_step=family.frame_step,
    )


UNLOADED_LIMITS = ModelLimits(
    max_frames=1,
    max_height=16,
    max_width=16,
    max_steps=1,
    default_steps=1,
    default_fps=8,
    size_multiple=16,
    default_frames=1,
)
"""The class's limits before ``load`` (the registry checks the class has some); ``load``
replaces them with the version's ``model.yaml`` limits."""


class DiffusersVideoModel:
    """A diffusers video pipeline behind the ``VideoModel`` interface (module docstring)."""

    name: str = "diffusers-video"
    limits: ModelLimits = UNLOADED_LIMITS
    can_park = True

    def __init__(
        self,
        name: str = "diffusers-video",
        pipeline: str = "pipeline",
        pipeline_class: str | None = None,
        image_pipeline_class: str | None = None,
        dtype: str = "auto",
        vae_dtype: str | None = None,
        attention_backend: str | None = None,
        cpu_offload: str = "none",
        vae_tiling: bool = False,
        guidance_scale: float | None = None,
        max_sequence_length: int | None = None,
    ) -> None:
        for what, value, known in (
            ("dtype", dtype, ("auto", *DTYPES)),
            ("vae_dtype", vae_dtype, (None, *DTYPES)),
            ("cpu_offload", cpu_offload, OFFLOAD),
        ):
            if value not in known:
                raise ConfigError(f"params.{what} is {value!r}; use one of {list(known)}")
        if Path(pipeline).is_absolute() or ".." in Path(pipeline).parts:
            raise ConfigError(f"params.pipeline {pipeline!r} must be a folder under checkpoints/")
        self.name = name
        self._subfolder = pipeline
        self._class_name = pipeline_class
        self._image_class_name = image_pipeline_class
        self._dtype, self._vae_dtype = dtype, vae_dtype
        self._attention_backend = attention_backend
        self._offload, self._vae_tiling = cpu_offload, bool(vae_tiling)
        self._guidance = guidance_scale
        self._max_sequence_length = max_sequence_length
        self._pipe: Any = None
        self._image_pipe: Any = None
        self._family: Family | None = None

    # -- loading -------------------------------------------------------------------------------

    @property
    def pipeline(self) -> Any:
        """The loaded text-to-video (or only) pipeline; tests hook its transformer."""
        if self._pipe is None:
            raise RuntimeError(f"{self.name} is not loaded; call load(checkpoint_dir, device)")
        return self._pipe

    def load(
        self, checkpoint_dir: Path, device: torch.device, process_group: object | None = None
    ) -> None:
        """Load ``checkpoint_dir/<pipeline>`` onto ``device``; ``ConfigError`` naming the fix.

        ``process_group``: every rank of a gang loads the whole pipeline and computes the
        same frames (no sharding yet); rank 0's are stored.
        """
        import diffusers

        folder = Path(checkpoint_dir) / self._subfolder
        index = folder / "model_index.json"
        if not index.is_file():
            raise ConfigError(
                f"{index} is missing: checkpoints/{self._subfolder}/ must hold a diffusers "
                "save_pretrained folder (or set params.pipeline to the folder that does)"
            )
        class_name = self._class_name or str(json.loads(index.read_text())["_class_name"])
        family = family_of(class_name)
        cls = getattr(diffusers, class_name, None)
        if family is None or cls is None:
            raise ConfigError(
                f"pipeline class {class_name!r} is not supported; use one of "
                f"{sorted(k for k in _known_classes() if hasattr(diffusers, k))}"
            )
        device = torch.device(device)
        dtype = self._torch_dtype(device)
        pipe = cls.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        if self._vae_dtype is not None:
            pipe.vae.to(DTYPES[self._vae_dtype])
        if self._attention_backend:
            for module in _transformers(pipe):
                setter: Any = module.set_attention_backend
                setter(self._attention_backend)
        if self._vae_tiling:
            pipe.vae.enable_tiling()
        if self._offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif self._offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        image_pipe = None
        if self._image_class_name:
            image_family = family_of(self._image_class_name)
            image_cls = getattr(diffusers, self._image_class_name, None)
            if image_cls is None or image_family is None or not image_family.takes_image:
                raise ConfigError(
                    f"params.image_pipeline_class {self._image_class_name!r} is not an "
                    f"image-to-video class luma_ray knows; for {class_name} use "
                    f"{family.image_class}"
                )
            image_pipe = image_cls.from_pipe(pipe)
            image_pipe.set_progress_bar_config(disable=True)
        self._pipe, self._image_pipe, self._family = pipe, image_pipe, family
        self.limits = self._read_limits(Path(checkpoint_dir), family)
        logger.info("loaded %s (%s) from %s on %s", self.name, class_name, folder, device)

    def _torch_dtype(self, device: torch.device) -> torch.dtype:
        if self._dtype == "auto":
            return torch.bfloat16 if device.type == "cuda" else torch.float32
        return DTYPES[self._dtype]

    def _read_limits(self, checkpoint_dir: Path, family: Family) -> ModelLimits:
        """``limits`` of the version's ``model.yaml`` (next to ``checkpoints/``), checked
        against the family's rules; the family's defaults without one."""
        path = checkpoint_dir.parent / "model.yaml"
        fields = None
        if path.is_file():
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            fields = doc.get("limits") if isinstance(doc, dict) else None
        limits = limits_from_yaml(fields, str(path)) if fields else default_limits(family)
        if limits.size_multiple % family.size_multiple:
            raise ConfigError(
                f"{path}: limits.size_multiple {limits.size_multiple} must be a multiple of "
                f"{family.size_multiple} for {family.name}"
            )
        if limits.frame_step == 1:
            limits = replace(limits, frame_step=family.frame_step)
        elif limits.frame_step % family.frame_step:
            raise ConfigError(
                f"{path}: limits.frame_step must be a multiple of {family.frame_step}"
            )
        can_image = self._image_pipe is not None or family.takes_image
        wants_image = [kind for kind in limits.inputs if kind in IMAGE_KINDS]
        others = [kind for kind in limits.inputs if kind not in IMAGE_KINDS]
        if others or (wants_image and not can_image):
            raise ConfigError(
                f"{path}: limits.inputs {list(limits.inputs)} are more than this pipeline "
                f"takes; it takes {list(IMAGE_KINDS) if can_image else []} "
                "(set params.image_pipeline_class for first frames)"
            )
        return limits

    # -- generating ----------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        on_step: StepCallback,
        resume: bytes | None = None,
        conditioning: Conditioning | None = None,
    ) -> np.ndarray:
        """Frames ``uint8 [frames, height, width, 3]`` for ``request`` (module docstring)."""
        pipe = self.pipeline
        family, limits = self._family, self.limits
        assert family is not None
        validate_request(request, limits)
        image = self._image(request, conditioning)
        if image is not None and not family.takes_image:
            pipe = self._image_pipe
        elif image is None and family.takes_image:
            raise InvalidRequest(
                "this model makes video from an image: give first_frame (or extend_video)"
            )
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        fingerprint = self._fingerprint(request, image)
        parked = None if resume is None else unpack_state(resume, fingerprint, request.steps)
        forward = FastForward(_transformers(pipe), family.channel_dim)

        def callback(p: Any, index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            step = index + 1
            if parked is not None and step <= parked["step"]:
                if step == parked["step"]:  # the boundary: the real run goes on from here
                    forward.stop()
                    latents = kwargs["latents"]
                    restore_scheduler(p.scheduler, parked["scheduler"], latents.device)
                    generator.set_state(parked["generator"])
                    kwargs["latents"] = parked["latents"].to(latents.device, latents.dtype)
                return kwargs
            answer = on_step(step, request.steps)
            if isinstance(answer, str) and answer == PARK:
                p._interrupt = True
                state = pack_state(
                    step=step,
                    fingerprint=fingerprint,
                    latents=kwargs["latents"],
                    scheduler=scheduler_state(p.scheduler),
                    generator=generator,
                )
                raise GenerationParked(step, request.steps, state)
            if not (answer is None or bool(answer)):
                p._interrupt = True
                raise GenerationCancelled(step, request.steps)
            return kwargs

        args = self._call_args(pipe, request, image, generator)
        try:
            if parked is not None:
                forward.__enter__()
            output = pipe(**args, callback_on_step_end=callback)
        except (GenerationCancelled, GenerationParked):
            pipe.maybe_free_model_hooks()
            raise
        finally:
            forward.stop()
        return _to_uint8(output.frames, request)

    def _image(self, request: GenerationRequest, conditioning: Conditioning | None) -> Any:
        """The first frame as a PIL image (checked to be ``uint8 [H, W, 3]``), or ``None``."""
        frame = None if conditioning is None else conditioning.first_frame
        if frame is None:
            return None
        from PIL import Image

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (request.height, request.width, 3):
            raise InvalidRequest(
                f"first_frame must be uint8 RGB [{request.height}, {request.width}, 3], "
                f"not {frame.dtype} {list(frame.shape)}"
            )
        return Image.fromarray(frame)

    def _call_args(
        self, pipe: Any, request: GenerationRequest, image: Any, generator: torch.Generator
    ) -> dict[str, Any]:
        import inspect

        assert self._family is not None
        accepts = inspect.signature(pipe.__call__).parameters
        args: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "height": request.height,
            "width": request.width,
            "num_frames": request.frames,
            "num_inference_steps": request.steps,
            "guidance_scale": self._guidance_scale(),
            "generator": generator,
            "output_type": "np",
        }
        if image is not None:
            args["image"] = image
        if "frame_rate" in accepts:
            args["frame_rate"] = request.fps
        if self._max_sequence_length is not None:
            args["max_sequence_length"] = self._max_sequence_length
        return args

    def _guidance_scale(self) -> float:
        assert self._family is not None
        return float(self._guidance if self._guidance is not None else self._family.guidance_scale)

    def _fingerprint(self, request: GenerationRequest, image: Any) -> str:
        """What a parked state depends on: the request, the pipeline and the first frame."""
        image_hash = hashlib.sha256(image.tobytes()).hexdigest() if image is not None else None
        fields = [
            self._class_name or type(self.pipeline).__name__,
            request.prompt,
            request.negative_prompt,
            request.frames,
            request.height,
            request.width,
            request.fps,
            request.seed,
            request.steps,
            self._guidance_scale(),
            self._max_sequence_length,
            image_hash,
        ]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _known_classes() -> list[str]:
    from luma_ray.models.diffusers.families import FAMILIES

    return list(FAMILIES)


def _transformers(pipe: Any) -> list[torch.nn.Module]:
    """The pipeline's denoisers (Wan 2.2 A14B has two)."""
    found = [getattr(pipe, name, None) for name in ("transformer", "transformer_2")]
    return [module for module in found if module is not None]


def _to_uint8(frames: Any, request: GenerationRequest) -> np.ndarray:
    """The pipeline's ``np`` output (floats in [0, 1], ``[1, F, H, W, 3]``) as ``uint8``."""
    video = np.asarray(frames)[0]
    expected = (request.frames, request.height, request.width, 3)
    if video.shape != expected:
        raise RuntimeError(f"the pipeline returned frames {video.shape}, expected {expected}")
    pixels: np.ndarray = np.clip(np.round(video * 255.0), 0, 255).astype(np.uint8)
    return pixels
