"""Real implementations of the worker's ports: the scheduler actor and a blob store.

``ActorScheduler`` is the only worker code that calls Ray; ``StoreSink`` encodes with the
model package's encoder and uploads with the storage package.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray

from luma_ray.errors import LumaError, StaleLease
from luma_ray.models.encode import encode_mp4, encode_thumbnail
from luma_ray.scheduler.service import Assignment
from luma_ray.storage import BlobStore

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 30.0


def _unwrap(err: Exception) -> Exception:
    """Ray wraps an actor's exception; hand back our own error when there is one."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, LumaError) else err


class ActorScheduler:
    """The scheduler port over the scheduler actor's handle."""

    def __init__(
        self,
        handle: Any,
        worker: str,
        cluster: str,
        models: list[str] | Callable[[], list[str]],
    ) -> None:
        self.handle = handle
        self.worker = worker
        self.cluster = cluster
        self._models = models

    @property
    def models(self) -> list[str]:
        """What this worker pulls for: its model, and ``model@version`` for pinned jobs."""
        return self._models() if callable(self._models) else list(self._models)

    def _call(self, method: str, *args: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        try:
            return ray.get(getattr(self.handle, method).remote(*args), timeout=timeout_s)
        except ray.exceptions.RayTaskError as err:
            raise _unwrap(err) from None

    def pull(self, wait_s: float) -> Assignment | None:
        try:
            result: Assignment | None = self._call(
                "pull",
                self.worker,
                self.cluster,
                self.models,
                wait_s,
                timeout_s=wait_s + CALL_TIMEOUT_S,
            )
            return result
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            log.warning("worker %s: scheduler unreachable; retrying", self.worker)
            time.sleep(min(1.0, max(wait_s, 0.1)))  # back off while the actor restarts
            return None

    def heartbeat(self, a: Assignment, step: int, total: int, phase: str) -> bool:
        reply = self._call("heartbeat", a.job_id, a.token, step, total, phase)
        return bool(reply.cancel)

    def complete(
        self, a: Assignment, result_uris: dict[str, str], version: str | None = None
    ) -> None:
        self._retrying("complete", a.job_id, a.token, result_uris, version)

    def fail(self, a: Assignment, code: str, message: str, retryable: bool) -> None:
        self._retrying("fail", a.job_id, a.token, code, message, retryable)

    def release(self, a: Assignment) -> None:
        self._call("release", a.job_id, a.token)

    # -- rollouts (versions.RolloutPort) -----------------------------------------------------

    def request_swap(self, model: str, target: str, pool_size: int, max_unavailable: str) -> str:
        try:
            verdict: str = self._call(
                "request_swap", self.worker, model, target, pool_size, max_unavailable
            )
            return verdict
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return "wait"  # scheduler restarting: keep serving, ask again

    def finish_swap(self, model: str, target: str, error: str | None) -> None:
        self._retrying("finish_swap", self.worker, model, target, error)

    def halted_versions(self, model: str) -> list[str]:
        halted: list[str] = self._call("halted_versions", model)
        return halted

    def _retrying(self, method: str, *args: Any, attempts: int = 20) -> None:
        """Final reports must land: retry while the scheduler restarts (it keeps the lease)."""
        for attempt in range(attempts):
            try:
                self._call(method, *args)
                return
            except StaleLease:
                raise
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(min(5.0, 0.2 * 2**attempt))
        raise LumaError(f"scheduler unreachable; could not {method} ({args[0]})")


class StoreSink:
    """Encode an H.264 MP4 and a thumbnail, upload both, return their URIs."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def store(self, a: Assignment, frames: np.ndarray) -> dict[str, str]:
        # Each lease writes under its own token: a late, fenced-off worker cannot overwrite
        # the files of the attempt whose result was committed.
        prefix = f"results/{a.job_id}/{a.token}"
        with tempfile.TemporaryDirectory(prefix="luma-encode-") as tmp:
            video = encode_mp4(frames, a.request.fps, Path(tmp) / "video.mp4")
            thumb = encode_thumbnail(frames, Path(tmp) / "thumbnail.png")
            return {
                "video": self.blobs.put_file(f"{prefix}/video.mp4", video, "video/mp4"),
                "thumbnail": self.blobs.put_file(f"{prefix}/thumbnail.png", thumb, "image/png"),
            }
