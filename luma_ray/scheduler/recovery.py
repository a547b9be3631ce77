"""The scheduler's memory rebuilt from its journal: at start, and after a failed write.

Who calls this: the scheduler service, once when it starts (a restarted actor reads back its
queues and leases), and for every journal write (:meth:`Recovery.write`). When a write fails
(a full disk, an I/O error) memory is rebuilt from the journal exactly as a restart would, so
that it never holds a change the journal does not: the caller's change is undone and the
caller gets the error (``JournalUnavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from luma_ray.config import SchedulerConfig
from luma_ray.errors import JournalUnavailable
from luma_ray.scheduler.core import SchedulerCore
from luma_ray.scheduler.housekeeping import Housekeeping
from luma_ray.scheduler.idempotency import IdempotencyKeys
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.rollouts import Rollouts

log = logging.getLogger(__name__)


class Memory(NamedTuple):
    """What the service rebuilds from the journal; everything else is observation (worker
    pulls, service times, counters) that a restart forgets too."""

    core: SchedulerCore
    idempotency: IdempotencyKeys
    housekeeping: Housekeeping


def recover(
    config: SchedulerConfig,
    journal: Journal,
    rollouts: Rollouts,
    started_s: float,
    now: float,
    active_version: Callable[[str], str | None] | None,
) -> Memory:
    """Every unfinished job and the recently finished ones, back in their queues and leases
    (live leases get one more lease period from ``now``: see ``SchedulerCore.restore``).
    ``started_s`` is when this scheduler started (housekeeping's grace for pinned jobs)."""
    core = SchedulerCore(config)
    idempotency = IdempotencyKeys()
    housekeeping = Housekeeping(core, rollouts, config, started_s, active_version)
    jobs, next_token = journal.load(finished_since_s=now - config.keep_finished_s)
    finished = sorted(
        (j for j in jobs if j.state.terminal), key=lambda j: (j.finished_at_s or now, j.id)
    )
    live = sorted((j for j in jobs if not j.state.terminal), key=lambda j: (j.enqueued_at_s, j.id))
    core.restore_token(next_token)
    for job in finished + live:
        core.restore(job, now)
        idempotency.remember(job)
        housekeeping.track(job)
    if live:
        log.info("scheduler restored %d unfinished jobs from %s", len(live), journal.path)
    return Memory(core, idempotency, housekeeping)


class Recovery:
    """Keeps the service's memory what its journal holds: reads it from the journal when
    built and after every failed write, and hands it to ``install``."""

    def __init__(
        self,
        config: SchedulerConfig,
        journal: Journal,
        rollouts: Rollouts,
        clock: Callable[[], float],
        active_version: Callable[[str], str | None] | None,
        install: Callable[[Memory], None],
    ) -> None:
        self.config, self.journal, self.rollouts = config, journal, rollouts
        self.clock, self.active_version, self.install = clock, active_version, install
        self.started_s = clock()
        self.stale = False
        """A failed write's change may still be in memory: read it again before the next
        call, or refuse the call."""
        install(self.read())

    def read(self) -> Memory:
        return recover(
            self.config,
            self.journal,
            self.rollouts,
            self.started_s,
            self.clock(),
            self.active_version,
        )

    def write(self, write: Callable[[], None]) -> None:
        """Run a journal write. If it fails, memory is read again from the journal (the
        change is undone) and the error raised: ``JournalUnavailable`` for a full disk or
        an I/O error, naming the cause."""
        try:
            write()
        except Exception:
            self.stale = True
            self.check()  # raises instead if the journal cannot be read back
            raise

    def check(self) -> None:
        """After a failed write: read memory again from the journal, or refuse the call."""
        if not self.stale:
            return
        try:
            memory = self.read()
        except Exception as err:
            raise JournalUnavailable(
                f"the journal {self.journal.path} could not be read back after a failed "
                f"write ({err}); nothing was changed, retry later"
            ) from err
        self.install(memory)
        self.stale = False
