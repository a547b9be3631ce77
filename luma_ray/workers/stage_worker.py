"""Stage workers: the pull loop running a pipeline stage instead of a video model.

``StageRunner`` is the loop's runner for a :class:`~luma_ray.workers.stages.Stage` (the loop
calls its ``run_stage`` with the assignment, whose ``inputs`` are the earlier stages' outputs),
``StageSink`` stores the stage's files next to the MP4 under the lease's own key, and
``StageWorker`` is the Serve deployment of a stage pool: CPU only, no gang, no model version;
it pulls only the queue of its stage (``<model>:<stage>``). Everything else (leases,
heartbeats, fencing, retries, hand-backs) is the model workers' loop, unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillRunning
from typing import Any

from luma_ray.models.interface import GenerationCancelled, StepCallback
from luma_ray.scheduler.protocol import Assignment
from luma_ray.storage import BlobStore
from luma_ray.storage.keys import result_key
from luma_ray.workers.stages import Stage, StageInputs, StageResult, load_stage
from luma_ray.workers.stopping import stop_and_hand_back

log = logging.getLogger(__name__)


class StageRunner:
    """Runs one stage per job for the pull loop, beating the lease while it works."""

    def __init__(self, stage: Stage, blobs: BlobStore) -> None:
        self.stage = stage
        self.name = stage.name
        self.blobs = blobs
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"luma-stage-{stage.name}")

    def run_stage(self, a: Assignment, on_step: StepCallback) -> StageResult:
        """The stage's result; heartbeats (step 1 of 2) every third of a lease meanwhile, and
        ``GenerationCancelled`` when one answers stop (cancelled, or the lease was lost)."""
        if on_step(1, 2) is False:
            raise GenerationCancelled(1, 2)
        running = self._pool.submit(self.stage.run, a.request, StageInputs(self.blobs, a.inputs))
        while True:
            try:
                return running.result(timeout=max(0.05, a.lease_ttl_s / 3))
            except StillRunning:
                if on_step(1, 2) is False:
                    raise GenerationCancelled(1, 2) from None

    def generate(self, request: Any, on_step: StepCallback) -> Any:
        raise TypeError("a stage runs through run_stage(assignment, on_step)")


class StageSink:
    """Stores a stage's files under the lease's own key; answers their URIs by output name."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def store(self, a: Assignment, result: StageResult) -> dict[str, str]:
        return {
            name: self.blobs.put_bytes(
                result_key(a.job_id, a.token, out.name), out.data, out.content_type
            )
            for name, out in result.files.items()
        }

    def discard(self, a: Assignment) -> None:
        for key in self.blobs.list(result_key(a.job_id, a.token, "")):
            self.blobs.delete(key)

    def store_parked(self, a: Assignment, state: bytes, version: str | None) -> str:
        raise TypeError("a stage never parks")

    def load_parked(self, a: Assignment, version: str | None) -> bytes | None:
        return None

    def delete_parked(self, job_id: str, uri: str | None) -> None:
        return None


class StageWorker:
    """One replica of a stage pool. Constructed by Serve with plain arguments."""

    def __init__(
        self,
        stage: str,
        model: str,
        store_uri: str,
        cluster: str | None = None,
        impl: str | None = None,
        pool_name: str | None = None,
        heartbeat_relay: bool = False,
    ) -> None:
        from luma_ray.jobs.stages import stage_queue
        from luma_ray.runtime.handle import SchedulerHandle, scheduler_actor
        from luma_ray.storage import open_store
        from luma_ray.workers.adapters import SchedulerLeases
        from luma_ray.workers.beat_relay import heartbeat_port
        from luma_ray.workers.deployment import QUICK_CALL_S
        from luma_ray.workers.loop import WorkerLoop
        from luma_ray.workers.node import CLUSTER_LABEL, DEFAULT_CLUSTER, node_labels

        logging.basicConfig(level=logging.INFO)
        self.pool = pool_name or f"{model}-{stage}-workers"
        cluster = cluster or node_labels().get(CLUSTER_LABEL, DEFAULT_CLUSTER)
        self.worker_id = f"{cluster}/{self.pool}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
        actor = scheduler_actor()
        quick = SchedulerHandle(actor, restart_wait_s=0.0, call_timeout_s=QUICK_CALL_S)
        queues = [stage_queue(model, stage)]
        beats = heartbeat_port(quick, heartbeat_relay, QUICK_CALL_S)
        port = SchedulerLeases(SchedulerHandle(actor), self.worker_id, cluster, queues, beats)
        blobs = open_store(store_uri)
        runner = StageRunner(load_stage(stage, impl), blobs)
        self.loop = WorkerLoop(port, runner, StageSink(blobs), prefetch=False)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self.loop.run, name="luma-stage", daemon=True)
        self._thread.start()
        log.info("stage worker %s started (%s of %s)", self.worker_id, stage, model)

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"stage worker {self.worker_id}: pull loop is not running")

    def stats(self) -> dict[str, Any]:
        s = self.loop.stats
        return {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "started": s.started,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "stale": s.stale,
            "current": s.current,
            "generated": dict(s.generated),
        }

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            stop_and_hand_back(loop, getattr(self, "_thread", None))
