"""Open a durable SQLite file: the job journal and the webhook outbox use it.

WAL mode with ``synchronous=FULL`` (a commit that returned survives a crash of the process or
the machine), one connection shared between threads (callers serialise their writes), and the
caller's schema applied. A file that cannot be opened is a ``ConfigError`` saying what to fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from luma_ray.errors import ConfigError


def open_durable(path: Path, schema: str, what: str, fix: str) -> sqlite3.Connection:
    """The connection to ``path`` with ``schema`` applied; ``what`` and ``fix`` word the
    error (``"journal"``, ``"pick a writable journal path"``)."""
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
    except (OSError, sqlite3.Error) as err:
        if db is not None:
            db.close()
        raise ConfigError(f"{what} {path}: cannot open ({err}); {fix}") from None
    return db
