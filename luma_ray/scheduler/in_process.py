"""The scheduler service as an async port in one process (tests, benchmarks, single-process
tools give it to the ingress), answering like the actor: one call at a time, and an
``EventFeed`` with nothing to answer waits up to its ``wait_s`` for the next event, woken by
the service's event log (from whichever thread drives the service)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, TypeVar, cast

from luma_ray.scheduler.feed import EventLog
from luma_ray.scheduler.protocol import EventFeed, FeedPage, Op, SchedulerPort

R = TypeVar("R")

MAX_FEED_WAIT_S = 30.0


class InProcessScheduler:
    """An async port over an in-process port (a :class:`SchedulerService`), one call at a time
    as on the actor's event loop. Tests and single-process tools give it to the ingress."""

    def __init__(self, inner: SchedulerPort) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    async def call(self, op: Op[R]) -> R:
        if isinstance(op, EventFeed) and op.wait_s > 0:
            return cast(R, await self._long_poll(op))
        with self._lock:  # apps under test may serve from several threads
            return self.inner.call(op)

    async def _long_poll(self, op: EventFeed) -> FeedPage:
        feed: EventLog | None = getattr(self.inner, "feed", None)
        loop, news = asyncio.get_running_loop(), asyncio.Event()

        def wake() -> None:  # called on the thread that published the event
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(news.set)

        with self._lock:
            page = self.inner.call(op)
            if page.events or page.gap or feed is None:
                return page
            feed.listeners.append(wake)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(news.wait(), min(op.wait_s, MAX_FEED_WAIT_S))
        finally:
            with self._lock:
                feed.listeners.remove(wake)
        with self._lock:  # the same answer again, not counted as a second call
            service: Any = self.inner
            return cast(FeedPage, service.event_feed(op.after, op.limit))
