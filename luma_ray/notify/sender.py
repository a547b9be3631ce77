"""The webhook sender: queues events and delivers them on one background thread.

Whatever observes job transitions (the scheduler's actor) builds a
:class:`~luma_ray.notify.events.WebhookEvent` and calls :meth:`WebhookSender.enqueue`.
Delivery never affects the job: ``enqueue`` only appends to memory (and, with an outbox, to
its file), one background thread does all network I/O (one attempt at a time, through
:class:`~luma_ray.notify.poster.WebhookPoster`), and every failure ends as a retry or a
logged drop. With an outbox (``luma_ray.notify.outbox``) events not yet delivered outlive the
process: a new sender on the same outbox sends them first. Events of one job go out in
order (the next waits until the one before is delivered or dropped), while a job that is backing
off does not hold up other jobs. Delivery is at least once: receivers deduplicate on
``X-Luma-Event-Id``. Logs name the job, the event and ``scheme://host`` only, never the secret,
the path or the query string of a callback URL (they often carry tokens).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from luma_ray.errors import InvalidRequest
from luma_ray.notify.backlog import Backlog, Delivery
from luma_ray.notify.events import WebhookEvent, event_body
from luma_ray.notify.poster import WebhookPoster
from luma_ray.notify.retries import Outcome, RetryPolicy
from luma_ray.notify.targets import Resolver, redact, resolve_host, validate_callback_url

logger = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where undelivered events wait across restarts (``outbox.WebhookOutbox``)."""

    def put(self, event: WebhookEvent) -> None: ...

    def done(self, event_id: str) -> None: ...

    def pending(self) -> list[WebhookEvent]: ...


class WebhookSender(contextlib.AbstractContextManager["WebhookSender"]):
    """Delivers events on a background thread, in order per job, retrying with backoff.

    One per process, built at start-up and closed at shutdown. ``sleep`` and ``clock`` are for
    tests: a fake clock whose ``sleep`` advances its ``clock``. With ``sleep=None`` (the
    default) the worker waits on a condition that ``close`` cuts short. ``resolver`` looks hosts
    up at send time when ``allow_private`` is False; the request then goes to the address that
    was checked (Host header and TLS name stay the hostname), so DNS rebinding cannot slip in
    between check and connect. Redirects are not followed and proxy variables are ignored.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        max_attempts: int = 6,
        base_delay_s: float = 0.5,
        max_delay_s: float = 60.0,
        timeout_s: float = 5.0,
        allow_private: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        jitter: float = 0.0,
        rng: random.Random | None = None,
        resolver: Resolver = resolve_host,
        max_pending: int = 10_000,
        outbox: Outbox | None = None,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        if max_attempts < 1 or max_pending < 1 or timeout_s <= 0:
            raise ValueError("max_attempts and max_pending must be >= 1, timeout_s > 0")
        self._policy = RetryPolicy(max_attempts, base_delay_s, max_delay_s, jitter)
        self._timeout_s = timeout_s
        self._allow_private = allow_private
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_pending = max_pending
        self._poster = WebhookPoster(
            secret,
            timeout_s=timeout_s,
            allow_private=allow_private,
            transport=transport,
            clock=clock,
            resolver=resolver,
        )
        self._cond = threading.Condition()
        self._backlog = Backlog()  # events accepted and not yet delivered or dropped
        self._closing = False  # no more enqueues
        self._stopped = False  # worker exits at its next look at the queue
        self._stats = {"delivered": 0, "retried": 0, "dropped": 0}
        self._outbox = outbox
        left = outbox.pending() if outbox is not None else []
        for event in left:  # what the last run did not deliver goes first
            self.enqueue(event)
        if left:
            logger.info("webhooks: %d undelivered events from the last run queued again", len(left))
        self._thread = threading.Thread(target=self._run, name="luma-webhooks", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters: delivered, retried (attempts repeated), dropped (gave up)."""
        with self._cond:
            return dict(self._stats)

    def enqueue(self, event: WebhookEvent) -> None:
        """Queue ``event``; from any thread. Never waits on the network, never raises for
        delivery problems (an unsendable event is logged and counted as dropped)."""
        try:
            validate_callback_url(event.url, allow_private=self._allow_private)
            body = event_body(event)
        except (InvalidRequest, TypeError, ValueError) as exc:
            self._forget(event)  # kept by an earlier run, perhaps
            self._count_drop(event, f"unsendable ({type(exc).__name__}: {exc})")
            return
        with self._cond:
            refusal = "sender closed" if self._closing else None
            if refusal is None and len(self._backlog) >= self._max_pending:
                refusal = f"queue full ({self._max_pending} events)"
            if refusal is None:
                # Kept before the worker can see it, so its done() never comes first.
                self._keep(event)
                self._backlog.add(Delivery(event, body), self._clock())
                self._cond.notify_all()
                return
        self._count_drop(event, refusal)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real seconds) until every queued event is delivered or
        dropped; True if it came to that. For tests and shutdown."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._backlog):
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return False
                self._cond.wait(remaining_s)
            return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Refuse new events, give queued ones up to ``timeout_s`` to go out, stop the worker.

        Events still queued after that are dropped with a warning each. The worker may need up
        to one request timeout more to finish an attempt in progress; close waits for that.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._closing = True
        self.flush(timeout_s)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()) + self._timeout_s)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (delivery := self._next_due()) is not None:
                try:
                    delivery.attempts += 1
                    outcome = self._poster.post(delivery.event, delivery.body)
                except Exception:  # a bug here must not kill the thread or loop on one event
                    logger.exception(
                        "webhook internal error job=%s event=%s",
                        delivery.event.job_id,
                        delivery.event.event_id,
                    )
                    outcome = Outcome("drop", "internal error")
                self._settle(delivery, outcome)
        finally:
            self._poster.close()
            self._abandon()

    def _next_due(self) -> Delivery | None:
        """Block until some job's head event is due; None once the sender is stopped."""
        while True:
            with self._cond:
                if self._stopped:
                    return None
                due_s = self._backlog.next_due_s()
                if due_s is None:
                    self._cond.wait()
                    continue
                wait_s = due_s - self._clock()
                if wait_s <= 0:
                    return self._backlog.pop_due()
                if self._sleep is None:
                    self._cond.wait(wait_s)
                    continue
            self._sleep(wait_s)

    def _settle(self, delivery: Delivery, outcome: Outcome) -> None:
        event = delivery.event
        if self._policy.retries(outcome, delivery.attempts):
            delay_s = self._policy.delay_s(outcome, delivery.attempts, self._rng)
            logger.info(
                "webhook retry job=%s event=%s host=%s attempt=%d reason=%s in %.2fs",
                event.job_id,
                event.event_id,
                redact(event.url),
                delivery.attempts,
                outcome.reason,
                delay_s,
            )
            with self._cond:
                self._stats["retried"] += 1
                self._backlog.retry_at(self._clock() + delay_s, event.job_id)
            return
        self._forget(event)
        # Log before the books are updated, so a flush() that returns has seen the log line.
        if outcome.kind == "delivered":
            logger.debug("webhook delivered job=%s event=%s", event.job_id, event.event_id)
        elif outcome.kind == "retry":
            reason = f"gave up after {delivery.attempts} attempts, last {outcome.reason}"
            _log_drop(event, reason)
        else:
            _log_drop(event, outcome.reason)
        with self._cond:
            self._backlog.finish(event.job_id, self._clock())
            self._stats["delivered" if outcome.kind == "delivered" else "dropped"] += 1
            self._cond.notify_all()

    def _abandon(self) -> None:
        """On worker exit: drop whatever is still queued, so nothing vanishes without a log
        (with an outbox, keep it there for the next sender instead)."""
        with self._cond:
            left = self._backlog.events()
        for event in left:
            if self._outbox is None:
                _log_drop(event, "sender closed before delivery")
        if left and self._outbox is not None:
            logger.info("webhooks: %d undelivered events kept for the next start", len(left))
        with self._cond:
            self._backlog.clear()
            if self._outbox is None:
                self._stats["dropped"] += len(left)
            self._cond.notify_all()

    def _keep(self, event: WebhookEvent) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.put(event)
        except Exception:  # the outbox is a safety net: sending goes on without it
            logger.warning("webhook outbox: could not keep event %s", event.event_id)

    def _forget(self, event: WebhookEvent) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.done(event.event_id)
        except Exception:
            logger.warning("webhook outbox: could not remove event %s", event.event_id)

    def _count_drop(self, event: WebhookEvent, reason: str) -> None:
        """Drop an event that never entered the queue (refused by ``enqueue``)."""
        _log_drop(event, reason)
        with self._cond:
            self._stats["dropped"] += 1


def _log_drop(event: WebhookEvent, reason: str) -> None:
    logger.warning(
        "webhook dropped job=%s event=%s host=%s reason=%s",
        event.job_id,
        event.event_id,
        redact(event.url),
        reason,
    )
