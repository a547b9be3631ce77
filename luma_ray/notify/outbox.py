"""Webhook events not yet delivered, in a SQLite file, so they outlive a scheduler restart.

Who calls this: :class:`~luma_ray.notify.sender.WebhookSender`, when it is given an outbox. It
calls :meth:`put` as it accepts an event, :meth:`retry` after each failed attempt (how many it
had, and when the next is due), :meth:`done` once the event was delivered, given up or expired,
and :meth:`pending` once at start, to queue again what the last run left (a crash, or a close
with events still queued) where its retry schedule stood. Receivers deduplicate on the event id,
so sending one again is safe.

The file runs in WAL mode with ``synchronous=FULL``, like the job journal. Thread-safe: the
scheduler's thread puts, the sender's threads update and remove.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from luma_ray.notify.events import WebhookEvent
from luma_ray.storage.sqlite import open_durable

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_s REAL NOT NULL DEFAULT 0
);
"""
# Files written before attempts were kept lack these columns; they are added on open.
_LATER_COLUMNS = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "due_s": "REAL NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class Pending:
    """An event kept in the outbox and where its retry schedule stands."""

    event: WebhookEvent
    attempts: int  # attempts made so far (0: never tried)
    due_s: float  # unix seconds when the next attempt is due (0: at once)


class WebhookOutbox:
    """Undelivered webhook events, oldest first."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_durable(self.path, _SCHEMA, "webhook outbox", "pick a writable data_dir")
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        for column, kind in _LATER_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")

    def put(self, event: WebhookEvent) -> None:
        """Keep ``event`` until :meth:`done`; putting the same event id twice keeps one."""
        record = json.dumps(asdict(event), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO events (event_id, record) VALUES (?, ?)",
                (event.event_id, record),
            )

    def retry(self, event_id: str, attempts: int, due_s: float) -> None:
        """The event had ``attempts`` attempts and goes again at ``due_s`` (unix seconds)."""
        with self._lock:
            self._db.execute(
                "UPDATE events SET attempts = ?, due_s = ? WHERE event_id = ?",
                (attempts, due_s, event_id),
            )

    def done(self, event_id: str) -> None:
        """The event was delivered, given up or expired: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE event_id = ?", (event_id,))

    def pending(self) -> list[Pending]:
        """Every event kept and not done, in the order they were put."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record, attempts, due_s FROM events ORDER BY seq"
            ).fetchall()
        return [
            Pending(WebhookEvent(**json.loads(record)), int(attempts), float(due_s))
            for record, attempts, due_s in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
