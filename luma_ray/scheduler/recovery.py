"""The scheduler's memory rebuilt from its journal: at start, and after a failed write.

Who calls this: the scheduler service, once when it starts (a restarted actor reads back its
queues and leases), and whenever a journal write failed (a full disk): memory is then rebuilt
from the journal exactly as a restart would, so that it never holds a change the journal does
not, and the caller's change is undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from luma_ray.config import SchedulerConfig
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
    for job in finished + live:
        core.restore(job, now, next_token)
        idempotency.remember(job)
        housekeeping.track(job)
    if live:
        log.info("scheduler restored %d unfinished jobs from %s", len(live), journal.path)
    return Memory(core, idempotency, housekeeping)
