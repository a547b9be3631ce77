"""A generation as a client asks for it, before intake resolves its defaults.

Part of the scheduler's boundary (``protocol`` re-exports it): the ingress, the Ray client and
tests build one and send it in a ``Submit``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from luma_ray.jobs.request import GenerationInputs


@dataclass(frozen=True)
class SubmitRequest:
    """One generation as a client asks for it, before intake resolves its defaults.

    ``frames``, ``size``, ``fps``, ``steps`` and ``seed`` left as None take the model's defaults
    (a random seed); ``seconds`` is the alternative to ``frames``: the frame count the model
    takes nearest seconds x fps (``intake.frames_for_seconds``). Intake
    (``luma_ray.scheduler.intake``) validates it once and turns it into the job's
    :class:`~luma_ray.jobs.GenerationRequest`.
    """

    prompt: str
    model: str = "luma-tiny"
    """A model name, or ``name@version`` to pin a repository version."""
    tier: str = "free"
    tenant: str = "default"
    negative_prompt: str = ""
    frames: int | None = None
    size: str | None = None
    """``WIDTHxHEIGHT``; a size past the model's limits keeps its aspect ratio, scaled down."""
    aspect_ratio: str | None = None
    """``16:9``: the largest such size near the model's default area (instead of ``size``)."""
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None
    seconds: float | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    """The caller's labels as sorted (key, value) pairs, returned as given."""
    callback_url: str | None = None
    """Webhook target for state changes, validated at the ingress."""
    idempotency_key: str | None = None
    inputs: GenerationInputs | None = None
    """Images or videos to condition on, as keys of blobs the ingress checked and stored."""
    api: str = "native"
    """The API it came through (``native``, ``openai``, ``dream-machine``): its webhooks take
    that API's shape."""
    api_request: str | None = None
    """The request as that API received it (JSON), for APIs whose answers echo it."""

    def fingerprint(self) -> str:
        """A hash of everything but the idempotency key: what "the same request" means."""
        body = {k: v for k, v in asdict(self).items() if k != "idempotency_key"}
        if body["inputs"] is None:
            del body["inputs"]  # requests without inputs hash as they did before inputs existed
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
