"""Fair share's accounts: one virtual time per (tier, tenant), shared by the tier's model lanes.

A tier's jobs wait in one :class:`~luma_ray.scheduler.shares.FairLane` per model, but a tenant
has one account per tier: a dispatch on any model adds ``cost / weight`` to it, and every lane
where the tenant has queued jobs sees the new virtual time at once (the :class:`Accounts` tells
them through :meth:`FairLane.sync`). So a tenant served many times on one model waits for the
others on the next, as it does in the simulator, which keeps one lane per tier.

*No banked credit* is per tier too: a tenant that gets a queued job while it has none anywhere
in the tier is lifted to the least virtual time of the tier's tenants with queued jobs, or,
when there are none, to the tier's *floor* (the largest virtual time a tenant had when it last
left the tier). A tenant with jobs on one model that queues a job on another is not lifted: it
has been waiting in the tier all along.

Costs: a charge is O(lanes where the tenant has queued jobs x log tenants); the least active
virtual time is a heap with lazy deletion, O(log tenants) amortised.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Protocol


class Syncable(Protocol):
    """A lane that shows an account's virtual time (``FairLane``)."""

    def sync(self, tenant: str, vtime: float) -> None: ...


class Accounts:
    """The virtual times of one tier's tenants, and the lanes where each has queued jobs."""

    def __init__(self) -> None:
        self.vtime: dict[str, float] = {}
        self.lanes_of: dict[str, list[Syncable]] = {}
        """Per tenant, the lanes where it has queued jobs (few: the models it uses)."""
        self.floor = 0.0
        self._active: list[tuple[float, str]] = []  # (vtime, tenant) of tenants with jobs

    def join(self, tenant: str, lane: Syncable) -> float:
        """``tenant`` got its first queued job in ``lane``; its virtual time, lifted if it had
        no queued job anywhere in the tier."""
        lanes = self.lanes_of.setdefault(tenant, [])
        v = self.vtime.get(tenant, 0.0)
        if not lanes:
            v = self.vtime[tenant] = max(v, self.least_active())
            heappush(self._active, (v, tenant))
        lanes.append(lane)
        return v

    def leave(self, tenant: str, lane: Syncable) -> None:
        """``tenant`` has no more queued jobs in ``lane``."""
        lanes = self.lanes_of[tenant]
        lanes.remove(lane)
        if not lanes:
            self.floor = max(self.floor, self.vtime[tenant])

    def charge(self, tenant: str, amount: float, lane: Syncable) -> float:
        """Add ``amount`` to ``tenant``'s virtual time (a dispatch from ``lane``); the other
        lanes where it has queued jobs are told. Returns the new virtual time."""
        v = self.vtime[tenant] = self.vtime.get(tenant, 0.0) + amount
        lanes = self.lanes_of.get(tenant, ())
        if lanes:
            heappush(self._active, (v, tenant))
            if len(self._active) > 4 * len(self.lanes_of) + 1024:
                self._active = [(self.vtime[n], n) for n, held in self.lanes_of.items() if held]
                heapify(self._active)
        for other in lanes:
            if other is not lane:
                other.sync(tenant, v)
        return v

    def least_active(self) -> float:
        """The least virtual time of the tier's tenants with queued jobs; the floor if none."""
        heap = self._active
        while heap:
            v, name = heap[0]
            if self.lanes_of.get(name) and self.vtime[name] == v:
                return v
            heappop(heap)
        return self.floor
