"""A worker's Prometheus series, through Ray's metrics (the Ray shell; not pure).

Who calls this: the Serve replica's node-watch thread calls :meth:`WorkerMetrics.publish` once
a second with the loop's stats and the version manager's load history.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Histogram

from luma_ray.workers.outcomes import LoopStats

GAP_BUCKETS_S: list[float] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]


class WorkerMetrics:
    def __init__(self, pool: str, model: str) -> None:
        self.tags = {"pool": pool}
        self.model = model
        self.busy = Counter(
            "luma_worker_busy_seconds_total", "Time models spent generating", ("pool",)
        )
        self.gaps = Histogram(
            "luma_worker_idle_gap_seconds",
            "Model idle time between two jobs while work was waiting",
            GAP_BUCKETS_S,
            ("pool",),
        )
        self.loads = Counter(
            "luma_model_loads_total", "Model version loads", ("model", "version", "outcome")
        )
        self._busy_sent = 0.0
        self._gaps_sent = 0
        self._loads_sent = 0

    def publish(self, stats: LoopStats, loads: list[tuple[str, str]]) -> None:
        delta = stats.busy_s - self._busy_sent
        if delta > 0:
            self.busy.inc(delta, self.tags)
            self._busy_sent = stats.busy_s
        gaps = list(stats.gaps_s)
        for gap in gaps[self._gaps_sent :]:
            self.gaps.observe(gap, self.tags)
        self._gaps_sent = len(gaps)
        for version, outcome in loads[self._loads_sent :]:
            tags = {"model": self.model, "version": version, "outcome": outcome}
            self.loads.inc(1, tags)
        self._loads_sent = len(loads)
