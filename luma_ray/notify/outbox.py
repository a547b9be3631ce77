"""Webhook events not yet delivered, in a SQLite file, so they outlive a scheduler restart.

Who calls this: :class:`~luma_ray.notify.sender.WebhookSender`, when it is given an outbox. It
calls :meth:`put` as it accepts an event, :meth:`done` once the event was delivered or given up,
and :meth:`pending` once at start, to queue again what the last run left (a crash, or a close
with events still queued). Receivers deduplicate on the event id, so sending one again is safe.

The file runs in WAL mode with ``synchronous=FULL``, like the job journal. Thread-safe: the
scheduler's thread puts, the sender's thread removes.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from pathlib import Path

from luma_ray.notify.events import WebhookEvent
from luma_ray.storage.sqlite import open_durable

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
"""


class WebhookOutbox:
    """Undelivered webhook events, oldest first."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_durable(self.path, _SCHEMA, "webhook outbox", "pick a writable data_dir")

    def put(self, event: WebhookEvent) -> None:
        """Keep ``event`` until :meth:`done`; putting the same event id twice keeps one."""
        record = json.dumps(asdict(event), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO events (event_id, record) VALUES (?, ?)",
                (event.event_id, record),
            )

    def done(self, event_id: str) -> None:
        """The event was delivered or given up: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE event_id = ?", (event_id,))

    def pending(self) -> list[WebhookEvent]:
        """Every event kept and not done, in the order they were put."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM events ORDER BY seq").fetchall()
        return [WebhookEvent(**json.loads(record)) for (record,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
