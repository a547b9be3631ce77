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

**The projection.** What ``pct_slo`` has dispatched so far says nothing of a surge that is still
building: its queue already holds jobs that will wait longer than any it has served. So the book
also projects ``pct_slo``'s tail forward: it drains the shadow's current queue as ``pct_slo``
would (the tier head with the highest wait/SLO first), one dispatch per ``1 / rate`` seconds at
the dispatch rate of the last ``rate_window_s``, with no further arrivals, and takes the upper
quantile of the dispatched and the projected wait/SLO together (``projected``). New arrivals
and a slower rate would only raise it, so it errs low, like the running quantile. It is redone
every ``max(every, queued / 4)`` dispatches, on at most ``sample`` jobs (every ``m``-th of each
tier's queue standing for ``m``), so one projection costs O(``sample`` x tiers) whatever the
queue's depth, and O(tiers) per dispatch amortised.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heapify, heappush, heapreplace
from itertools import islice

from luma_ray.scheduler.tiers import TierSpec


class RunningQuantile:
    """An upper quantile ``q`` of every value added so far: the least of the largest
    ``max(1, floor(n * (1 - q)))`` values, kept in a min-heap. When the count grows, the
    largest value not kept is admitted: it comes from a reserve, a min-heap of the largest
    ``spare`` values left out (each value evicted from the kept heap or never admitted goes
    there). Exact on any stream but one whose left-out values keep falling for more than
    ``spare`` admissions (the reserve then runs out of the true largest, and the estimate errs
    low, never high); memory O(n (1 - q) + spare), each add O(log) of that. (Admitting the
    next value added instead, whatever it is, let a job served at once, wait/SLO near 0, pull
    the quantile near 0 until larger values pushed it out.)"""

    __slots__ = ("q", "n", "_top", "_spare", "_spare_size")

    def __init__(self, q: float, spare: int = 256) -> None:
        self.q = q
        self.n = 0
        self._top: list[float] = []
        self._spare: list[float] = []
        self._spare_size = spare

    def add(self, x: float) -> None:
        self.n += 1
        keep = max(1, int(self.n * (1.0 - self.q)))
        top = self._top
        if len(top) < keep:  # one more kept: the largest of x and the values left out
            spare = self._spare
            if spare:
                best = max(spare)
                if best > x:
                    spare.remove(best)
                    heapify(spare)
                    self._leave_out(x)
                    x = best
            heappush(top, x)
        elif x > top[0]:
            self._leave_out(heapreplace(top, x))
        else:
            self._leave_out(x)

    def _leave_out(self, x: float) -> None:
        spare = self._spare
        if len(spare) < self._spare_size:
            heappush(spare, x)
        elif x > spare[0]:
            heapreplace(spare, x)

    @property
    def value(self) -> float:
        return self._top[0] if self._top else 0.0

    @property
    def top(self) -> list[float]:
        """The values kept (the largest ``floor(n * (1 - q))``), in no order."""
        return self._top


class ShadowBook:
    """``pct_slo`` and ``strict`` replayed on the real arrivals and dispatches."""

    def __init__(
        self,
        q: float = 0.999,
        rate_window_s: float = 900.0,
        every: int = 2000,
        sample: int = 2000,
    ) -> None:
        self.rate_window_s, self.every, self.sample = rate_window_s, every, sample
        self._recent: deque[float] = deque()  # dispatch times within the rate window
        self._dispatches = 0
        self._next_projection = 0
        self.projected = 0.0
        """``pct_slo``'s tail if its current queue drained at today's rate (0 until known)."""
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
        recent = self._recent
        recent.append(now_s)
        while recent[0] < now_s - self.rate_window_s:
            recent.popleft()
        self._dispatches += 1
        if self._dispatches >= self._next_projection:
            self.project(now_s)
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

    def project(self, now_s: float) -> None:
        """Recompute ``projected`` now (``dispatch`` calls it on its schedule; see the module
        docstring)."""
        queued = sum(len(q) for q in self._pct.values())
        self._next_projection = self._dispatches + max(self.every, queued // 4)
        span = now_s - self._recent[0]
        if queued == 0 or len(self._recent) < 10 or span <= 0:
            self.projected = 0.0
            return
        step = max(1, math.ceil(queued / self.sample))
        heads = [
            (tier, list(islice(q, 0, None, step)))
            for tier in self._tiers
            if (q := self._pct[tier.name])
        ]
        at = [0] * len(heads)
        ratios: list[float] = []  # each stands for ``step`` dispatches
        dt, t = step * span / len(self._recent), now_s
        for _ in range(sum(len(h) for _, h in heads)):
            best, pick = -1.0, 0
            for i, (tier, times) in enumerate(heads):
                if at[i] < len(times):
                    ratio = (t - times[at[i]]) / tier.max_wait_s
                    if ratio > best:
                        best, pick = ratio, i
            at[pick] += 1
            ratios.append(best)
            t += dt
        tail = self.pct_tail
        keep = max(1, int((tail.n + queued) * (1.0 - tail.q)))
        values = sorted([(r, step) for r in ratios] + [(x, 1) for x in tail.top], reverse=True)
        count = 0
        for value, weight in values:
            count += weight
            if count >= keep:
                self.projected = value
                return
        self.projected = 0.0
