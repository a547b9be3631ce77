"""The webhook sender: queues events and delivers them on a small pool of delivery threads.

Whatever observes job transitions (the scheduler's actor) builds a
:class:`~luma_ray.notify.events.WebhookEvent` and calls :meth:`WebhookSender.enqueue`.
Delivery never affects the job: ``enqueue`` only appends to memory (and, with an outbox, to
its file), the delivery threads do all network I/O (one attempt each at a time, through
:class:`~luma_ray.notify.poster.WebhookPoster`, each attempt ended by its deadline), and every
failure ends as a retry on the schedule, or a logged drop.

Tenants do not hold each other up: one tenant has at most ``max_in_flight_per_tenant``
attempts in progress (a slow receiver fills its own slots, the other threads serve the other
tenants) and at most ``max_pending_per_tenant`` events waiting (past it, only its own new
events are dropped). Events of one job go out in order (the next waits until the one before is
delivered or dropped), while a job that is waiting for its retry does not hold up other jobs.

With an outbox (``luma_ray.notify.outbox``) events not yet delivered outlive the process, and so
does where their retry schedule stands: a new sender on the same outbox goes on from there.
Delivery is at least once: receivers deduplicate on ``webhook-id``. Logs name the tenant,
the job, the event and ``scheme://host`` only, never the secret, the path or the query string of
a callback URL (they often carry tokens).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from luma_ray.config import WebhookConfig
from luma_ray.errors import InvalidRequest
from luma_ray.notify.backlog import Backlog, Delivery
from luma_ray.notify.events import WebhookEvent, event_body
from luma_ray.notify.outbox import Pending
from luma_ray.notify.poster import WebhookPoster
from luma_ray.notify.retries import Outcome, RetryPolicy
from luma_ray.notify.targets import Resolver, redact, resolve_host, validate_callback_url

logger = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where undelivered events wait across restarts (``outbox.WebhookOutbox``)."""

    def put(self, event: WebhookEvent) -> None: ...

    def retry(self, event_id: str, attempts: int, due_s: float) -> None: ...

    def done(self, event_id: str) -> None: ...

    def pending(self) -> list[Pending]: ...


class WebhookSender(contextlib.AbstractContextManager["WebhookSender"]):
    """Delivers events on background threads, in order per job, retrying on a schedule.

    One per process, built at start-up from the runtime's :class:`WebhookConfig` and closed at
    shutdown. ``sleep`` and ``clock`` are for tests: a fake clock whose ``sleep`` advances its
    ``clock``; time then moves only while no attempt is in progress. With ``sleep=None`` (the
    default) the threads wait on a condition that ``close`` cuts short. ``resolver`` looks
    hosts up at send time when ``allow_private`` is False; the request then goes to the address
    that was checked (Host header and TLS name stay the hostname), so DNS rebinding cannot slip
    in between check and connect. Redirects are not followed and proxy variables are ignored.
    """

    def __init__(
        self,
        secret: bytes,
        settings: WebhookConfig | None = None,
        *,
        allow_private: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = resolve_host,
        outbox: Outbox | None = None,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self.settings = settings = settings or WebhookConfig()
        self._policy = RetryPolicy(tuple(settings.retry_schedule_s))
        self._allow_private = allow_private
        self._sleep = sleep
        self._clock = clock
        self._poster = WebhookPoster(
            secret,
            attempt_timeout_s=settings.attempt_timeout_s,
            allow_private=allow_private,
            transport=transport,
            clock=clock,
            resolver=resolver,
        )
        self._cond = threading.Condition()
        self._backlog = Backlog(settings.max_in_flight_per_tenant)
        self._closing = False  # no more enqueues
        self._stopped = False  # threads exit at their next look at the backlog
        self._sleeping = False  # a thread is moving the fake clock
        self._abandoned = False  # close cleared the backlog
        self._stats = {"delivered": 0, "retried": 0, "dropped": 0}
        self._drops: collections.Counter[str] = collections.Counter()  # per tenant
        self._outbox = outbox
        left = outbox.pending() if outbox is not None else []
        for kept in left:  # what the last run did not deliver goes first, where it stood
            self._accept(kept.event, kept.attempts, kept.due_s, restored=True)
        if left:
            logger.info("webhooks: %d undelivered events from the last run queued again", len(left))
        self._threads = [
            threading.Thread(target=self._run, name=f"luma-webhooks-{n}", daemon=True)
            for n in range(settings.delivery_threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters: delivered, retried (attempts repeated), dropped (refused,
        given up or expired)."""
        with self._cond:
            return dict(self._stats)

    @property
    def dropped_by_tenant(self) -> dict[str, int]:
        """Drops per tenant (``""``: events without a tenant), for operators and tests."""
        with self._cond:
            return dict(self._drops)

    def enqueue(self, event: WebhookEvent) -> None:
        """Queue ``event``; from any thread. Never waits on the network, never raises for
        delivery problems (an unsendable or refused event is logged and counted as dropped)."""
        self._accept(event, 0, None, restored=False)

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
        """Refuse new events, give queued ones up to ``timeout_s`` to go out, stop the threads.

        Events still queued after that stay in the outbox for the next start (without one,
        they are dropped with a warning each). An attempt in progress may take up to one
        ``attempt_timeout_s`` more to end; close waits for that.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._closing = True
        self.flush(timeout_s)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            wait_s = max(0.0, deadline - time.monotonic()) + self.settings.attempt_timeout_s
            thread.join(wait_s)
        self._poster.close()
        self._abandon()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- accepting events ----------------------------------------------------------------

    def _accept(
        self, event: WebhookEvent, attempts: int, due_s: float | None, restored: bool
    ) -> None:
        """Queue ``event`` after ``attempts`` attempts, due at ``due_s`` (None: now); a
        ``restored`` event comes from the outbox and leaves it if it is not queued."""
        try:
            validate_callback_url(event.url, allow_private=self._allow_private)
            body = event_body(event)
        except (InvalidRequest, TypeError, ValueError) as exc:
            self._forget(event)  # kept by an earlier run, perhaps
            self._count_drop(event, f"unsendable ({type(exc).__name__}: {exc})")
            return
        tenant = event.tenant or ""
        limit = self.settings.max_pending_per_tenant
        with self._cond:
            if self._closing:
                refusal = "sender closed"
            elif self._backlog.held(tenant) >= limit:
                refusal = f"tenant over its pending limit ({limit} events)"
            elif attempts >= self._policy.max_attempts:
                refusal = f"expired after {attempts} attempts"
            else:
                if not restored:  # kept before a thread can see it: done() never comes first
                    self._keep(event)
                self._backlog.add(Delivery(event, body, attempts), due_s or self._clock())
                self._cond.notify_all()
                return
        if restored:
            self._forget(event)
        self._count_drop(event, refusal)

    # --- delivery threads ----------------------------------------------------------------

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                outcome = self._poster.post(delivery.event, delivery.body)
            except Exception:  # a bug here must not kill the thread or loop on one event
                logger.exception(
                    "webhook internal error job=%s event=%s",
                    delivery.event.job_id,
                    delivery.event.event_id,
                )
                outcome = Outcome("drop", "internal error")
            self._settle(delivery, outcome)

    def _next_due(self) -> Delivery | None:
        """Block until some tenant may send a job head that is due; None once stopped."""
        with self._cond:
            while not self._stopped:
                now_s = self._clock()
                delivery = self._backlog.take(now_s)
                if delivery is not None:
                    delivery.attempts += 1
                    return delivery
                due_s = self._backlog.next_due_s()
                if self._sleep is None:
                    self._cond.wait(None if due_s is None else due_s - now_s)
                elif due_s is None or self._backlog.in_flight or self._sleeping:
                    self._cond.wait()  # fake time moves only while no attempt is in progress
                else:
                    self._sleeping = True
                    self._cond.release()
                    try:
                        self._sleep(due_s - now_s)
                    finally:
                        self._cond.acquire()
                        self._sleeping = False
                        self._cond.notify_all()
            return None

    def _settle(self, delivery: Delivery, outcome: Outcome) -> None:
        event = delivery.event
        if self._policy.retries(outcome, delivery.attempts):
            delay_s = self._policy.delay_s(outcome, delivery.attempts)
            due_s = self._clock() + delay_s
            logger.info(
                "webhook retry tenant=%s job=%s event=%s host=%s attempt=%d reason=%s in %.1fs",
                delivery.tenant,
                event.job_id,
                event.event_id,
                redact(event.url),
                delivery.attempts,
                outcome.reason,
                delay_s,
            )
            self._remember(event, delivery.attempts, due_s)
            with self._cond:
                if self._abandoned:
                    return  # close gave up on this attempt; the outbox keeps the event
                self._stats["retried"] += 1
                self._backlog.retry_at(delivery, due_s)
                self._cond.notify_all()
            return
        self._forget(event)
        # Log before the books are updated, so a flush() that returns has seen the log line.
        if outcome.kind == "delivered":
            logger.debug("webhook delivered job=%s event=%s", event.job_id, event.event_id)
        elif outcome.kind == "retry":
            span_h = sum(self._policy.schedule_s) / 3600
            reason = (
                f"expired after {delivery.attempts} attempts over {span_h:.1f} h, "
                f"last {outcome.reason}"
            )
            _log_drop(event, reason)
        else:
            _log_drop(event, outcome.reason)
        with self._cond:
            if self._abandoned:
                return
            self._backlog.finish(delivery, self._clock())
            if outcome.kind == "delivered":
                self._stats["delivered"] += 1
            else:
                self._stats["dropped"] += 1
                self._drops[delivery.tenant] += 1
            self._cond.notify_all()

    def _abandon(self) -> None:
        """On close: drop whatever is still queued, so nothing vanishes without a log (with an
        outbox, keep it there for the next sender instead)."""
        with self._cond:
            left = self._backlog.events()
            self._backlog.clear()
            self._abandoned = True
            if self._outbox is None:
                self._stats["dropped"] += len(left)
                self._drops.update(event.tenant or "" for event in left)
            self._cond.notify_all()
        for event in left:
            if self._outbox is None:
                _log_drop(event, "sender closed before delivery")
        if left and self._outbox is not None:
            logger.info("webhooks: %d undelivered events kept for the next start", len(left))

    # --- the outbox (a safety net: sending goes on without it) ---------------------------

    def _keep(self, event: WebhookEvent) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.put(event)
        except Exception:
            logger.warning("webhook outbox: could not keep event %s", event.event_id)

    def _remember(self, event: WebhookEvent, attempts: int, due_s: float) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.retry(event.event_id, attempts, due_s)
        except Exception:
            logger.warning("webhook outbox: could not note attempt of %s", event.event_id)

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
            self._drops[event.tenant or ""] += 1


def _log_drop(event: WebhookEvent, reason: str) -> None:
    logger.warning(
        "webhook dropped tenant=%s job=%s event=%s host=%s reason=%s",
        event.tenant or "",
        event.job_id,
        event.event_id,
        redact(event.url),
        reason,
    )
