"""``luma-tiny``: the reference text-to-video model, its checkpoints and its sampler.

A worker builds ``LumaTiny()`` (through ``registry.get_model_class("luma-tiny")``), calls
``load(checkpoint_dir, device, process_group)`` once, then ``generate(request, on_step)`` per
job. ``make_checkpoint`` writes the deterministic random weights that stand in for training
(``model.safetensors`` + ``config.json``); tests, the quickstart and the model repository's
first version all use it, and ``load`` reads the files back like any other checkpoint.

Sampling is rectified flow: ``x_t = (1 - t) * x_0 + t * noise``. The network predicts ``x_0``
(so the velocity is ``(x_t - x_0) / t`` and the last step lands on the prediction), and
``steps`` Euler steps go from ``t = 1`` (noise from a CPU ``torch.Generator`` seeded with the
request's seed) to ``t = 0``, with classifier-free guidance against the negative prompt. Pixels
in ``[-1, 1]`` are mapped to ``uint8`` RGB.

Parking (``can_park``): when the step callback answers ``PARK`` after step ``k``, the latent
after step ``k`` (the whole video: a gang gathers its frames first) goes into
``GenerationParked.state`` as safetensors bytes, with ``k`` and a fingerprint of the request;
``generate(request, on_step, resume=state)`` runs steps ``k + 1`` onwards from it. Every step
depends only on the latent and ``k``, so the result is the unparked run's, bit for bit. A gang
of any size resumes any state (each rank takes its frames of the whole latent).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save, save_file

from luma_ray.errors import ConfigError
from luma_ray.models.interface import (
    PARK,
    Conditioning,
    GenerationCancelled,
    GenerationParked,
    GenerationRequest,
    ModelLimits,
    ParkedStateInvalid,
    StepCallback,
    validate_request,
)
from luma_ray.models.reference.guide import Guide
from luma_ray.models.reference.network import (
    FrameGather,
    LumaTinyNet,
    NetworkConfig,
    init_weights,
    local_token_slice,
    parameter_count,
)
from luma_ray.models.reference.text import token_batch

logger = logging.getLogger(__name__)

MODEL_NAME = "luma-tiny"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_GUIDANCE_SCALE = 3.0
PARKED_FORMAT = f"{MODEL_NAME}/parked/1"

LIMITS = ModelLimits(
    max_frames=48,
    max_height=128,
    max_width=128,
    max_steps=50,
    default_steps=4,
    default_fps=8,
    size_multiple=8,
    default_frames=8,
    inputs=("first_frame", "last_frame", "source_video", "extend_video"),
)


def make_checkpoint(
    checkpoint_dir: Path,
    seed: int = 0,
    network: NetworkConfig | None = None,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
) -> Path:
    """Write ``checkpoint_dir/model.safetensors`` and ``config.json``; return ``checkpoint_dir``.

    The weights come from ``init_weights(seed)``, so the same arguments give byte-identical
    files on every machine. Called by tests, the quickstart and whoever publishes the first
    ``luma-tiny`` version to the model repository.
    """
    cfg = network or NetworkConfig()
    net = LumaTinyNet(cfg)
    init_weights(net, seed)
    return save_checkpoint(net, checkpoint_dir, guidance_scale, {"init_seed": seed})


def save_checkpoint(
    net: LumaTinyNet,
    checkpoint_dir: Path,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    about: dict[str, Any] | None = None,
) -> Path:
    """Write ``net``'s weights and ``config.json`` (with ``about``'s extra keys) to
    ``checkpoint_dir``, the format ``load`` reads; called by ``make_checkpoint`` and train.py."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    # One metadata key only: safetensors writes a map's keys in no fixed order, and the same
    # seed must give the same bytes.
    metadata = {"format": f"{MODEL_NAME}/{FORMAT_VERSION}"}
    save_file(tensors, str(checkpoint_dir / WEIGHTS_FILE), metadata=metadata)
    config = {
        **(about or {}),
        "model": MODEL_NAME,
        "format_version": FORMAT_VERSION,
        "guidance_scale": guidance_scale,
        "network": net.cfg.to_dict(),
    }
    (checkpoint_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return checkpoint_dir


class LumaTiny:
    """The reference model behind the ``VideoModel`` interface (see the module docstring)."""

    name = MODEL_NAME
    limits = LIMITS
    can_park = True

    def __init__(self) -> None:
        self._net: LumaTinyNet | None = None
        self._device = torch.device("cpu")
        self._guidance_scale = DEFAULT_GUIDANCE_SCALE
        self._time_shift = 1.0
        self._rank, self._world = 0, 1
        self._group: object | None = None

    @property
    def network(self) -> LumaTinyNet:
        """The loaded network (read-only use: tests compare its parameters)."""
        if self._net is None:
            raise RuntimeError("luma-tiny is not loaded; call load(checkpoint_dir, device) first")
        return self._net

    def load(
        self,
        checkpoint_dir: Path,
        device: torch.device,
        process_group: object | None = None,
    ) -> None:
        """Read ``config.json`` and ``model.safetensors`` from ``checkpoint_dir`` onto ``device``.

        Raises ``ConfigError`` naming the file and the fix when the folder is not a luma-tiny
        checkpoint. ``process_group`` is the gang's group: every rank loads the full weights
        (the model is small) and computes its own frames (sequence parallelism, network.py).
        """
        checkpoint_dir = Path(checkpoint_dir)
        config = _read_config(checkpoint_dir / CONFIG_FILE)
        cfg = NetworkConfig.from_dict(config["network"])
        net = LumaTinyNet(cfg)
        weights_path = checkpoint_dir / WEIGHTS_FILE
        if not weights_path.is_file():
            raise ConfigError(f"{weights_path} is missing; write it with make_checkpoint()")
        try:
            net.load_state_dict(load_file(str(weights_path), device="cpu"), strict=True)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"{weights_path} does not match {CONFIG_FILE}: {exc}") from exc
        self._device = torch.device(device)
        self._net = net.to(self._device).eval().requires_grad_(False)
        self._guidance_scale = float(config.get("guidance_scale", DEFAULT_GUIDANCE_SCALE))
        self._time_shift = float(config.get("time_shift", 1.0))
        self._rank, self._world = _rank_and_world(process_group)
        self._group = process_group
        logger.info(
            "loaded %s from %s on %s: %d parameters, rank %d of %d",
            MODEL_NAME,
            checkpoint_dir,
            self._device,
            parameter_count(net),
            self._rank,
            self._world,
        )

    def generate(
        self,
        request: GenerationRequest,
        on_step: StepCallback,
        resume: bytes | None = None,
        conditioning: Conditioning | None = None,
    ) -> np.ndarray:
        """Frames ``uint8 [frames, height, width, 3]`` for ``request``; called by the worker.

        Calls ``on_step(step, total)`` after every sampler step; when it returns ``False``
        raises ``GenerationCancelled`` before the next step, when it returns ``PARK`` raises
        ``GenerationParked`` with the sampler state. ``resume`` (such a state) goes on from
        its step; ``ParkedStateInvalid`` if it is not a state of this request.
        ``InvalidRequest`` if the request is outside ``limits``. The same request gives the
        same frames, bit for bit, on the same device type and thread count, parked or not.
        ``conditioning`` (first/last frame, source video, extension) works as guide.py says.
        """
        validate_request(request, self.limits)
        net = self.network
        guide = Guide.of(conditioning, request)
        with torch.inference_mode():
            video = self._sample(net, request, on_step, resume, guide)
        return _to_uint8(video)

    def _sample(
        self,
        net: LumaTinyNet,
        request: GenerationRequest,
        on_step: StepCallback,
        resume: bytes | None,
        guide: Guide,
    ) -> torch.Tensor:
        """Euler steps of rectified flow with classifier-free guidance; ``[F, C, H, W]``."""
        cfg = net.cfg
        prompts = [request.prompt, request.negative_prompt]
        ids, mask = token_batch(prompts, cfg.vocab_size, cfg.max_text_tokens)
        ids, mask = ids.to(self._device), mask.to(self._device)
        text, pooled = net.text(ids, mask)
        shape = (1, request.frames, cfg.channels, request.height, request.width)
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        noise = torch.randn(shape, generator=generator)  # the same noise on every rank
        times = torch.linspace(1.0, 0.0, request.steps + 1)
        if self._time_shift != 1.0:  # more of the steps at high noise, where layout is decided
            times = self._time_shift * times / (1 + (self._time_shift - 1) * times)
        done = guide.start(times)
        clean = bool(cfg.given_frames)  # given frames go in clean and flagged, not noised
        if resume is None:
            x = guide.begin(noise, times[done], clean)
        else:
            done, x = self._unpark(resume, request, shape, guide)
        x, noise, times = x.to(self._device), noise.to(self._device), times.to(self._device)
        first, gather = 0, None
        if self._world > 1 and request.frames >= self._world:
            mine = local_token_slice(self._rank, self._world, request.frames, 1)  # frames
            first, gather = mine.start, self._frame_gatherer(request.frames)
            x = x[:, mine]
            shape = (1, x.shape[1], *shape[2:])
        given = guide.flags(first, shape[1], request.frames).to(self._device) if clean else None
        for i in range(done, request.steps):
            t, t_next = times[i], times[i + 1]
            both = net(
                x.expand(2, *shape[1:]),
                t.expand(2),
                text,
                mask,
                pooled,
                first,
                gather,
                None if given is None else given.expand(2, -1),
                request.frames,
            )
            x0_cond, x0_uncond = both.chunk(2)
            x0 = x0_uncond + self._guidance_scale * (x0_cond - x0_uncond)
            x = x + (t_next - t) * (x - x0) / t  # Euler step on the velocity (x - x0) / t
            x = guide.pin(x, noise, t_next, first, request.frames, clean)
            answer = on_step(i + 1, request.steps)
            if isinstance(answer, str) and answer == PARK:
                whole = x if gather is None else gather(x)  # every rank calls the collective
                state = self._park(whole, request, i + 1, guide)
                raise GenerationParked(i + 1, request.steps, state)
            if not _keep_going(answer):
                raise GenerationCancelled(i + 1, request.steps)
        if gather is not None:
            x = gather(x)  # every rank ends with the whole video; rank 0's is stored
        return x[0]

    def _park(self, x: torch.Tensor, request: GenerationRequest, step: int, guide: Guide) -> bytes:
        """The whole latent after ``step`` as safetensors bytes, with what it belongs to (one
        metadata key: safetensors writes a map's keys in no fixed order)."""
        fingerprint = self._fingerprint(request, guide)
        about = {"format": PARKED_FORMAT, "step": step, "request": fingerprint}
        metadata = {"parked": json.dumps(about, sort_keys=True)}
        return bytes(save({"x": x.detach().to("cpu").contiguous()}, metadata=metadata))

    def _unpark(
        self, state: bytes, request: GenerationRequest, shape: tuple[int, ...], guide: Guide
    ) -> tuple[int, torch.Tensor]:
        """The step and the whole latent of a parked ``state``, checked against ``request``."""
        try:
            x = load(bytes(state)).get("x")
            about = json.loads(_safetensors_metadata(state).get("parked", "{}"))
        except (SafetensorError, ValueError, TypeError) as exc:
            raise ParkedStateInvalid(f"not a {PARKED_FORMAT} state: {exc}") from None
        if not isinstance(about, dict) or about.get("format") != PARKED_FORMAT or x is None:
            raise ParkedStateInvalid(f"not a {PARKED_FORMAT} state")
        if about.get("request") != self._fingerprint(request, guide) or tuple(x.shape) != shape:
            raise ParkedStateInvalid("the parked state belongs to another request")
        step = about.get("step")
        if not isinstance(step, int) or not 0 < step <= request.steps:
            raise ParkedStateInvalid(f"parked step {step} is not within 1..{request.steps}")
        return step, x

    def _fingerprint(self, request: GenerationRequest, guide: Guide) -> str:
        """What the latent depends on: the request's sampling fields, the guidance scale and
        the conditioning's arrays (their hash)."""
        fields = [
            request.prompt,
            request.negative_prompt,
            request.frames,
            request.height,
            request.width,
            request.seed,
            request.steps,
            self._guidance_scale,
            self._time_shift,
            guide.digest,
        ]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def _frame_gatherer(self, frames: int) -> FrameGather:
        """All-gather along the frame dimension (dim 1). Ranks hold uneven frame counts
        (``local_token_slice``), and all_gather needs equal shapes: pad, gather, trim."""
        import torch.distributed as dist

        counts = [
            len(range(frames)[local_token_slice(r, self._world, frames, 1)])
            for r in range(self._world)
        ]
        most = max(counts)

        def gather(local: torch.Tensor) -> torch.Tensor:
            pad = most - local.shape[1]
            padded = local
            if pad:
                filler = local.new_zeros((local.shape[0], pad, *local.shape[2:]))
                padded = torch.cat([local, filler], dim=1)
            parts = [torch.empty_like(padded) for _ in range(self._world)]
            dist.all_gather(parts, padded.contiguous(), group=self._group)
            return torch.cat([part[:, :n] for part, n in zip(parts, counts, strict=True)], dim=1)

        return gather


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (an 8-byte length, then a JSON header)."""
    size = int.from_bytes(data[:8], "little")
    if not 0 < size <= len(data) - 8:
        raise ValueError("the header length is out of range")
    header = json.loads(data[8 : 8 + size])
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return {str(k): str(v) for k, v in metadata.items()}


def _keep_going(answer: object) -> bool:
    """``False`` (or any falsy answer except ``None``) stops; a logging-only callback does not."""
    return answer is None or bool(answer)


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """``[F, C, H, W]`` floats in ``[-1, 1]`` → ``uint8 [F, H, W, C]`` on the host."""
    pixels = ((video.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _read_config(path: Path) -> dict[str, Any]:
    """The checkpoint's ``config.json``, checked to be a luma-tiny config of a known format."""
    if not path.is_file():
        raise ConfigError(f"{path} is missing; write the checkpoint with make_checkpoint()")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("model") != MODEL_NAME:
        raise ConfigError(f"{path} is not a {MODEL_NAME} checkpoint (model field must be that)")
    if config.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path} has format_version {config.get('format_version')!r}; this code reads "
            f"{FORMAT_VERSION}, so rewrite it with make_checkpoint()"
        )
    if not isinstance(config.get("network"), dict):
        raise ConfigError(f"{path} has no 'network' settings; rewrite it with make_checkpoint()")
    try:
        NetworkConfig.from_dict(config["network"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config


def _rank_and_world(process_group: object | None) -> tuple[int, int]:
    """This process's rank and the gang size; ``(0, 1)`` without a process group."""
    if process_group is None:
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(process_group), dist.get_world_size(process_group)  # type: ignore[arg-type]
