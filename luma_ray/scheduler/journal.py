"""The durable journal: every job change lands in SQLite before the scheduler answers.

One row per job (its full record as JSON) plus a small ``meta`` table (the fencing-token
high-water mark). The database runs in WAL mode with ``synchronous=FULL``: a commit that
returned survives a crash of the process or the machine. The scheduler actor calls
:meth:`Journal.record` after each call that changed jobs, and :meth:`Journal.load` once at
start to rebuild its queues and leases.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from luma_ray.errors import ConfigError
from luma_ray.jobs import Job
from luma_ray.jobs.codec import job_from_dict, job_to_dict

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs(tenant, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Journal:
    """A SQLite file of job records. Single writer: the scheduler actor."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One writer (the actor) at a time, but not always on the thread that opened it.
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                f"journal {self.path}: cannot open ({err}); pick a writable journal path"
            ) from None

    def record(self, jobs: Iterable[Job], next_token: int | None = None) -> None:
        """Write changed jobs (and the token mark) in one transaction, durably."""
        rows = [(j.id, j.state.value, j.tenant, json.dumps(job_to_dict(j))) for j in jobs]
        if not rows and next_token is None:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO jobs (id, state, tenant, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state, record = excluded.record",
                rows,
            )
            if next_token is not None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_token', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                    (next_token,),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, job_ids: Iterable[str]) -> None:
        """Delete jobs for good (the user deleted them)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in job_ids])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def load(self) -> tuple[list[Job], int]:
        """Every job, oldest first, and the fencing-token high-water mark."""
        jobs = [
            job_from_dict(json.loads(record))
            for (record,) in self._db.execute("SELECT record FROM jobs ORDER BY id")
        ]
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_token'").fetchone()
        log.info("journal %s: loaded %d jobs", self.path, len(jobs))
        return jobs, int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()
