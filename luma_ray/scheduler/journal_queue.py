"""Journal writes waiting for a group commit (docs/architecture.md, "Group commit").

Who uses this: :class:`~luma_ray.scheduler.journal.Journal` in group mode queues each write here
(in call order, with its rows already encoded, so a job that changes again later is written as
it was), and the actor's group-commit writer (``luma_ray.runtime.group_commit``) takes
everything queued as one :class:`JournalBatch`, writes it in one transaction and one fsync, then
answers the callers. Work that must wait for the write to be durable (publishing job events,
queueing webhooks) waits here too and runs only once its batch landed; a failed batch drops it.
Pure and single-threaded: the service's thread queues and takes; the batch itself is a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Row = tuple[str, str, str, str, float | None]
"""One job's row: id, state, tenant, record (JSON), finish time."""


@dataclass(frozen=True)
class Upsert:
    """Changed jobs (and the fencing-token mark), as ``Journal.record`` writes them."""

    rows: tuple[Row, ...]
    next_token: int | None = None


@dataclass(frozen=True)
class Forget:
    """Jobs deleted for good, as ``Journal.forget`` deletes them."""

    job_ids: tuple[str, ...]


Write = Upsert | Forget


@dataclass(frozen=True)
class JournalBatch:
    """Writes to commit together, in order; ``through`` is the sequence number of the last
    one; ``after`` runs (in order) once they are durable, and never if they fail."""

    writes: tuple[Write, ...]
    through: int
    after: tuple[Callable[[], None], ...] = ()


class JournalQueue:
    """Writes queued since the last batch was taken, numbered from 1 in call order."""

    def __init__(self) -> None:
        self.queued = 0
        """The sequence number of the newest write queued (0: none yet)."""
        self._writes: list[Write] = []
        self._after: list[Callable[[], None]] = []
        self.listener: Callable[[int], None] | None = None
        """Called with the number of writes waiting after each one is queued (the writer
        wakes on it)."""

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, write: Write) -> None:
        self._writes.append(write)
        self.queued += 1
        if self.listener is not None:
            self.listener(len(self._writes))

    def when_durable(self, run: Callable[[], None]) -> None:
        """Run ``run`` once every write queued so far is durable (with the next batch)."""
        self._after.append(run)
        if self.listener is not None:
            self.listener(len(self._writes))

    def take(self) -> JournalBatch:
        """Everything queued, as one batch; the queue is empty after."""
        batch = JournalBatch(tuple(self._writes), self.queued, tuple(self._after))
        self._writes, self._after = [], []
        return batch

    def drop(self) -> int:
        """Forget everything queued (a batch before it failed: memory is read back from the
        journal); returns how many writes were dropped."""
        dropped = len(self._writes)
        self._writes, self._after = [], []
        return dropped
