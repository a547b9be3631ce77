"""The scheduler actor's handles: the only code that calls the actor.

:class:`SchedulerHandle` (blocking: workers, the Ray client, the command line) and
:class:`AsyncSchedulerHandle` (the HTTP ingress's event loop) send one
``luma_ray.scheduler.protocol`` op per call and return its typed answer. Both raise luma_ray's
own errors, never Ray's: an error the scheduler raised comes back as itself, and a scheduler
that does not answer within the retry budget (Ray restarting it, a lost head) raises
``SchedulerUnavailable``. Every op is safe to send twice (a submit gets an idempotency key
first), so a call whose answer was lost is simply sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import ray

from luma_ray.errors import LumaError, SchedulerUnavailable
from luma_ray.runtime.backoff import backoff
from luma_ray.scheduler.protocol import CompleteAndPull, EventFeed, Op, Pull

R = TypeVar("R")

SCHEDULER_NAME = "luma-scheduler"
NAMESPACE = "luma_ray"
RESTART_WAIT_S = 120.0
"""How long a call waits for a restarting scheduler before ``SchedulerUnavailable``."""
CALL_TIMEOUT_S = 60.0
"""How long one attempt waits for its answer (a pull, an event feed: plus its ``wait_s``)."""

_RETRY = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, asyncio.TimeoutError)


@contextlib.contextmanager
def _attempt() -> Iterator[None]:
    """One try: an error the scheduler raised comes back as itself (Ray wraps it); a restart
    or a timeout is swallowed, and the caller tries again."""
    try:
        yield
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        raise (cause if isinstance(cause, LumaError) else err) from None
    except _RETRY:
        pass


class _Handle:
    def __init__(
        self,
        actor: Any,
        restart_wait_s: float = RESTART_WAIT_S,
        call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.actor = actor
        """The Ray actor handle of the scheduler (``luma-scheduler``)."""
        self.restart_wait_s = restart_wait_s
        self.call_timeout_s = call_timeout_s

    def _timeout_s(self, op: Op[Any]) -> float:
        return self.call_timeout_s + (
            op.wait_s if isinstance(op, (Pull, CompleteAndPull, EventFeed)) else 0.0
        )

    def _gave_up(self, op: Op[Any]) -> SchedulerUnavailable:
        return SchedulerUnavailable(
            f"the scheduler did not answer {type(op).__name__} within "
            f"{self.restart_wait_s:g} s; it may be restarting: try again shortly"
        )


class SchedulerHandle(_Handle):
    """Blocking calls to the scheduler actor."""

    def call(self, op: Op[R]) -> R:
        op = op.safe_to_retry()
        for pause_s in backoff(self.restart_wait_s):
            time.sleep(pause_s)  # back off while Ray restarts the actor
            with _attempt():
                answer: R = ray.get(self.actor.call.remote(op), timeout=self._timeout_s(op))
                return answer
        raise self._gave_up(op)


class AsyncSchedulerHandle(_Handle):
    """Awaitable calls to the scheduler actor, for an event loop."""

    async def call(self, op: Op[R]) -> R:
        op = op.safe_to_retry()
        for pause_s in backoff(self.restart_wait_s):
            await asyncio.sleep(pause_s)  # back off while Ray restarts the actor
            with _attempt():
                ref = self.actor.call.remote(op)
                answer: R = await asyncio.wait_for(ref, self._timeout_s(op))
                return answer
        raise self._gave_up(op)


def scheduler_actor() -> Any:
    """The running scheduler actor; ``ValueError`` when none runs on this cluster."""
    return ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)


def get_scheduler(restart_wait_s: float = RESTART_WAIT_S) -> SchedulerHandle:
    """A blocking handle on the running scheduler; ``ValueError`` when none runs."""
    return SchedulerHandle(scheduler_actor(), restart_wait_s)


def get_async_scheduler(restart_wait_s: float = RESTART_WAIT_S) -> AsyncSchedulerHandle:
    """An awaitable handle on the running scheduler; ``ValueError`` when none runs."""
    return AsyncSchedulerHandle(scheduler_actor(), restart_wait_s)
