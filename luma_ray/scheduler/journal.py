"""The durable journal: every job change lands in SQLite before the scheduler answers.

One row per job (its full record as JSON, with its state, tenant and finish time as columns)
plus a small ``meta`` table (the fencing-token high-water mark, and the file's identity: a
random number written when the file is made, by which an ingress knows the file it found is
this journal: ``journal_replica``). The database runs in WAL mode
with ``synchronous=FULL``: a commit that returned survives a crash of the process or the
machine. The scheduler service calls :meth:`Journal.record` after each call that changed jobs
(in group mode, :meth:`Journal.group`, the actor commits the writes of concurrent calls
together: ``luma_ray.runtime.group_commit``), and :meth:`Journal.load` once at start to
rebuild its queues and leases. Finished jobs that left the scheduler's memory are read back
one at a time (:meth:`get`) or a page at a time (:meth:`page`), through the indexes.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from luma_ray.errors import ConfigError, JournalDamaged, JournalUnavailable
from luma_ray.jobs import TERMINAL_VALUES, Job
from luma_ray.jobs.codec import job_from_json, job_to_json
from luma_ray.scheduler.journal_queue import Forget, JournalBatch, JournalQueue, Upsert, Write
from luma_ray.storage.sqlite import damaged, is_damage, open_durable

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL,
    finished_at_s REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs(tenant, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_FINISH_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs(finished_at_s)"
_TERMINAL = tuple(sorted(TERMINAL_VALUES))
IDENTITY_KEY = "identity"


class Journal:
    """A SQLite file of job records. Single writer: the scheduler actor."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # One writer (the actor) at a time, but not always on the thread that opened it.
        self._db = open_durable(self.path, _SCHEMA, "journal", "pick a writable journal path")
        self._writer: sqlite3.Connection | None = None
        self.pending: JournalQueue | None = None
        """The writes waiting for the next group commit; None: each write commits at once."""
        try:
            self._add_finish_column()
            self._db.execute(_FINISH_INDEX)
            self.identity = self._identity()
            """The file's identity (``JournalFile``), made with it and kept in ``meta``."""
        except JournalDamaged:
            self._db.close()
            raise
        except sqlite3.Error as err:
            self._db.close()
            if is_damage(err):
                raise damaged("journal", self.path, str(err)) from None
            raise ConfigError(
                f"journal {self.path}: cannot upgrade ({err}); pick a writable journal path"
            ) from None

    def _add_finish_column(self) -> None:
        """Journals written before the finish-time column get it, filled from the records."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "finished_at_s" in columns:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE jobs ADD COLUMN finished_at_s REAL")
            rows = self._db.execute("SELECT id, record FROM jobs").fetchall()
            self._db.executemany(
                "UPDATE jobs SET finished_at_s = ? WHERE id = ?",
                [(self._decode(i, record).finished_at_s, i) for i, record in rows],
            )
            self._db.execute("COMMIT")
        except BaseException:
            _roll_back(self._db)
            raise
        log.info("journal %s: added the finish-time column to %d jobs", self.path, len(rows))

    def _identity(self) -> int:
        """The identity in ``meta``; a file without one (new, or older than identities) gets
        one now."""
        read = "SELECT value FROM meta WHERE key = ?"
        row = self._db.execute(read, (IDENTITY_KEY,)).fetchone()
        if row is None:
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                (IDENTITY_KEY, secrets.randbits(62) + 1),
            )
            row = self._db.execute(read, (IDENTITY_KEY,)).fetchone()
        return int(row[0])

    def record(self, jobs: Iterable[Job], next_token: int | None = None) -> None:
        """Write changed jobs (and the token mark) in one transaction, durably; on failure
        nothing is written and ``JournalUnavailable`` names the cause. In group mode
        (:meth:`group`) the rows are queued for the next group commit instead."""
        rows = tuple((j.id, j.state.value, j.tenant, job_to_json(j), j.finished_at_s) for j in jobs)
        if not rows and next_token is None:
            return
        self._write(Upsert(rows, next_token))

    def forget(self, job_ids: Iterable[str]) -> None:
        """Delete jobs for good (the user deleted them, or their retention ran out)."""
        self._write(Forget(tuple(job_ids)))

    def when_durable(self, run: Callable[[], None]) -> None:
        """Run ``run`` once the writes made so far are durable: now, or in group mode after
        the group commit that carries them (never, if it fails)."""
        if self.pending is None:
            run()
        else:
            self.pending.when_durable(run)

    def group(self) -> JournalQueue:
        """Switch to group mode: writes queue up until :meth:`write_batch` commits them
        together (the actor's group-commit writer); returns the queue. The batches go
        through a connection of their own, so reads never see a half-written one."""
        if self.pending is None:
            self._writer = open_durable(
                self.path, _SCHEMA, "journal", "pick a writable journal path"
            )
            self.pending = JournalQueue()
        return self.pending

    def write_batch(self, batch: JournalBatch) -> None:
        """Commit a batch's writes in one transaction and one fsync, in order (any thread,
        one batch at a time); on failure none of them is written (``JournalUnavailable``)."""
        with self._writing(self._writer or self._db) as db:
            for write in batch.writes:
                _apply(db, write)

    def _write(self, write: Write) -> None:
        if self.pending is not None:
            self.pending.add(write)
            return
        with self._writing(self._db) as db:
            _apply(db, write)

    @contextlib.contextmanager
    def _writing(self, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failed write is rolled back (unless SQLite already did,
        as it does on a full disk) and raised as ``JournalUnavailable`` naming the cause."""
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as err:
            _roll_back(db)
            raise JournalUnavailable(
                f"the journal {self.path} could not be written ({err}); nothing was changed, "
                "retry later"
            ) from err
        except BaseException:
            _roll_back(db)
            raise

    def finished_before(self, horizon_s: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` jobs that finished before ``horizon_s``, oldest first
        (through the finish-time index)."""
        marks = ", ".join("?" * len(_TERMINAL))
        rows = self._db.execute(
            f"SELECT id FROM jobs WHERE finished_at_s < ? AND state IN ({marks}) "
            "ORDER BY finished_at_s, id LIMIT ?",
            (horizon_s, *_TERMINAL, limit),
        ).fetchall()
        return [job_id for (job_id,) in rows]

    def load(self, finished_since_s: float | None = None) -> tuple[list[Job], int]:
        """Every unfinished job and every job finished at or after ``finished_since_s``
        (None: every job), oldest first, and the fencing-token high-water mark."""
        query = "SELECT id, record FROM jobs"
        args: tuple[object, ...] = ()
        if finished_since_s is not None:
            marks = ", ".join("?" * len(_TERMINAL))
            query += f" WHERE state NOT IN ({marks}) OR finished_at_s >= ?"
            query += " OR finished_at_s IS NULL"
            args = (*_TERMINAL, finished_since_s)
        try:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'next_token'").fetchone()
        except sqlite3.DatabaseError as err:
            if is_damage(err):
                raise damaged("journal", self.path, str(err)) from None
            raise
        jobs = [self._decode(job_id, record) for job_id, record in rows]
        log.info("journal %s: loaded %d jobs", self.path, len(jobs))
        return jobs, int(row[0]) if row else 0

    def get(self, job_id: str) -> Job | None:
        """One job's last recorded state, or None if the journal has none;
        ``JournalUnavailable`` (naming the row) if its record is damaged."""
        with self._reading():
            row = self._db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return self._decode(job_id, row[0]) if row else None

    def page(
        self, tenant: str | None, state: str | None, limit: int, after: str | None, desc: bool
    ) -> list[Job]:
        """Up to ``limit`` jobs by id (newest first if ``desc``) after the cursor ``after``,
        of one tenant and state where given (None: any)."""
        where, args = [], []
        for column, value in (("tenant", tenant), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if after is not None:
            where.append("id < ?" if desc else "id > ?")
            args.append(after)
        query = "SELECT id, record FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += f" ORDER BY id {'DESC' if desc else 'ASC'} LIMIT ?"
        with self._reading():
            rows = self._db.execute(query, (*args, limit)).fetchall()
            return [self._decode(job_id, record) for job_id, record in rows]

    def _decode(self, job_id: str, record: str) -> Job:
        try:
            return job_from_json(record)
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            reason = _first_problem(err)
            problem = f"row {job_id} is not a job record: {reason}"
            raise damaged("journal", self.path, problem) from None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read while the scheduler runs: a damaged row or page refuses this call only."""
        try:
            yield
        except JournalDamaged as err:
            raise JournalUnavailable(str(err)) from None
        except sqlite3.DatabaseError as err:
            if is_damage(err):
                raise JournalUnavailable(str(damaged("journal", self.path, str(err)))) from None
            raise

    def close(self) -> None:
        self._db.close()
        if self._writer is not None:
            self._writer.close()


def _apply(db: sqlite3.Connection, write: Write) -> None:
    """One queued write, inside the caller's transaction."""
    if isinstance(write, Forget):
        db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in write.job_ids])
        return
    db.executemany(
        "INSERT INTO jobs (id, state, tenant, record, finished_at_s) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
        "record = excluded.record, finished_at_s = excluded.finished_at_s",
        write.rows,
    )
    if write.next_token is not None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('next_token', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            (write.next_token,),
        )


def _roll_back(db: sqlite3.Connection) -> None:
    """End a failed transaction; never masks the error that ended it."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _first_problem(err: Exception) -> str:
    """One line on what is wrong with a record (pydantic's own message spans lines)."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return f"{where}: {first['msg']}"
    return (str(err).splitlines() or [type(err).__name__])[0]
