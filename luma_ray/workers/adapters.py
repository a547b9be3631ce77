"""Real implementations of the worker's ports: the scheduler and a blob store.

``SchedulerLeases`` turns the worker's port calls into scheduler ops and sends them through any
``SchedulerPort`` (the actor's handle in a replica, an in-process service in tests); it holds
no Ray code. ``StoreSink`` encodes with the model package's encoder and uploads with the
storage package.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from luma_ray.errors import JournalUnavailable, SchedulerUnavailable
from luma_ray.jobs.stages import THUMBNAIL
from luma_ray.models.encode import encode_mp4, thumbnail_bytes
from luma_ray.runtime.backoff import backoff
from luma_ray.scheduler.protocol import (
    Assignment,
    Complete,
    CompleteAndPull,
    CompletedAndPulled,
    Fail,
    FinishSwap,
    HaltedVersions,
    Heartbeat,
    HeartbeatReply,
    Op,
    Park,
    Pull,
    Reject,
    Release,
    RequestSwap,
    SchedulerPort,
    SwapVerdict,
)
from luma_ray.storage import BlobStore
from luma_ray.storage.keys import result_key, results_prefix

log = logging.getLogger(__name__)

R = TypeVar("R")

UNVERSIONED = "unversioned"
"""The version segment of a parked state's key when the worker's model has no version."""
STATE_FILE = "state.bin"
REPORT_WAIT_S = 30.0
"""How long a finished job's report is retried while the scheduler's journal refuses writes."""


class SchedulerLeases:
    """The worker's ``LeasePort`` and the swapping worker's ``RolloutPort`` over the scheduler.

    ``scheduler`` waits out a restarting scheduler within its retry budget (reports of a
    finished job must land); ``beats`` is the port for heartbeats, which must not stall the
    model between steps: a heartbeat that fails is skipped (the lease outlives a restart).
    """

    def __init__(
        self,
        scheduler: SchedulerPort,
        worker: str,
        cluster: str,
        models: list[str] | Callable[[], list[str]],
        beats: SchedulerPort | None = None,
        report_wait_s: float = REPORT_WAIT_S,
    ) -> None:
        self.scheduler = scheduler
        self.beats = beats or scheduler
        self.worker = worker
        self.report_wait_s = report_wait_s
        self.cluster = cluster
        self.pulls_for = models
        """What this worker pulls for: its model, and ``model@version`` for pinned jobs (a
        callable: the version changes with a swap)."""

    @property
    def models(self) -> list[str]:
        return self.pulls_for() if callable(self.pulls_for) else list(self.pulls_for)

    def pull(self, wait_s: float) -> Assignment | None:
        try:
            return self.scheduler.call(Pull(self.worker, self.cluster, tuple(self.models), wait_s))
        except SchedulerUnavailable:
            log.warning("worker %s: scheduler unreachable; pulling again", self.worker)
            return None

    def heartbeat(self, a: Assignment, step: int, total: int, phase: str) -> HeartbeatReply:
        return self.beats.call(Heartbeat(a.job_id, a.token, step, total, phase))

    def complete(
        self, a: Assignment, result_uris: dict[str, str], version: str | None = None
    ) -> None:
        self._report(Complete(a.job_id, a.token, result_uris, version))

    def complete_and_pull(
        self,
        a: Assignment,
        result_uris: dict[str, str],
        version: str | None,
        caption: str | None,
        wait_s: float,
    ) -> CompletedAndPulled:
        """Commit and lease the next job in one call (reported as ``complete`` is: retried
        while the journal refuses writes)."""
        op = CompleteAndPull(
            a.job_id,
            a.token,
            result_uris,
            self.worker,
            self.cluster,
            tuple(self.models),
            version,
            caption,
            wait_s,
        )
        return self._report(op)

    def finish_stage(
        self,
        a: Assignment,
        result_uris: dict[str, str],
        caption: str | None,
        rejected: tuple[str, ...] | None,
    ) -> None:
        """A pipeline stage's end: its outputs and caption, or a QA rejection."""
        if rejected is not None:
            self._report(Reject(a.job_id, a.token, rejected))
        else:
            self._report(Complete(a.job_id, a.token, result_uris, None, caption))

    def fail(self, a: Assignment, code: str, message: str, retryable: bool) -> None:
        self._report(Fail(a.job_id, a.token, code, message, retryable))

    def park(self, a: Assignment, step: int, total: int, state_uri: str) -> None:
        self._report(Park(a.job_id, a.token, step, total, state_uri))

    def _report(self, op: Op[R]) -> R:
        """A final report must land: while the scheduler's journal cannot be written (a full
        disk), try again for up to ``report_wait_s`` rather than let the lease lapse and the
        job run again. The lease is heartbeat-free meanwhile, so the wait stays well under
        it by default."""
        for pause_s in backoff(self.report_wait_s):
            time.sleep(pause_s)  # back off while the operator frees space
            try:
                return self.scheduler.call(op)
            except JournalUnavailable as err:
                last = err
                log.warning("worker %s: %s; reporting again", self.worker, err)
        raise last

    def release(self, a: Assignment) -> None:
        self.scheduler.call(Release(a.job_id, a.token))

    # -- rollouts (versions.RolloutPort) -----------------------------------------------------

    def request_swap(
        self, model: str, target: str, pool_size: int, max_unavailable: str
    ) -> SwapVerdict:
        op = RequestSwap(self.worker, model, target, pool_size, max_unavailable)
        try:
            return self.scheduler.call(op)
        except SchedulerUnavailable:
            return "wait"  # keep serving the old version, ask again

    def finish_swap(self, model: str, target: str, error: str | None) -> None:
        self.scheduler.call(FinishSwap(self.worker, model, target, error))

    def halted_versions(self, model: str) -> list[str]:
        return self.scheduler.call(HaltedVersions(model))


class StoreSink:
    """Encode an H.264 MP4 and a thumbnail, upload both, return their URIs."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def store(self, a: Assignment, frames: np.ndarray) -> dict[str, str]:
        """The MP4, and its thumbnail unless the job's pipeline has a thumbnail stage."""
        with tempfile.TemporaryDirectory(prefix="luma-encode-") as tmp:
            video = encode_mp4(frames, a.request.fps, Path(tmp) / "video.mp4")
            key = result_key(a.job_id, a.token, "video.mp4")
            uris = {"video": self.blobs.put_file(key, video, "video/mp4")}
            if THUMBNAIL in a.stages:
                return uris  # the thumbnail stage writes it, with a spritesheet
            key = result_key(a.job_id, a.token, "thumbnail.png")
            uris["thumbnail"] = self.blobs.put_bytes(key, thumbnail_bytes(frames), "image/png")
            return uris

    def discard(self, a: Assignment) -> None:
        for key in self.blobs.list(result_key(a.job_id, a.token, "")):
            self.blobs.delete(key)

    # -- parked sampler states: private files under the job's results, never served ------

    def store_parked(self, a: Assignment, state: bytes, version: str | None) -> str:
        """Store a parked state under ``results/<job>/parked/<token>/<version>/``; its URI."""
        key = f"{results_prefix(a.job_id)}parked/{a.token}/{version or UNVERSIONED}/{STATE_FILE}"
        return self.blobs.put_bytes(key, state, "application/octet-stream")

    def load_parked(self, a: Assignment, version: str | None) -> bytes | None:
        """The state ``a.resume_uri`` names, if this worker's model version made it (another
        version's latent would not give that version's video); None otherwise."""
        if a.resume_uri is None:
            return None
        key = self._parked_key(a.job_id, a.resume_uri)
        if key is None:
            log.warning("job %s: its resume state is not in this store; starting over", a.job_id)
            return None
        made_by = key.split("/")[-2]
        if made_by != (version or UNVERSIONED):
            log.info(
                "job %s: parked by version %s, this is %s; starting over",
                a.job_id,
                made_by,
                version,
            )
            return None
        return self.blobs.get_bytes(key)

    def load_input(self, key: str) -> bytes:
        """A job's input blob (the ingress stored it; see ``luma_ray.api.inputs``)."""
        return self.blobs.get_bytes(key)

    def delete_parked(self, job_id: str, uri: str | None) -> None:
        key = self._parked_key(job_id, uri)
        if key is not None:
            self.blobs.delete(key)

    def _parked_key(self, job_id: str, uri: str | None) -> str | None:
        """The key of a parked state of ``job_id`` in this store, or None (no URI, another
        store, another job's prefix)."""
        base = self.blobs.uri.rstrip("/") + "/"
        if uri is None or not uri.startswith(base):
            return None
        key = uri[len(base) :]
        prefix = f"{results_prefix(job_id)}parked/"
        return key if key.startswith(prefix) and ".." not in key.split("/") else None
