"""What the scheduler counts for its metrics: admissions refused, starts and their waits, lost
leases, requeues, finished jobs.

Pure: the service records events here as they happen; the actor's metrics publisher
(``metrics.py``) reads the totals and drains the new waits every few seconds, and turns them
into Ray metrics (Prometheus). Totals only grow, so the publisher sends deltas.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from luma_ray.scheduler.decisions import GiveUp, Requeue


@dataclass
class SchedulerCounters:
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(tier, error code) → submits refused by admission control or tenant caps."""
    started: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(tier, model) → leases handed out (a requeued job counts again)."""
    within_slo: Counter[str] = field(default_factory=Counter)
    """tier → leases whose job had waited no longer than the tier's SLO."""
    leases_expired: int = 0
    requeued: Counter[str] = field(default_factory=Counter)
    """why (lease_expired, failure, worker_lost, handed_back) → jobs put back in a queue."""
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(tier, final state) → jobs that reached it."""
    waits: list[tuple[str, float]] = field(default_factory=list)
    """(tier, wait_s) of each lease since the publisher last drained them."""
    recent: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=100_000))
    """(time, tier, model) of recent leases, for dispatch rates."""

    def lease(self, tier: str, model: str, wait_s: float, slo_s: float, now_s: float) -> None:
        self.recent.append((now_s, tier, model))
        self.started[(tier, model)] += 1
        if wait_s <= slo_s:
            self.within_slo[tier] += 1
        if len(self.waits) < 100_000:  # bounded if nobody drains (tests, no publisher)
            self.waits.append((tier, wait_s))

    def lost(self, decisions: list[Requeue | GiveUp], why: str) -> None:
        self.requeued[why] += sum(1 for d in decisions if isinstance(d, Requeue))
        if why == "lease_expired":
            self.leases_expired += len(decisions)

    def attainment(self, tier: str) -> float | None:
        """Share of this tier's leases that started within the SLO (None before any)."""
        started = sum(n for (t, _), n in self.started.items() if t == tier)
        return self.within_slo[tier] / started if started else None

    def dispatch_per_min(self, now_s: float, window_s: float = 60.0) -> Counter[tuple[str, str]]:
        """(tier, model) → leases per minute over the last ``window_s``."""
        while self.recent and self.recent[0][0] < now_s - window_s:
            self.recent.popleft()
        rates: Counter[tuple[str, str]] = Counter()
        for _, tier, model in self.recent:
            rates[(tier, model)] += 1
        scale = 60.0 / window_s
        return Counter({key: n * scale for key, n in rates.items()})

    def drain_waits(self) -> list[tuple[str, float]]:
        waits, self.waits = self.waits, []
        return waits
