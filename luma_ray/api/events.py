"""Job events for the replica's event streams: one subscriber, many followers.

A replica makes no scheduler call per stream beyond its opening ``WatchJob``. Its one
:class:`Subscriber` per event loop (started by the first stream, stopped when the last ends or
the app shuts down) long-polls ``EventFeed(after=cursor)`` and hands each event to the
:class:`Follower` of every stream on that job. A follower holds at most ``size`` events; a
stream that far behind skips to its job's latest state and progress rather than holding up
the others. When the feed says events were lost (``gap``: the scheduler restarted, or this
replica fell behind its buffer) the subscriber re-reads each followed job once with
``GetJob`` and hands that on as the job's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from luma_ray.errors import NotFound
from luma_ray.jobs import JobState, Progress
from luma_ray.scheduler.protocol import (
    AsyncSchedulerPort,
    EventFeed,
    FeedEvent,
    GetJob,
    JobWatch,
    WatchJob,
)

log = logging.getLogger(__name__)

RETRY_S = 1.0
"""Pause after a failed feed call (the scheduler restarting) before the next."""


class Follower:
    """One stream's events, oldest first; bounded (see the module's docstring)."""

    def __init__(self, job_id: str, size: int) -> None:
        self.job_id, self.size = job_id, max(2, size)
        self.skipped = 0
        """Events dropped because the stream was too slow to take them."""
        self._items: deque[FeedEvent] = deque()
        self._ready = asyncio.Event()

    def put(self, event: FeedEvent) -> None:
        self._items.append(event)
        if len(self._items) > self.size:
            self._catch_up()
        self._ready.set()

    async def take(self, timeout_s: float) -> list[FeedEvent]:
        """Every waiting event, waiting up to ``timeout_s`` for one; [] if none came."""
        if not self._items:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), max(timeout_s, 0.0))
        self._ready.clear()
        out = list(self._items)
        self._items.clear()
        return out

    def _catch_up(self) -> None:
        """Keep only the newest state event and any newer progress event."""
        items = list(self._items)
        last_state = max((i for i, e in enumerate(items) if e.view is not None), default=-1)
        keep = [items[last_state]] if last_state >= 0 else []
        later = [e for e in items[last_state + 1 :] if e.view is None]
        keep += later[-1:]
        self.skipped += len(items) - len(keep)
        self._items = deque(keep)


Opened = tuple[Follower, JobWatch]


class CallBudget:
    """A token bucket for feed calls: ``burst`` calls at once, refilled at one per
    ``interval_s``; so at most ``burst + T / interval_s`` calls in any ``T`` seconds.

    A fixed gap between calls would hold every event of a job that runs faster than the gap
    (a small model's steps, then its ``done``) for up to ``interval_s``; a quiet replica has
    calls in hand and passes them on at once, and a busy one is paced as before."""

    def __init__(self, interval_s: float, burst: int) -> None:
        self.interval_s, self.burst = interval_s, max(1, burst)
        self._tokens = float(self.burst)
        self._at: float | None = None

    def spend(self, now: float) -> float:
        """Take one call at ``now``; return how long to wait before making it."""
        if self.interval_s <= 0:
            return 0.0
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) / self.interval_s)
        self._at = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens * self.interval_s  # the refill that pays the debt


class Subscriber:
    """The replica's one reader of the scheduler's job events, on one event loop."""

    def __init__(
        self,
        port: AsyncSchedulerPort,
        wait_s: float,
        size: int,
        on_stop: Callable[[], None],
        interval_s: float = 0.0,
        burst: int = 10,
    ) -> None:
        self.port, self.wait_s, self.size, self._on_stop = port, wait_s, size, on_stop
        self.interval_s = interval_s
        """Feed calls are paced to one per ``interval_s`` on average (events arriving meanwhile
        come in one answer), so a busy cluster costs at most 1/interval_s calls a second per
        replica; see :class:`CallBudget`."""
        self.burst = burst
        """Calls a quiet replica may make back to back before the pace applies."""
        self.cursor = 0
        self._followers: dict[str, set[Follower]] = {}
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def follow(self, job_id: str, tenant: str, after: int | None) -> Opened:
        """Follow ``job_id`` from now: its follower and the opening ``WatchJob`` (NotFound for
        another tenant's job). The follower is registered before the watch, so no event after
        the watch's cursor can pass unseen; the stream drops those at or before it."""
        if not self.running:
            async with self._starting:  # the first stream starts the subscriber at its cursor
                if not self.running:
                    follower, watch = await self._open(job_id, tenant, after)
                    self.cursor = watch.cursor
                    self._task = asyncio.get_running_loop().create_task(self._run())
                    return follower, watch
        return await self._open(job_id, tenant, after)

    async def _open(self, job_id: str, tenant: str, after: int | None) -> Opened:
        follower = Follower(job_id, self.size)
        self._followers.setdefault(job_id, set()).add(follower)
        try:
            return follower, await self.port.call(WatchJob(job_id, tenant, after))
        except BaseException:
            self.leave(follower)
            raise

    def leave(self, follower: Follower) -> None:
        """A stream ended; the last one stops the subscriber."""
        followers = self._followers.get(follower.job_id)
        if followers is None or follower not in followers:
            return  # left already
        followers.discard(follower)
        if not followers:
            del self._followers[follower.job_id]
        if not self._followers and not self._starting.locked():
            self.stop()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._on_stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        budget = CallBudget(self.interval_s, self.burst)
        while True:
            # A rate cap, not a poll: a quiet replica calls at once, a busy one waits its turn.
            await asyncio.sleep(budget.spend(loop.time()))
            try:
                page = await self.port.call(EventFeed(self.cursor, 1000, self.wait_s))
            except asyncio.CancelledError:
                raise
            except Exception:  # the scheduler restarting: the handle already waited for it
                log.warning("reading job events failed; trying again", exc_info=True)
                await asyncio.sleep(RETRY_S)  # a pause between tries, not synchronisation
                continue
            if page.gap:
                log.warning("job events after %d are gone; re-reading followed jobs", self.cursor)
                await self._reread(page.cursor)
            for event in page.events:
                for follower in self._followers.get(event.job_id, ()):
                    follower.put(event)
            self.cursor = page.cursor

    async def _reread(self, cursor: int) -> None:
        """Each followed job's state now, as one event at ``cursor`` (once per job)."""
        for job_id in list(self._followers):
            try:
                view = await self.port.call(GetJob(job_id))
            except NotFound:
                event = FeedEvent(cursor, job_id, "", "deleted", JobState.CANCELLED, Progress(), 0)
            else:
                event = FeedEvent(
                    cursor, job_id, view.tenant, "state", view.state, view.progress, 0, view
                )
            for follower in self._followers.get(job_id, ()):
                follower.put(event)


class EventHub:
    """The app's subscribers, one per event loop (a Serve replica has one; tests may drive
    the same app from several)."""

    def __init__(
        self,
        port: AsyncSchedulerPort,
        wait_s: float,
        size: int,
        interval_s: float = 0.0,
        burst: int = 10,
    ) -> None:
        self.port, self.wait_s, self.size, self.interval_s = port, wait_s, size, interval_s
        self.burst = burst
        self._subscribers: dict[asyncio.AbstractEventLoop, Subscriber] = {}

    def subscriber(self) -> Subscriber:
        loop = asyncio.get_running_loop()
        found = self._subscribers.get(loop)
        if found is None:
            found = Subscriber(
                self.port,
                self.wait_s,
                self.size,
                lambda: self._drop(loop, found),
                self.interval_s,
                self.burst,
            )
            self._subscribers[loop] = found
        return found

    def _drop(self, loop: asyncio.AbstractEventLoop, subscriber: Subscriber | None) -> None:
        if self._subscribers.get(loop) is subscriber:
            del self._subscribers[loop]

    def stop(self) -> None:
        """The app shuts down: stop every subscriber."""
        for subscriber in list(self._subscribers.values()):
            subscriber.stop()

    @property
    def subscribers(self) -> int:
        return sum(s.running for s in self._subscribers.values())
