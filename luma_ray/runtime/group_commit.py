"""Group commit: the journal writes of concurrent calls share one transaction and one fsync.

Who calls this: the scheduler actor (``luma_ray.runtime.actor``). It puts the journal in group
mode (:meth:`Journal.group`): the service still changes memory and "writes" its rows before it
returns, but the rows queue up instead of committing one call at a time. A writer task on the
actor's event loop takes everything queued, waits up to ``window_s`` for more (or until
``max_batch`` writes wait), and commits the batch on a thread (one transaction, one fsync,
``synchronous=FULL``) while the loop goes on serving calls. The window is waited only while
calls come together (the last batch answered more than one caller, or more than one waits
now): a lone caller's write
commits at once, as nobody would join it, and the first writes of a burst commit at once too,
while the rest of the burst gathers behind that commit. The actor answers a call only after
:meth:`GroupCommit.durable`: every write queued up to the end of that call is on disk, its own
and every change it could have seen. A failed batch fails every call waiting on it or on a later
write (those calls saw its changes), drops what is queued, and ``on_failure`` reads memory back
from the journal, as a failed write does without group commit (``scheduler/recovery.py``): each
of those callers gets ``JournalUnavailable`` and none of their changes stays visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from luma_ray.errors import JournalUnavailable
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.journal_queue import JournalBatch, JournalQueue

log = logging.getLogger(__name__)


class GroupCommit:
    """The actor's journal writer (see the module's docstring). Built anywhere, started on the
    event loop that runs the service (:meth:`start`); until then the journal writes at once."""

    def __init__(
        self,
        journal: Journal,
        window_s: float,
        max_batch: int,
        on_failure: Callable[[Exception], None],
    ) -> None:
        self.journal, self.window_s, self.max_batch = journal, window_s, max(1, max_batch)
        self.on_failure = on_failure
        self.durable_through = 0
        """Every write numbered up to this is durable (or was dropped by a failed batch)."""
        self.batches = 0
        self.writes = 0
        """Transactions committed and the writes they carried (batch size = writes/batches)."""
        self.waited = 0
        """Batches that waited the window for more writes (calls were coming together)."""
        self._callers = 0
        """Callers the last batch answered: more than one, and the next batch waits the window."""
        self._queue: JournalQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._pending = asyncio.Event()
        self._full = asyncio.Event()

    def start(self) -> None:
        """Group the journal's writes from now on; on the running event loop, idempotent."""
        if self._queue is None:
            self._queue = self.journal.group()
            self._queue.listener = self._queued
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_forever())

    async def durable(self) -> None:
        """Return once every write queued so far is durable; ``JournalUnavailable`` if the
        batch that carried one of them failed."""
        target = 0 if self._queue is None else self._queue.queued
        if target <= self.durable_through:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((target, future))
        await future

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # ---- internals ---------------------------------------------------------------------

    def _queued(self, count: int) -> None:
        self._pending.set()
        if count >= self.max_batch:
            self._full.set()

    async def _write_forever(self) -> None:
        assert self._queue is not None
        while True:
            await self._pending.wait()
            if self._together() and len(self._queue) < self.max_batch:
                self.waited += 1
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.window_s)
            self._pending.clear()
            self._full.clear()
            batch = self._queue.take()
            try:
                if batch.writes:
                    await asyncio.to_thread(self.journal.write_batch, batch)
            except Exception as err:  # every caller of the batch gets it; the loop goes on
                self._failed(err)
            else:
                self._landed(batch)

    def _together(self) -> bool:
        """Calls are coming together: the last batch answered several, or several wait now."""
        return self.window_s > 0 and max(self._callers, len(self._waiting)) > 1

    def _landed(self, batch: JournalBatch) -> None:
        self.batches += bool(batch.writes)
        self.writes += len(batch.writes)
        self.durable_through = max(self.durable_through, batch.through)
        for run in batch.after:  # job events and webhooks of the changes now durable
            try:
                run()
            except Exception:  # one listener's bug must not stop the writer
                log.exception("publishing a durable change failed")
        self._answer(lambda target: target <= self.durable_through, None)

    def _failed(self, err: Exception) -> None:
        """Fail the batch's callers and every later one (they saw its changes), drop what is
        queued and read memory back from the journal before any other call runs."""
        assert self._queue is not None
        dropped = self._queue.drop()
        self.durable_through = self._queue.queued
        log.error("group commit failed (%d more writes dropped): %s", dropped, err)
        self.on_failure(err)
        refusal = str(err) if isinstance(err, JournalUnavailable) else None
        if refusal is None:
            refusal = (
                f"the journal {self.journal.path} could not be written ({err}); nothing was "
                "changed, retry later"
            )
        self._answer(lambda target: True, refusal)

    def _answer(self, done: Callable[[int], bool], refusal: str | None) -> None:
        still = []
        self._callers = 0
        for target, future in self._waiting:
            if not done(target):
                still.append((target, future))
                continue
            self._callers += 1
            if not future.done():  # a caller that went away cancelled its future
                if refusal is None:
                    future.set_result(None)
                else:
                    future.set_exception(JournalUnavailable(refusal))
        self._waiting = still
