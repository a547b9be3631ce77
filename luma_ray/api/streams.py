"""``GET /v1/generations/{id}/events``: one job's server-sent events, with ids to resume from.

Events, each with ``id:`` (the scheduler's event cursor): ``state`` on each state change,
``progress`` on each step (``{"id", "phase", "step", "total"}``), then ``done`` with the
generation, and the stream ends (``state`` ``deleted`` ends it too). A new stream starts with
the job's current state. A client that reconnects with ``Last-Event-ID`` gets exactly the
job's events after that id that the scheduler still holds, then the live ones; an id older
than that buffer (or from before a scheduler restart) gets the current state first. A comment
line every ``sse_keepalive_s`` keeps an idle stream open through proxies. The frames come
from ``sse-starlette``; the events from the replica's one subscriber (``api/events.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from luma_ray.api.events import Follower, Subscriber
from luma_ray.errors import InvalidRequest
from luma_ray.scheduler.protocol import FeedEvent, JobView, JobWatch
from luma_ray.wire.generation import generation_view


def last_event_id(header: str | None) -> int | None:
    """The cursor a reconnecting client saw last; None for a new stream."""
    if header is None or not header.strip():
        return None
    try:
        value = int(header.strip())
    except ValueError:
        raise InvalidRequest(
            f"Last-Event-ID {header[:40]!r} is not an id this API sent; reconnect without it"
        ) from None
    if value < 0:
        raise InvalidRequest("Last-Event-ID must be an id this API sent; reconnect without it")
    return value


class JobStream:
    """Turns one job's feed events into SSE events, as the stream has shown the job so far."""

    def __init__(self, job_id: str, view: JobView) -> None:
        self.job_id, self.view = job_id, view
        self.state: str | None = None
        self.step = -1
        self.cursor = 0
        self.finished = False

    def render(self, event: FeedEvent) -> list[ServerSentEvent]:
        if event.kind not in ("state", "progress", "deleted"):
            return []  # kinds this version does not show (a pipeline's stages)
        self.cursor = event.cursor
        if event.kind == "deleted":
            self.finished = True
            return [self._sse("state", {"id": self.job_id, "state": "deleted"})]
        out: list[ServerSentEvent] = []
        state, progress = event.state.value, event.progress
        moved = state != self.state
        if event.view is not None:
            self.view = event.view
            if moved:
                out.append(self._sse("state", {"id": self.job_id, "state": state}))
        else:
            self.view = replace(self.view, progress=progress)
            if not moved and progress.step < self.step:
                return []  # older than what the stream showed (after a re-read)
        if progress.total and (moved or progress.step != self.step):
            out.append(self._sse("progress", {"id": self.job_id, **asdict(progress)}))
        self.state, self.step = state, progress.step
        if event.view is not None and event.state.terminal:
            out.append(self.done())
        return out

    def done(self) -> ServerSentEvent:
        self.finished = True
        return self._sse("done", generation_view(self.view))

    def _sse(self, name: str, data: Mapping[str, object]) -> ServerSentEvent:
        text = json.dumps(data, separators=(",", ":"))
        return ServerSentEvent(text, event=name, id=str(self.cursor))


def as_event(watch: JobWatch) -> FeedEvent:
    """The job as the stream opened on it, as a state event at the watch's cursor."""
    v = watch.view
    return FeedEvent(watch.cursor, v.id, v.tenant, "state", v.state, v.progress, 0.0, v)


async def job_events(
    subscriber: Subscriber,
    follower: Follower,
    watch: JobWatch,
    resume: bool,
    timeout_s: float,
) -> AsyncIterator[ServerSentEvent]:
    """The stream's events: the current state (or, resuming, the missed events), then what the
    subscriber hands on, until a final state, deletion, or ``timeout_s``."""
    stream = JobStream(watch.view.id, watch.view)
    try:
        first = list(watch.replay) if resume and not watch.gap else [as_event(watch)]
        if resume and not watch.gap and watch.view.done and not stream_ends(first):
            first.append(as_event(watch))  # it ended before the id the client saw last
        for event in first:
            for sse in stream.render(event):
                yield sse
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not stream.finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield stream.done()
                return
            for event in await follower.take(remaining):
                if event.cursor <= watch.cursor:
                    continue  # the opening watch already covered it
                for sse in stream.render(event):
                    yield sse
                if stream.finished:
                    break
    finally:
        subscriber.leave(follower)


def stream_ends(events: list[FeedEvent]) -> bool:
    return any(e.kind == "deleted" or (e.view is not None and e.state.terminal) for e in events)


class SlotStream(EventSourceResponse):
    """An event stream that gives back its tenant's stream slot when it ends, however it ends
    (finished, client gone, cancelled, failed)."""

    def __init__(
        self, content: AsyncIterator[ServerSentEvent], close: Callable[[], None], **kw: Any
    ):
        super().__init__(content, **kw)
        self._close = close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()
