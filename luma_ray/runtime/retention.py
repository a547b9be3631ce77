"""Retention: finished jobs older than ``retention_s`` leave the journal, results and all.

Who calls this: the scheduler actor, from its timer. The scheduler service is pure and has no
store: it names the expired jobs (``SchedulerService.expired``); this deletes each one's
result files (``results/<job id>/`` in the result store) off the event loop, then has the
service delete their rows (``SchedulerService.purge``). Files go first: a crash or a store
error in between leaves a row that is purged again later, never a file no job points to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from luma_ray.errors import LumaError
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import BlobStore
from luma_ray.storage.keys import results_prefix

log = logging.getLogger(__name__)

BATCH = 100
"""Most jobs purged per pass (one journal transaction); the timer comes back for the rest."""


class Retention:
    """Purges expired jobs; ``open_results`` opens the result store (None: the scheduler
    does not manage results, and only the rows are deleted)."""

    def __init__(self, open_results: Callable[[], BlobStore] | None) -> None:
        self._open_results = open_results
        self._results: BlobStore | None = None

    async def purge(self, service: SchedulerService, limit: int = BATCH) -> list[str]:
        """Delete up to ``limit`` expired jobs' results, then their rows; returns their ids.
        A job whose files could not all be deleted keeps its row, for the next pass."""
        expired = service.expired(limit)
        if not expired:
            return []
        gone = expired
        if self._open_results is not None:
            gone = await asyncio.to_thread(self._delete_results, expired)
        if gone:
            service.purge(gone)
            log.info("deleted %d jobs past their retention, with their results", len(gone))
        return gone

    def _delete_results(self, job_ids: list[str]) -> list[str]:
        """Every result file of each job; the ids whose files are all gone."""
        assert self._open_results is not None
        try:
            if self._results is None:
                self._results = self._open_results()
        except (LumaError, OSError) as err:
            log.warning("cannot open the result store to delete expired results: %s", err)
            return []
        store, gone = self._results, []
        for job_id in job_ids:
            try:
                for key in store.list(results_prefix(job_id)):
                    store.delete(key)
            except (LumaError, OSError) as err:
                log.warning("job %s: could not delete its expired results: %s", job_id, err)
                continue
            gone.append(job_id)
        return gone
