"""Estimates for callers: service time per model, active workers, queue position, ETA, and
the predicted wait that admission control compares with a tier's SLO.

Pure: the scheduler service feeds it events with the time as an argument. The numbers are
estimates, labelled as such on the wire: an exponentially weighted mean of recent service
times and the count of workers that pulled recently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SERVICE_S = 10.0
"""Assumed service time of a model before any of its jobs has finished."""
WORKER_SEEN_S = 120.0
"""A worker counts as active for this long after its last pull."""
EWMA_WEIGHT = 0.2


@dataclass
class Estimates:
    """Running estimates, one instance per scheduler."""

    service_s: dict[str, float] = field(default_factory=dict)
    """Smoothed service time (lease to commit) per model."""
    last_pull_s: dict[tuple[str, str], float] = field(default_factory=dict)
    """(model, worker) → last time that worker pulled for that model."""

    def observe_pull(self, worker: str, models: list[str], now_s: float) -> None:
        for model in models:
            self.last_pull_s[(model, worker)] = now_s

    def observe_service(self, model: str, seconds: float) -> None:
        if seconds <= 0:
            return
        old = self.service_s.get(model)
        self.service_s[model] = (
            seconds if old is None else ((1 - EWMA_WEIGHT) * old + EWMA_WEIGHT * seconds)
        )

    def workers(self, model: str, now_s: float) -> int:
        return sum(
            1 for (m, _), t in self.last_pull_s.items() if m == model and now_s - t < WORKER_SEEN_S
        )

    def mean_service_s(self, model: str) -> float:
        return self.service_s.get(model, DEFAULT_SERVICE_S)

    def wait_for(self, model: str, jobs_ahead: int, now_s: float) -> float:
        """Seconds until a job with ``jobs_ahead`` before it starts, at the current pace."""
        return (jobs_ahead + 1) * self.mean_service_s(model) / max(1, self.workers(model, now_s))
