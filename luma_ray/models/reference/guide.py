"""How ``luma-tiny`` follows a request's images and videos (``Conditioning``), inside its sampler.

- ``first_frame`` / ``last_frame`` (and extending a video, which arrives as the previous
  video's last frame in ``first_frame``). A network trained with given frames
  (``NetworkConfig.given_frames``, as ``luma-tiny@v2`` is) gets the image itself in that
  frame at every step, flagged as given, and denoises the other frames to go on from it
  (or lead up to it). An older network gets inpainting: after every Euler step the frame is
  replaced by the input noised to the step's time with the run's own noise,
  ``x_t = (1 - t) * image + t * noise``. Either way the output's first (last) frame equals the
  input up to uint8 rounding (mean absolute difference 0, documented bound 2 levels).
- ``source_video`` with ``strength`` s (SDEdit): the run starts at the step whose time is
  closest to s, from ``(1 - t) * source + t * noise``, and runs the remaining steps, so a low
  strength keeps the source's layout and colours and 1 ignores it.

``Guide.of(conditioning, request)`` checks the arrays' shapes (``InvalidRequest`` naming the
fix) and turns them into tensors in ``[-1, 1]``; ``fingerprint`` hashes them for parking.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from luma_ray.errors import InvalidRequest
from luma_ray.models.interface import Conditioning, GenerationRequest


@dataclass(frozen=True)
class Guide:
    """Conditioning as tensors ``[C, H, W]`` (frames) and ``[F, C, H, W]`` (source video)."""

    first: torch.Tensor | None = None
    last: torch.Tensor | None = None
    source: torch.Tensor | None = None
    strength: float = 1.0
    digest: str = ""

    @classmethod
    def of(cls, conditioning: Conditioning | None, request: GenerationRequest) -> Guide:
        """The guide for ``request``; an empty one for ``None``."""
        if conditioning is None:
            return cls()
        h, w = request.height, request.width
        first = _frame(conditioning.first_frame, (h, w, 3), "first_frame")
        last = _frame(conditioning.last_frame, (h, w, 3), "last_frame")
        source = _frame(conditioning.source_video, (request.frames, h, w, 3), "source_video")
        strength = 1.0
        if source is not None:
            strength = 0.7 if conditioning.strength is None else float(conditioning.strength)
            if not 0.0 <= strength <= 1.0:
                raise InvalidRequest(f"strength {strength} must lie in [0, 1]")
        digest = hashlib.sha256()
        for name in ("first_frame", "last_frame", "source_video"):
            array = getattr(conditioning, name)
            digest.update(name.encode())
            if array is not None:
                digest.update(repr(np.asarray(array).shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(f"{strength!r} {conditioning.extended}".encode())
        return cls(first, last, source, strength, digest.hexdigest())

    @property
    def empty(self) -> bool:
        return self.first is None and self.last is None and self.source is None

    def start(self, times: torch.Tensor) -> int:
        """The first step to run: 0, or with a source video the step whose time is nearest
        ``strength`` (SDEdit)."""
        if self.source is None:
            return 0
        return int((times[:-1] - self.strength).abs().argmin())

    def begin(self, noise: torch.Tensor, t: torch.Tensor, clean: bool = False) -> torch.Tensor:
        """The latent ``[1, F, C, H, W]`` to start from at time ``t`` (the whole video)."""
        x = noise
        if self.source is not None:
            x = (1 - t) * self.source[None].to(noise) + t * noise
        return self.pin(x, noise, t, 0, noise.shape[1], clean)

    def pin(
        self,
        x: torch.Tensor,
        noise: torch.Tensor,
        t: torch.Tensor,
        first: int,
        frames: int,
        clean: bool = False,
    ) -> torch.Tensor:
        """``x`` (this rank's frames, from frame ``first`` of ``frames``) with the given first
        and last frames put back: as they are with ``clean`` (a network that takes given-frame
        flags), else noised to time ``t`` with the whole video's ``noise``."""
        local = range(first, first + x.shape[1])
        for index, image in self._given(frames):
            if index in local:
                x = x.clone()
                if clean:
                    x[:, index - first] = image.to(x)
                else:
                    x[:, index - first] = (1 - t) * image.to(x) + t * noise[:, index].to(x)
        return x

    def _given(self, frames: int) -> list[tuple[int, torch.Tensor]]:
        """The given frames of a ``frames``-frame video: (index, image) pairs."""
        pairs = ((0, self.first), (frames - 1, self.last))
        return [(index, image) for index, image in pairs if image is not None]

    def flags(self, first: int, count: int, frames: int) -> torch.Tensor:
        """``[1, count]``: 1 for the given frames among this rank's ``count`` frames from
        ``first`` (of ``frames``), 0 elsewhere."""
        flags = torch.zeros(1, count)
        for index, _ in self._given(frames):
            if first <= index < first + count:
                flags[0, index - first] = 1.0
        return flags


def _frame(array: object, shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    """``uint8 [..., H, W, 3]`` → floats ``[..., 3, H, W]`` in ``[-1, 1]``; shape checked."""
    if array is None:
        return None
    data = np.asarray(array)
    if data.shape != shape or data.dtype != np.uint8:
        raise InvalidRequest(
            f"{name} must be uint8 {list(shape)} (the request's size); got {data.dtype} "
            f"{list(data.shape)}"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(data)).float() / 127.5 - 1.0
    return tensor.movedim(-1, -3)
