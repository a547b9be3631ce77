"""A generation request as a client sends it, before validation (see ``intake``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SubmitRequest:
    """One generation request as a client sends it (before validation)."""

    prompt: str
    model: str = "luma-tiny"
    tier: str = "free"
    tenant: str = "default"
    negative_prompt: str = ""
    frames: int = 16
    width: int = 64
    height: int = 64
    fps: int | None = None
    seed: int | None = None
    steps: int | None = None
    seconds: float | None = None
    """Alternative to ``frames``: the clip length; frames = round(seconds x fps)."""
    metadata: tuple[tuple[str, str], ...] = ()
    callback_url: str | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """A hash of everything but the idempotency key: what "the same request" means."""
        body = {k: v for k, v in asdict(self).items() if k != "idempotency_key"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
