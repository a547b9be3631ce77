"""One time-ordered queue of job sequence numbers, with tombstones.

A :class:`JobQueue` keeps entries ``(enqueued_at_s, seq)`` in time order in two parallel lists.
New jobs append at the tail in O(1); a requeued job keeps its original enqueue time and is
inserted at its place by age. Removing a job that is not at the head (a cancel, or a pick of a
job behind the head) leaves a tombstone that a path-compressed skip map jumps over, so no
removal moves memory; tombstones are dropped when the head passes them. The queue book
(:mod:`luma_ray.scheduler.queues`) keeps one per (tier, model), or, with fair share, one per
tenant inside each (tier, model) (:mod:`luma_ray.scheduler.shares`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

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

    def newest(self) -> float:
        """Enqueue time of the youngest live entry (-inf when empty); walks back over the
        tombstones at the tail."""
        j = len(self.times) - 1
        skip = self._skip
        while j >= self.head and j in skip:
            j -= 1
        return self.times[j] if j >= self.head else -_INF

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
