"""The scheduler's Prometheus series, through Ray's metrics (a Ray shell, like the actor).

Who calls this: the scheduler actor calls :meth:`SchedulerMetrics.publish` every
``PUBLISH_PERIOD_S``. It reads the live queues and counters only, never the job table, so
its cost does not grow with the jobs kept in memory. Ray exports the series on each node's
metrics port with the ``ray_`` prefix (``ray_luma_queue_depth`` ...);
``deployments/grafana-luma.json`` charts them.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from luma_ray.scheduler.service import SchedulerService

PUBLISH_PERIOD_S = 2.0
WAIT_BUCKETS_S: list[float] = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800]


class SchedulerMetrics:
    """Ray metric objects for the scheduler, and the totals already sent (for deltas)."""

    def __init__(self) -> None:
        tm = ("tier", "model")
        self.depth = Gauge("luma_queue_depth", "Jobs queued", tag_keys=tm)
        self.oldest = Gauge("luma_oldest_wait_seconds", "Wait of the oldest queued job", tm)
        self.waits = Histogram(
            "luma_wait_seconds", "Queue wait of each lease", WAIT_BUCKETS_S, ("tier",)
        )
        self.attainment = Gauge(
            "luma_slo_attainment", "Share of leases started within the tier's SLO", ("tier",)
        )
        self.refused = Counter(
            "luma_admissions_refused_total", "Submits refused (429)", ("tier", "code")
        )
        self.started = Counter("luma_jobs_started_total", "Leases handed out", tm)
        self.finished = Counter(
            "luma_jobs_finished_total", "Jobs that reached a final state", ("tier", "state")
        )
        self.expired = Counter("luma_leases_expired_total", "Leases that lapsed")
        self.requeued = Counter("luma_jobs_requeued_total", "Jobs put back", ("reason",))
        self.in_flight = Gauge("luma_cluster_in_flight", "Leased-but-unfinished jobs", ("cluster",))
        self.rollout_workers = Gauge(
            "luma_rollout_workers", "Workers serving each version", ("model", "version")
        )
        self.rollout_halted = Gauge(
            "luma_rollout_halted", "1 while a version's rollout is halted", ("model", "version")
        )
        self._sent: dict[str, Tally[Any]] = {}
        self._seen_queues: set[tuple[str, str]] = set()

    def publish(self, service: SchedulerService) -> None:
        core, now = service.core, service.clock()
        queues: set[tuple[str, str]] = set()
        for (tier, model), queue in core.queues.queues.items():
            queues.add((tier, model))
            tags = {"tier": tier, "model": model}
            self.depth.set(queue.live, tags)
            self.oldest.set(core.oldest_wait_s(tier, model, now), tags)
        for tier, model in self._seen_queues - queues:  # dropped queues read 0
            self.depth.set(0, {"tier": tier, "model": model})
            self.oldest.set(0, {"tier": tier, "model": model})
        self._seen_queues |= queues
        for cluster, n in core.in_flight.items():
            self.in_flight.set(n, {"cluster": cluster})
        c = service.counters
        for tier, wait in c.drain_waits():
            self.waits.observe(wait, {"tier": tier})
        for tier in service.core.tiers:
            share = c.attainment(tier)
            if share is not None:
                self.attainment.set(share, {"tier": tier})
        self._send(self.refused, "refused", c.refused, ("tier", "code"))
        self._send(self.started, "started", c.started, ("tier", "model"))
        self._send(self.finished, "finished", c.finished, ("tier", "state"))
        self._send(
            self.requeued, "requeued", Tally({(k,): v for k, v in c.requeued.items()}), ("reason",)
        )
        self._send(self.expired, "expired", Tally({(): c.leases_expired}), ())
        for model in service.rollouts.models():
            status = service.rollouts.status(model, now)
            for version, n in Tally(status["workers"].values()).items():
                self.rollout_workers.set(n, {"model": model, "version": version})
            for version in status["halted"]:
                self.rollout_halted.set(1, {"model": model, "version": version})

    def _send(self, metric: Counter, name: str, totals: Tally[Any], keys: tuple[str, ...]) -> None:
        sent = self._sent.setdefault(name, Tally())
        for key, total in totals.items():
            delta = total - sent[key]
            if delta > 0:
                tags = dict(zip(keys, key, strict=True))
                if tags:
                    metric.inc(delta, tags)
                else:
                    metric.inc(delta)
                sent[key] = total
