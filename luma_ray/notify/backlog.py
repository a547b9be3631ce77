"""The sender's backlog: events accepted and not yet delivered or dropped.

One FIFO per job, whose head is the event in flight or next to go; the heads wait in a heap by
due time, so events of one job go out in order while a job that is backing off does not hold
up the others. Not thread-safe: the sender calls it only while holding its lock.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from dataclasses import dataclass

from luma_ray.notify.events import WebhookEvent


@dataclass
class Delivery:
    """One event on its way: the bytes to POST and how many attempts it has had."""

    event: WebhookEvent
    body: bytes
    attempts: int = 0


class Backlog:
    """Deliveries per job, and when each job's head is due."""

    def __init__(self) -> None:
        self._jobs: dict[str, collections.deque[Delivery]] = {}  # per job, head in flight
        self._ready: list[tuple[float, int, str]] = []  # (due_s, seq, job_id), one per job
        self._seq = itertools.count()
        self._count = 0  # deliveries held, in all jobs

    def __len__(self) -> int:
        return self._count

    def add(self, delivery: Delivery, now_s: float) -> None:
        """Append ``delivery`` to its job; a job new to the backlog is due at ``now_s``."""
        job_id = delivery.event.job_id
        queue = self._jobs.get(job_id)
        if queue is None:
            queue = self._jobs[job_id] = collections.deque()
            self._push(now_s, job_id)
        queue.append(delivery)
        self._count += 1

    def next_due_s(self) -> float | None:
        """When the earliest job head is due; None when no job is waiting."""
        return self._ready[0][0] if self._ready else None

    def pop_due(self) -> Delivery:
        """The head of the earliest job, taken off the heap (it stays its job's head)."""
        job_id = heapq.heappop(self._ready)[2]
        return self._jobs[job_id][0]

    def retry_at(self, due_s: float, job_id: str) -> None:
        """The job's head failed and goes again at ``due_s``."""
        self._push(due_s, job_id)

    def finish(self, job_id: str, now_s: float) -> None:
        """The job's head was delivered or dropped: the next one is due at ``now_s``."""
        queue = self._jobs[job_id]
        queue.popleft()
        if queue:
            self._push(now_s, job_id)
        else:
            del self._jobs[job_id]
        self._count -= 1

    def events(self) -> list[WebhookEvent]:
        """Every event held, job by job, in order."""
        return [d.event for queue in self._jobs.values() for d in queue]

    def clear(self) -> None:
        self._jobs.clear()
        self._ready.clear()
        self._count = 0

    def _push(self, due_s: float, job_id: str) -> None:
        heapq.heappush(self._ready, (due_s, next(self._seq), job_id))
