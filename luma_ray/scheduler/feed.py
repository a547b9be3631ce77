"""Job events, published once by the scheduler for every event stream of every ingress replica.

The service appends an event here when a job's state changes (with its whole view), when a
heartbeat moves its progress, and when it is deleted. Each event gets the next ``cursor`` of
one sequence over all jobs; an ingress replica's one subscriber long-polls ``EventFeed(after)``
and fans the events out to its streams, and a stream resumes from its last ``id:`` (a cursor)
with ``WatchJob(after=...)``. Pure and in memory: a bounded buffer (the oldest events leave
first; a job's progress event that is still its newest is replaced by the next one, so the
buffer keeps state changes longest). Cursors start at the clock's microseconds when the
service starts, so a cursor from before a restart is older than the buffer (a ``gap``), never
mistaken for a new one.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from luma_ray.jobs import JobState, Progress
from luma_ray.scheduler.answers import FeedEvent, FeedPage, JobView, JobWatch

EVENT_BUFFER = 20_000
"""Events kept for late readers and resuming streams (a few minutes of a busy cluster)."""
MAX_FEED_LIMIT = 5_000


class EventLog:
    """The scheduler's event buffer; single-threaded like the service that owns it."""

    def __init__(self, start_cursor: int, capacity: int = EVENT_BUFFER) -> None:
        self.capacity = capacity
        self.head = start_cursor
        """The newest cursor given out (``start_cursor`` before any event)."""
        self.floor = start_cursor
        """Every cursor at or below it is gone (evicted, or before this service started)."""
        self._events: OrderedDict[int, FeedEvent] = OrderedDict()
        self._tail_progress: dict[str, int] = {}
        """A job's progress event that is still its newest event: the next one replaces it."""
        self.listeners: list[Callable[[], None]] = []
        """Called after each event (the actor and the in-process port wake long polls)."""

    def state(self, view: JobView, at_s: float) -> None:
        """A job's state after a journaled change that moved it (``jobs.state_moved``: the
        caller knows from the job's history; a change of other fields is no event)."""
        self._tail_progress.pop(view.id, None)
        self._append("state", view.id, view.tenant, view.state, view.progress, at_s, view)

    def progress(
        self, job_id: str, tenant: str, state: JobState, progress: Progress, at_s: float
    ) -> None:
        """A heartbeat moved the job's progress (its state did not change)."""
        older = self._tail_progress.pop(job_id, None)
        if older is not None:
            self._events.pop(older, None)  # coalesced: the newest progress says it all
        self._append("progress", job_id, tenant, state, progress, at_s)
        self._tail_progress[job_id] = self.head

    def deleted(self, view: JobView, at_s: float) -> None:
        self._tail_progress.pop(view.id, None)
        self._append("deleted", view.id, view.tenant, view.state, view.progress, at_s, view)

    def after(self, after: int, limit: int, job_id: str | None = None) -> FeedPage:
        """Up to ``limit`` events after cursor ``after``, oldest first (only ``job_id``'s if
        given); ``gap`` when ``after`` is older than the buffer or newer than any cursor."""
        if after < self.floor or after > self.head:
            return FeedPage((), self.head, gap=True)
        newer: list[FeedEvent] = []
        for cursor in reversed(self._events):
            if cursor <= after:
                break
            event = self._events[cursor]
            if job_id is None or event.job_id == job_id:
                newer.append(event)
        newer.reverse()
        page = tuple(newer[: max(1, min(limit, MAX_FEED_LIMIT))])
        if len(page) < len(newer):
            return FeedPage(page, page[-1].cursor)
        return FeedPage(page, self.head)

    def __len__(self) -> int:
        return len(self._events)

    def _append(
        self,
        kind: str,
        job_id: str,
        tenant: str,
        state: JobState,
        progress: Progress,
        at_s: float,
        view: JobView | None = None,
    ) -> None:
        self.head += 1
        self._events[self.head] = FeedEvent(
            self.head, job_id, tenant, kind, state, progress, at_s, view
        )
        while len(self._events) > self.capacity:
            cursor, event = self._events.popitem(last=False)
            self.floor = cursor
            if self._tail_progress.get(event.job_id) == cursor:
                del self._tail_progress[event.job_id]
        for listener in list(self.listeners):
            listener()


class EventOps:
    """The service's event operations (``EventFeed``, ``WatchJob``, ``CallCounts``); mixed
    into :class:`~luma_ray.scheduler.service.SchedulerService`, which provides ``get``."""

    feed: EventLog
    calls: Counter[str]

    def get(self, job_id: str, tenant: str | None = None) -> JobView:
        raise NotImplementedError

    def event_feed(self, after: int, limit: int = 1000, wait_s: float = 0.0) -> FeedPage:
        """Every job's events after ``after``, for an ingress replica's subscriber (trusted:
        each event names its tenant). The service never waits; the actor (and the in-process
        port) wait up to ``wait_s`` for an event when there is none."""
        return self.feed.after(after, limit)

    def watch(self, job_id: str, tenant: str | None = None, after: int | None = None) -> JobWatch:
        """Open a stream on one job: its view and the cursor now (``NotFound`` for another
        tenant's job), and with ``after`` the job's events since that cursor."""
        view = self.get(job_id, tenant)
        if after is None:
            return JobWatch(view, self.feed.head)
        page = self.feed.after(after, MAX_FEED_LIMIT, job_id)
        return JobWatch(view, page.cursor, page.events, page.gap)

    def call_counts(self) -> dict[str, int]:
        """Operations answered since the service started, by op name (benchmarks, metrics)."""
        return dict(self.calls)
