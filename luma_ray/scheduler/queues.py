"""FIFO queues per (tier, model) and the head-only pick across them.

A :class:`JobQueue` keeps entries ``(enqueued_at_s, seq)`` in time order in two parallel lists.
New jobs append at the tail in O(1); a requeued job keeps its original enqueue time and is
inserted at its place by age. Removing a job that is not at the head (a cancel, or a policy
picking the oldest job of a younger band) leaves a tombstone that a path-compressed skip map
jumps over, so no removal moves memory; tombstones are dropped when the head passes them.

:meth:`QueueBook.pick` asks the policy for its band thresholds per tier, finds each band's
oldest live job per queue with one bisection, and ranks only those: O(queues x bands x log n).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from luma_ray.scheduler.policies import Policy
from luma_ray.scheduler.tiers import TierSpec

_COMPACT_MIN = 4096
_INF = float("inf")


class JobQueue:
    """One (tier, model) queue. Entries are job sequence numbers ordered by enqueue time."""

    __slots__ = ("times", "seqs", "head", "live", "_skip")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.seqs: list[int] = []
        self.head = 0
        self.live = 0
        self._skip: dict[int, int] = {}

    def __len__(self) -> int:
        return self.live

    def push(self, enqueued_at_s: float, seq: int) -> None:
        """Add a job. Appends unless it is older than the tail (a requeue), then inserts."""
        times = self.times
        if (
            not times
            or enqueued_at_s > times[-1]
            or (enqueued_at_s == times[-1] and seq > self.seqs[-1])
        ):
            times.append(enqueued_at_s)
            self.seqs.append(seq)
        else:
            self._rebuild()
            i = bisect.bisect_left(self.times, enqueued_at_s)
            while i < len(self.times) and self.times[i] == enqueued_at_s and self.seqs[i] < seq:
                i += 1
            self.times.insert(i, enqueued_at_s)
            self.seqs.insert(i, seq)
        self.live += 1

    def live_from(self, i: int) -> int:
        """The first index >= ``i`` that holds a live entry (or ``len(times)``)."""
        skip = self._skip
        if i not in skip:
            return i
        path = []
        while i in skip:
            path.append(i)
            i = skip[i]
        for p in path:
            skip[p] = i
        return i

    def first_younger_than(self, cut_s: float) -> int:
        """Index of the oldest live entry enqueued strictly after ``cut_s``."""
        i = bisect.bisect_right(self.times, cut_s, self.head)
        return self.live_from(i)

    def first_live(self) -> int:
        return self.live_from(self.head)

    def remove_at(self, i: int) -> None:
        """Remove the live entry at index ``i`` (found by one of the lookups above)."""
        self.live -= 1
        if i == self.head:
            self.head = self.live_from(i + 1)
            if self.head > _COMPACT_MIN and self.head * 2 > len(self.times):
                self._rebuild()
        else:
            self._skip[i] = i + 1

    def find(self, enqueued_at_s: float, seq: int) -> int | None:
        """Index of the live entry for ``seq`` (enqueued at ``enqueued_at_s``), if queued."""
        i = bisect.bisect_left(self.times, enqueued_at_s, self.head)
        while i < len(self.times) and self.times[i] == enqueued_at_s:
            if self.seqs[i] == seq:
                return i if self.live_from(i) == i else None
            i += 1
        return None

    def entries(self) -> Iterator[tuple[float, int]]:
        """Live entries, oldest first (for brute-force checks and snapshots)."""
        i = self.live_from(self.head)
        while i < len(self.times):
            yield self.times[i], self.seqs[i]
            i = self.live_from(i + 1)

    def _rebuild(self) -> None:
        """Drop the consumed head and every tombstone, O(n); rare (compaction, requeue)."""
        pairs = list(self.entries())
        self.times = [t for t, _ in pairs]
        self.seqs = [s for _, s in pairs]
        self.head = 0
        self._skip = {}


@dataclass(frozen=True)
class Pick:
    """The job a pick chose: its queue key, sequence number, band and wait."""

    tier: str
    model: str
    seq: int
    enqueued_at_s: float
    band: int
    wait_s: float
    rank: float


class QueueBook:
    """All queues, keyed by (tier, model), and the head-only pick over them."""

    def __init__(self, tiers: dict[str, TierSpec]) -> None:
        self.tiers = tiers
        self.queues: dict[tuple[str, str], JobQueue] = {}
        self._by_model: dict[str, list[tuple[TierSpec, str, JobQueue]]] = {}
        self._model_of: dict[int, str] = {}

    def queue(self, tier: str, model: str) -> JobQueue:
        key = (tier, model)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = JobQueue()
            self._model_of[id(q)] = model
            self._by_model.setdefault(model, []).append((self.tiers[tier], model, q))
        return q

    def push(self, tier: str, model: str, enqueued_at_s: float, seq: int) -> None:
        self.queue(tier, model).push(enqueued_at_s, seq)

    def discard(self, tier: str, model: str, enqueued_at_s: float, seq: int) -> bool:
        """Tombstone a queued job (cancel, tenant limit); False if it was not queued."""
        q = self.queues.get((tier, model))
        if q is None:
            return False
        i = q.find(enqueued_at_s, seq)
        if i is None:
            return False
        q.remove_at(i)
        return True

    def __len__(self) -> int:
        return sum(q.live for q in self.queues.values())

    def candidates(self, models: Iterable[str]) -> Iterator[tuple[TierSpec, str, JobQueue]]:
        for model in models:
            yield from self._by_model.get(model, ())

    def pick(
        self,
        policy: Policy,
        models: Iterable[str],
        now_s: float,
        eligible: Callable[[str, int], bool] | None = None,
        take: bool = True,
    ) -> Pick | None:
        """The best queued job a worker serving ``models`` can run now, per ``policy``.

        For each queue and each of the policy's bands, the band's oldest live job is the only
        candidate (rank does not fall with wait inside a band); the best candidate by
        (rank, older, lower seq) wins. ``eligible(tier, seq)`` filters out jobs that may not
        start now (a tenant at its running cap); it costs a forward scan past ineligible jobs,
        bounded by those tenants' queued caps. With ``take`` the job leaves its queue and the
        policy is told. This is the hot path of the scheduler and the simulator, hence flat.
        """
        rank = policy.rank
        bands = policy.bands
        best_r = -_INF
        best_t = _INF
        best_s = -1
        best_at: tuple[TierSpec, JobQueue, int, int] | None = None
        for tier, _model, q in self.candidates(models):
            if not q.live:
                continue
            thresholds = bands(tier)
            times, seqs, skip, head = q.times, q.seqs, q._skip, q.head
            n = len(times)
            band = len(thresholds)
            i = head
            while True:
                if i in skip:
                    i = q.live_from(i)
                if eligible is not None:
                    while i < n and not eligible(tier.name, seqs[i]):
                        i = q.live_from(i + 1)
                if i >= n:
                    break
                # Band 0 takes any wait, even a negative one (a clock that stepped back).
                lo_cut = now_s - thresholds[band - 1] if band else _INF
                t = times[i]
                if t <= lo_cut:
                    r = rank(tier, band, now_s - t)
                    if r > best_r or (
                        r == best_r and (t < best_t or (t == best_t and seqs[i] < best_s))
                    ):
                        best_r, best_t, best_s, best_at = r, t, seqs[i], (tier, q, i, band)
                if not band:
                    break
                band -= 1
                if t <= lo_cut:
                    i = bisect.bisect_right(times, lo_cut, i)
        if best_at is None:
            return None
        tier, q, i, band = best_at
        if take:
            q.remove_at(i)
            policy.on_dispatch(tier, band, now_s - best_t, now_s)
        return Pick(tier.name, self._model_of[id(q)], best_s, best_t, band, now_s - best_t, best_r)


def band_of(thresholds: tuple[float, ...], enqueued_at_s: float, now_s: float) -> int:
    """The band of a job, computed exactly as :meth:`QueueBook.pick` cuts bands."""
    return sum(1 for h in thresholds if enqueued_at_s <= now_s - h)
