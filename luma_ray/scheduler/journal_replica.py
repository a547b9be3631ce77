"""A read-only view of the journal's file, for reads that need not go through the scheduler.

The scheduler actor is the journal's only writer, and it answers a call only once the call's
changes are committed (``journal``). A finished job's row therefore holds its final record
(final states have no way out: ``jobs.states``), and any reader on the same machine can serve
it: the HTTP ingress does (``api/finished_reads.py``), so a client polling a finished job, or
reading it again later, costs the actor nothing. Unfinished jobs are not read here: their
progress lives in the scheduler's memory.

The connection is SQLite's read-only mode on the WAL file, so it never writes and never blocks
the writer. It is opened only if the file at the path carries the identity the scheduler
announced (``JournalFile``): an ingress on another machine, where the path names another file
or none, reads nothing and asks the scheduler.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import quote

from luma_ray.jobs import TERMINAL_VALUES, Job
from luma_ray.jobs.codec import job_from_json
from luma_ray.scheduler.answers import JournalFile
from luma_ray.scheduler.journal import IDENTITY_KEY


class JournalReplica:
    """Finished jobs, read from the journal's file without the scheduler."""

    def __init__(self, db: sqlite3.Connection, journal: JournalFile) -> None:
        self._db = db
        self.journal = journal

    @classmethod
    def open(cls, journal: JournalFile) -> JournalReplica | None:
        """The replica of ``journal``, or None when no file of its identity is at its path
        (another machine, a file replaced since) or it cannot be read."""
        path = Path(journal.path)
        if not path.is_file():
            return None
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            row = db.execute("SELECT value FROM meta WHERE key = ?", (IDENTITY_KEY,)).fetchone()
        except sqlite3.Error:
            row = None
        if row is None or int(row[0]) != journal.identity:
            if db is not None:
                db.close()
            return None
        assert db is not None
        return cls(db, journal)

    def finished(self, job_id: str) -> Job | None:
        """The job's final record, or None when it is not finished (or not in the journal, or
        its row cannot be read: the scheduler then answers, with its own errors)."""
        try:
            row = self._db.execute(
                "SELECT state, record FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or row[0] not in TERMINAL_VALUES:
            return None
        try:
            return job_from_json(row[1])
        except (ValueError, TypeError, AttributeError, KeyError):
            return None  # a damaged row: the scheduler's read names it

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
