"""The routes' scheduler port: reads of finished jobs come from the journal's file, the rest
from the scheduler.

A client polls its job until it is done, and reads it again whenever it shows the result; with
many clients, most reads are of finished jobs, and each went through the scheduler actor, the
one process every submit and every worker's lease also needs. A finished job no longer
changes, and the scheduler commits it to its journal before anyone hears that it finished, so
an ingress replica that runs on the scheduler's machine reads it from the file itself
(:class:`~luma_ray.scheduler.journal_replica.JournalReplica`, read-only) and answers with the
same view the scheduler would give (``views.finished_view``).

Which file, and whether this replica may read it, comes from the scheduler: its limits
(``DescribeLimits``, kept by the replica: ``limits_cache``) name the journal's path and the
identity written into it. A replica that finds no file of that identity there (it runs on
another machine) asks the scheduler for everything, as does one whose copy of the limits
names no journal. When the identity changes (a new journal), the file is opened again.

Tenants stay apart as in the scheduler: a job of another tenant is not answered here (the
scheduler's ``NotFound`` then answers). A job that is not finished, not in the file, or whose
row cannot be read goes to the scheduler too, which gives its own answer or error. While the
scheduler restarts, finished jobs can still be read with the last copy of the limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from luma_ray.api.limits_cache import LimitsCache
from luma_ray.errors import LumaError
from luma_ray.scheduler.journal_replica import JournalReplica
from luma_ray.scheduler.protocol import (
    AsyncSchedulerPort,
    GetJob,
    JobView,
    JournalFile,
    Limits,
    Op,
)
from luma_ray.scheduler.views import finished_view

R = TypeVar("R")


class FinishedReads:
    """An :class:`AsyncSchedulerPort` that answers ``GetJob`` of a finished job from the
    journal's file when it can, and passes every other call to ``port``."""

    def __init__(
        self,
        port: AsyncSchedulerPort,
        limits: LimitsCache,
        opener: Callable[[JournalFile], JournalReplica | None] = JournalReplica.open,
    ) -> None:
        self.port = port
        self.limits = limits
        self.opener = opener
        self.replica: JournalReplica | None = None
        self._opened_for: JournalFile | None = None
        self.served = 0
        """Reads answered from the file (the rest went to the scheduler)."""

    async def call(self, op: Op[R]) -> R:
        if isinstance(op, GetJob):
            view = await self._finished(op)
            if view is not None:
                return cast(R, view)
        return await self.port.call(op)

    async def _finished(self, op: GetJob) -> JobView | None:
        limits = await self._limits()
        if limits is None or limits.journal is None:
            return None
        replica = self._replica(limits.journal)
        job = None if replica is None else replica.finished(op.job_id)
        if job is None or (op.tenant is not None and job.tenant != op.tenant):
            return None
        tier = next((t for t in limits.tiers if t.name == job.tier), None)
        if tier is None:  # a tier the scheduler no longer has: it answers
            return None
        self.served += 1
        return finished_view(job, tier.max_wait_s)

    async def _limits(self) -> Limits | None:
        try:
            return await self.limits.get()
        except LumaError:  # the scheduler is away just now: the last copy, if any
            return self.limits.last()

    def _replica(self, journal: JournalFile) -> JournalReplica | None:
        """The replica of ``journal``, opened once per journal (None: not on this machine)."""
        if journal != self._opened_for:
            if self.replica is not None:
                self.replica.close()
            self.replica = self.opener(journal)
            self._opened_for = journal
        return self.replica
