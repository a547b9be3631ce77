"""Model workers as a Ray Serve deployment: each replica loads the model and pulls jobs.

The deployment has no HTTP route. Serve gives replica lifecycle, health checks and scaling;
the pull loop gives the scheduler full control of order. A replica runs its loop on its own
thread; ``check_health`` fails if that thread died, so Serve replaces the replica.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from luma_ray.models.registry import get_model_class
from luma_ray.scheduler.actor import get_scheduler
from luma_ray.storage import open_store
from luma_ray.workers.adapters import ActorScheduler, StoreSink
from luma_ray.workers.checkpoints import ensure_checkpoint
from luma_ray.workers.loop import WorkerLoop

log = logging.getLogger(__name__)


class ModelWorker:
    """One replica of a model pool. Constructed by Serve with plain arguments."""

    def __init__(
        self,
        model: str,
        store_uri: str,
        checkpoint_root: str,
        cluster: str = "local",
        prefetch: bool = True,
        torch_threads: int = 1,
    ) -> None:
        import torch

        logging.basicConfig(level=logging.INFO)
        torch.set_num_threads(max(1, torch_threads))
        self.worker_id = f"{cluster}/{model}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
        instance = get_model_class(model)()
        instance.load(ensure_checkpoint(model, Path(checkpoint_root)), torch.device("cpu"))
        port = ActorScheduler(get_scheduler(), self.worker_id, cluster, [model])
        self.loop = WorkerLoop(port, instance, StoreSink(open_store(store_uri)), prefetch=prefetch)
        self._thread = threading.Thread(target=self._run, name="luma-worker", daemon=True)
        self._thread.start()
        log.info("worker %s started (model %s, prefetch %s)", self.worker_id, model, prefetch)

    def _run(self) -> None:
        try:
            self.loop.run()
        except Exception:
            log.exception("worker %s: pull loop crashed", self.worker_id)

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"worker {self.worker_id}: pull loop is not running")

    def stats(self) -> dict[str, Any]:
        s = self.loop.stats
        return {
            "worker": self.worker_id,
            "started": s.started,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "stale": s.stale,
            "gaps_s": list(s.gaps_s),
            "stopped_at": dict(s.stopped_at),
            "generated": dict(s.generated),
        }

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.stop()
