"""The replica's copy of the scheduler's limits (``DescribeLimits``), so that a submit makes one
scheduler call (its ``Submit``) and not two.

The ingress checks a request's inputs against its model's limits (the kinds it takes, a source
video's frames) before it stores them. Those limits change only when the scheduler restarts
with other settings (a new model, new limits), so each replica keeps the last answer and asks
again when it is ``ttl_s`` old: in the background (the request goes on with the copy it has)
once it is ``ttl_s / 2`` old, and awaited once it is ``ttl_s`` old. A submit is therefore judged by
limits at most ``ttl_s`` old (default 10 s); under steady traffic no submit waits for them.
The scheduler checks every request against its own limits at intake anyway: a stale copy can
let through an input the scheduler then refuses, or refuse one a changed model now takes,
never queue a job its model cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from luma_ray.scheduler.protocol import AsyncSchedulerPort, DescribeLimits, Limits

LIMITS_TTL_S = 10.0


class LimitsCache:
    """``DescribeLimits``' last answer, refreshed as the module's docstring says."""

    def __init__(
        self, port: AsyncSchedulerPort, clock: Callable[[], float], ttl_s: float = LIMITS_TTL_S
    ) -> None:
        self.port, self.clock, self.ttl_s = port, clock, ttl_s
        self._limits: Limits | None = None
        self._fetched_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None

    async def get(self) -> Limits:
        """The limits, at most ``ttl_s`` old; asks the scheduler only when they are older."""
        age = self.clock() - self._fetched_at
        if self._limits is None or age >= self.ttl_s:
            await self.refresh()
        elif age >= self.ttl_s / 2 and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())
        assert self._limits is not None
        return self._limits

    async def refresh(self) -> Limits:
        """Ask the scheduler now (``/v1/limits``' errors are the scheduler's own)."""
        started = self.clock()
        self._limits = await self.port.call(DescribeLimits())
        self._fetched_at = started
        return self._limits

    def last(self) -> Limits | None:
        """The copy as it is, however old, without asking (None before the first answer)."""
        return self._limits

    def expire(self) -> None:
        """Forget the copy: the next request asks the scheduler (its settings changed)."""
        self._limits = None

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the copy stays; the request at ttl_s awaits
            await self.refresh()
