"""Shadow schedulers: what ``pct_slo`` and ``strict`` would have done with the same day.

The default policy (``slo_shadow``, :mod:`luma_ray.scheduler.policies`) is judged against two
yardsticks: weighted attainment against ``strict``'s and the p99.9 wait/SLO against
``pct_slo``'s. Neither is known in advance, since both depend on the day's arrivals and
capacity. A :class:`ShadowBook` replays both baselines online, on the same arrivals and the
same dispatch opportunities: every job that arrives joins both shadows' per-tier FIFO queues
(enqueue times only), and every real dispatch lets each shadow dispatch one job of its own
choice (``pct_slo``: the tier head with the highest wait/SLO; ``strict``: the head of the
first tier in tier order). So at any moment the policy knows the tail ``pct_slo`` has been
forced to so far (a running upper quantile of its dispatched wait/SLO) and the weighted
attainment ``strict`` has reached so far, and can steer between them.

Counting dispatches, not seconds of service, is the approximation: a shadow spends the same
number of dispatches as the real scheduler, whatever their sizes. Costs: O(tiers) per arrival
and per dispatch, one float per job the shadows still hold (each shadow holds at most the jobs
that arrived and it has not dispatched). Pure: time is an argument.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush, heapreplace

from luma_ray.scheduler.tiers import TierSpec


class RunningQuantile:
    """An upper quantile ``q`` of every value added so far: the least of the largest
    ``max(1, floor(n * (1 - q)))`` values (kept in a min-heap; when the count grows, the next
    value is admitted whatever it is, which errs low, never high)."""

    __slots__ = ("q", "n", "_top")

    def __init__(self, q: float) -> None:
        self.q = q
        self.n = 0
        self._top: list[float] = []

    def add(self, x: float) -> None:
        self.n += 1
        keep = max(1, int(self.n * (1.0 - self.q)))
        if len(self._top) < keep:
            heappush(self._top, x)
        elif x > self._top[0]:
            heapreplace(self._top, x)

    @property
    def value(self) -> float:
        return self._top[0] if self._top else 0.0


class ShadowBook:
    """``pct_slo`` and ``strict`` replayed on the real arrivals and dispatches."""

    def __init__(self, q: float = 0.999) -> None:
        self._tiers: list[TierSpec] = []  # in tier order (api first)
        self._pct: dict[str, deque[float]] = {}
        self._strict: dict[str, deque[float]] = {}
        self.pct_tail = RunningQuantile(q)
        """Running upper quantile of the wait/SLO ``pct_slo`` dispatched at."""
        self.strict_met = 0.0
        self.strict_weight = 0.0
        """Weighted count of ``strict``'s dispatches within their SLO, and of all of them."""

    def arrive(self, tier: TierSpec, at_s: float) -> None:
        if tier.name not in self._pct:
            self._pct[tier.name] = deque()
            self._strict[tier.name] = deque()
            self._tiers = sorted([*self._tiers, tier], key=lambda t: t.order)
        self._pct[tier.name].append(at_s)
        self._strict[tier.name].append(at_s)

    def dispatch(self, now_s: float) -> None:
        """One dispatch opportunity: each shadow dispatches the job it would choose."""
        best, best_q = -1.0, None
        for tier in self._tiers:
            q = self._pct[tier.name]
            if q:
                ratio = (now_s - q[0]) / tier.max_wait_s
                if ratio > best:
                    best, best_q = ratio, q
        if best_q is not None:
            best_q.popleft()
            self.pct_tail.add(best)
        for tier in self._tiers:
            q = self._strict[tier.name]
            if q:
                wait = now_s - q.popleft()
                self.strict_weight += tier.weight
                self.strict_met += tier.weight * (wait <= tier.max_wait_s)
                break
