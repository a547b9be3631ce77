"""Model workers as a Ray Serve deployment: each replica runs a model version and pulls jobs.

The deployment has no HTTP route. Serve gives replica lifecycle, health checks and scaling;
the pull loop gives the scheduler full control of order. A replica is a supervisor: the model
version itself runs in a host actor inside the replica's placement group (``host.py``), with
that version's code and requirements, and a ``VersionManager`` swaps it between jobs when
``active.yaml`` changes. The loop runs on its own thread; ``check_health`` fails if that thread
died, so Serve replaces the replica.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from luma_ray.models.cache import ModelCache
from luma_ray.models.repository import ModelRepository
from luma_ray.runtime.handle import SchedulerHandle, scheduler_actor
from luma_ray.scheduler.protocol import GetBacklog
from luma_ray.storage import open_store
from luma_ray.workers import autoscale
from luma_ray.workers.adapters import SchedulerLeases, StoreSink
from luma_ray.workers.beat_relay import heartbeat_port
from luma_ray.workers.gang import GangLauncher
from luma_ray.workers.loop import PREFETCH_LEAD_S, WorkerLoop
from luma_ray.workers.node import CLUSTER_LABEL, DEFAULT_CLUSTER, leaving_at, node_labels
from luma_ray.workers.stopping import stop_and_hand_back
from luma_ray.workers.versions import VersionManager

log = logging.getLogger(__name__)

NODE_POLL_S = 1.0
QUICK_CALL_S = 10.0
"""Heartbeats and autoscaling stats: one attempt this long, no waiting out a restarting
scheduler (a heartbeat that fails is skipped; the lease outlives the restart)."""


class ModelWorker:
    """One replica of a model pool. Constructed by Serve with plain arguments."""

    def __init__(
        self,
        model: str,
        store_uri: str,
        repository_uri: str,
        cache_dir: str,
        cache_max_bytes: int,
        cluster: str | None = None,
        prefetch: bool = True,
        torch_threads: int = 1,
        num_cpus: float = 1.0,
        pool_size: int = 1,
        watch_interval_s: float = 5.0,
        ranks: int = 1,
        accelerator: str = "cpu",
        target_drain_s: float | None = None,
        pool_name: str | None = None,
        prefetch_lead_s: float = PREFETCH_LEAD_S,
        heartbeat_relay: bool = False,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.model = model
        self.pool = pool_name or f"{model}-workers"
        self.target_drain_s = target_drain_s
        self.node_labels = node_labels()
        cluster = cluster or self.node_labels.get(CLUSTER_LABEL, DEFAULT_CLUSTER)
        # cluster/pool/process: the queue page groups workers by the pool named here.
        self.worker_id = f"{cluster}/{self.pool}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
        repository = ModelRepository(open_store(repository_uri), time.time)
        actor = scheduler_actor()
        self._quick = SchedulerHandle(actor, restart_wait_s=0.0, call_timeout_s=QUICK_CALL_S)
        beats = heartbeat_port(self._quick, heartbeat_relay, QUICK_CALL_S)
        port = SchedulerLeases(
            SchedulerHandle(actor), self.worker_id, cluster, self._pulls_for, beats=beats
        )
        self.versions = VersionManager(
            model,
            repository,
            ModelCache(Path(cache_dir), repository, cache_max_bytes),
            GangLauncher(
                ranks=ranks,
                accelerator=accelerator,
                num_cpus=num_cpus,
                torch_threads=torch_threads,
                name_prefix=f"luma-rank/{self.worker_id}",
            ),
            port,
            pool_size=pool_size,
            watch_interval_s=watch_interval_s,
        )
        first = self.versions.start()
        self.loop = WorkerLoop(
            port,
            first,
            StoreSink(open_store(store_uri)),
            prefetch=prefetch,
            prefetch_lead_s=prefetch_lead_s,
            versions=self.versions,
        )
        self._watcher = threading.Thread(
            target=self.versions.watch, name="luma-version-watch", daemon=True
        )
        self._watcher.start()
        self._thread = threading.Thread(target=self._run, name="luma-worker", daemon=True)
        self._thread.start()
        self._node_watch = threading.Thread(
            target=self._watch_node, name="luma-node-watch", daemon=True
        )
        self._node_watch.start()
        log.info(
            "worker %s started (model %s@%s, prefetch %s)",
            self.worker_id,
            model,
            self.versions.version,
            prefetch,
        )

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's custom autoscaling metrics for ``autoscale.queue_policy``: the scheduler's
        backlog of this model, its service time, and whether this replica is busy."""
        backlog = self._quick.call(GetBacklog(self.model))
        return {
            autoscale.BACKLOG: float(backlog.queued),
            autoscale.SERVICE_S: backlog.service_s,
            autoscale.BUSY: 1.0 if self.loop.stats.current is not None else 0.0,
            autoscale.TARGET_S: self.target_drain_s or 120.0,
        }

    def _pulls_for(self) -> list[str]:
        """The queues this worker serves: its model, and jobs pinned to its version."""
        return [self.model, f"{self.model}@{self.versions.version}"]

    def _watch_node(self) -> None:
        """Once a second: publish metrics; is this node leaving? Then tell the loop, once."""
        from luma_ray.workers.metrics import WorkerMetrics

        metrics = WorkerMetrics(self.pool, self.model)
        while not self.loop.leaving:
            time.sleep(NODE_POLL_S)  # a poll interval, not synchronisation
            try:
                metrics.publish(self.loop.stats, list(self.versions.loads))
            except Exception:
                log.warning("worker %s: publishing metrics failed", self.worker_id, exc_info=True)
            leaving = leaving_at(self.node_labels)
            if leaving is None:
                continue
            deadline = None
            if leaving.deadline_s is not None:
                deadline = self.loop.clock() + (leaving.deadline_s - time.time())
            log.warning("worker %s is leaving: %s", self.worker_id, leaving.why)
            self.loop.leave(deadline)

    def _run(self) -> None:
        try:
            self.loop.run()
        except Exception:
            log.exception("worker %s: pull loop crashed", self.worker_id)

    def check_health(self) -> None:
        if not self._thread.is_alive() and not self.loop.leaving:
            raise RuntimeError(f"worker {self.worker_id}: pull loop is not running")
        if getattr(self.loop.model, "dead", False):
            raise RuntimeError(f"worker {self.worker_id}: a rank of its gang died")

    def stats(self) -> dict[str, Any]:
        s = self.loop.stats
        return {
            "worker": self.worker_id,
            "version": self.versions.version,
            "cluster": self.loop.scheduler.cluster,  # type: ignore[attr-defined]
            "node_labels": dict(self.node_labels),
            "rank_nodes": list(getattr(self.loop.model, "rank_nodes", [])),
            "model_source": getattr(self.loop.model, "source", None),
            "failed_versions": dict(self.versions.failed),
            "started": s.started,
            "succeeded": s.succeeded,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "stale": s.stale,
            "gaps_s": list(s.gaps_s),
            "busy_s": s.busy_s,
            "step_calls_s": s.step_calls_s,
            "stopped_at": dict(s.stopped_at),
            "leaving": self.loop.leaving,
            "handed_back": list(s.handed_back),
            "parked": {job: list(steps) for job, steps in s.parked.items()},
            "resumed": dict(s.resumed),
            "current": s.current,
            "generated": dict(s.generated),
        }

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            stop_and_hand_back(loop, getattr(self, "_thread", None))
        versions = getattr(self, "versions", None)
        if versions is not None:
            versions.stop()
