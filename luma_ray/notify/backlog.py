"""The sender's backlog: events accepted and not yet delivered, given up or expired.

One FIFO per job, whose head is the event in flight or next to go, so events of one job go out
in order. Job heads wait in a heap per tenant by due time, and a tenant with attempts to spare
(fewer than ``max_in_flight_per_tenant`` in flight) has its earliest head in one heap across
tenants: :meth:`Backlog.take` hands out the earliest due head of any tenant that may send now,
so a tenant whose receiver is slow fills its own slots and nobody else's. Not thread-safe: the
sender calls it only while holding its lock.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from dataclasses import dataclass, field

from luma_ray.notify.events import WebhookEvent


@dataclass
class Delivery:
    """One event on its way: the bytes to POST and how many attempts it has had."""

    event: WebhookEvent
    body: bytes
    attempts: int = 0

    @property
    def tenant(self) -> str:
        """The tenant it counts against; events without one share the name ``""``."""
        return self.event.tenant or ""


@dataclass
class _Tenant:
    heads: list[tuple[float, int, str]] = field(default_factory=list)  # (due_s, seq, job_id)
    in_flight: int = 0
    held: int = 0  # deliveries of this tenant in the backlog, in flight included
    stamp: int = 0  # which entry of Backlog._ready speaks for this tenant


class Backlog:
    """Deliveries per job and per tenant, when each job's head is due, who may send now."""

    def __init__(self, max_in_flight_per_tenant: int) -> None:
        if max_in_flight_per_tenant < 1:
            raise ValueError(
                f"at least one attempt in flight per tenant, not {max_in_flight_per_tenant}"
            )
        self._max_in_flight = max_in_flight_per_tenant
        self._jobs: dict[str, collections.deque[Delivery]] = {}  # per job, head first
        self._tenants: dict[str, _Tenant] = {}
        # (due_s, seq, tenant, stamp): the earliest head of each tenant with a free slot; an
        # entry whose stamp is not its tenant's any more is stale and skipped.
        self._ready: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._count = 0  # deliveries held, in all jobs
        self._in_flight = 0

    def __len__(self) -> int:
        return self._count

    @property
    def in_flight(self) -> int:
        """Deliveries taken and not yet settled, in all tenants."""
        return self._in_flight

    def held(self, tenant: str) -> int:
        """Deliveries of ``tenant`` in the backlog, in flight included."""
        entry = self._tenants.get(tenant)
        return entry.held if entry is not None else 0

    def add(self, delivery: Delivery, due_s: float) -> None:
        """Append ``delivery`` to its job; a job new to the backlog is due at ``due_s``."""
        job_id = delivery.event.job_id
        tenant = self._tenants.setdefault(delivery.tenant, _Tenant())
        tenant.held += 1
        self._count += 1
        queue = self._jobs.get(job_id)
        if queue is not None:
            queue.append(delivery)
            return
        self._jobs[job_id] = collections.deque([delivery])
        heapq.heappush(tenant.heads, (due_s, next(self._seq), job_id))
        self._refresh(delivery.tenant)

    def next_due_s(self) -> float | None:
        """When the earliest head of a tenant with a free slot is due; None when none waits."""
        self._drop_stale()
        return self._ready[0][0] if self._ready else None

    def take(self, now_s: float) -> Delivery | None:
        """The earliest head due by ``now_s`` of a tenant with a free slot, now in flight (it
        stays its job's head until :meth:`retry_at` or :meth:`finish`); None if none is due."""
        self._drop_stale()
        if not self._ready or self._ready[0][0] > now_s:
            return None
        name = heapq.heappop(self._ready)[2]
        tenant = self._tenants[name]
        job_id = heapq.heappop(tenant.heads)[2]
        tenant.in_flight += 1
        self._in_flight += 1
        self._refresh(name)
        return self._jobs[job_id][0]

    def retry_at(self, delivery: Delivery, due_s: float) -> None:
        """``delivery`` (in flight) failed and goes again at ``due_s``."""
        tenant = self._settle(delivery)
        heapq.heappush(tenant.heads, (due_s, next(self._seq), delivery.event.job_id))
        self._refresh(delivery.tenant)

    def finish(self, delivery: Delivery, now_s: float) -> None:
        """``delivery`` (in flight) was delivered or dropped: its job's next is due at
        ``now_s``."""
        tenant = self._settle(delivery)
        job_id = delivery.event.job_id
        queue = self._jobs[job_id]
        queue.popleft()
        if queue:
            heapq.heappush(tenant.heads, (now_s, next(self._seq), job_id))
        else:
            del self._jobs[job_id]
        tenant.held -= 1
        self._count -= 1
        if tenant.held == 0:
            del self._tenants[delivery.tenant]
        else:
            self._refresh(delivery.tenant)

    def events(self) -> list[WebhookEvent]:
        """Every event held, job by job, in order."""
        return [d.event for queue in self._jobs.values() for d in queue]

    def clear(self) -> None:
        self._jobs.clear()
        self._tenants.clear()
        self._ready.clear()
        self._count = self._in_flight = 0

    def _settle(self, delivery: Delivery) -> _Tenant:
        tenant = self._tenants[delivery.tenant]
        tenant.in_flight -= 1
        self._in_flight -= 1
        return tenant

    def _refresh(self, name: str) -> None:
        """Make the one ready entry of tenant ``name`` say its earliest head, if it may send."""
        tenant = self._tenants[name]
        tenant.stamp += 1
        if tenant.heads and tenant.in_flight < self._max_in_flight:
            due_s = tenant.heads[0][0]
            heapq.heappush(self._ready, (due_s, next(self._seq), name, tenant.stamp))
        if len(self._ready) > 4 * len(self._tenants) + 64:  # stale entries pile up: compact
            self._ready = [entry for entry in self._ready if self._live(entry)]
            heapq.heapify(self._ready)

    def _drop_stale(self) -> None:
        while self._ready and not self._live(self._ready[0]):
            heapq.heappop(self._ready)

    def _live(self, entry: tuple[float, int, str, int]) -> bool:
        tenant = self._tenants.get(entry[2])
        return tenant is not None and tenant.stamp == entry[3]
