"""Open a durable SQLite file: the job journal and the webhook outbox use it.

WAL mode with ``synchronous=FULL`` (a commit that returned survives a crash of the process or
the machine), one connection shared between threads (callers serialise their writes), and the
caller's schema applied. The file (and its ``-wal`` and ``-shm``) is its owner's only (0600),
in private folders (0700): it holds prompts and callback URLs. A file that cannot be opened is
a ``ConfigError`` saying what to fix; a file that is not SQLite or is damaged is a
``JournalDamaged`` naming it and the way out.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from luma_ray.errors import ConfigError, JournalDamaged
from luma_ray.storage.base import make_private_file

_DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_damage(err: sqlite3.Error) -> bool:
    """Whether SQLite refused because the file is not a database or is damaged (rather than
    because it is locked, full or unreadable)."""
    code = getattr(err, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE


def damaged(what: str, path: Path, detail: str) -> JournalDamaged:
    """The one-line error for a damaged file: ``detail`` says where (a row) and what."""
    return JournalDamaged(
        f"{what} {path} is damaged ({detail}); restore it from a backup, or move it aside "
        "to start with an empty one"
    )


def sqlite_companions(path: Path) -> tuple[Path, Path]:
    """The ``-wal`` and ``-shm`` files SQLite keeps beside a database in WAL mode."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def open_durable(
    path: Path, schema: str, what: str, fix: str, busy_timeout_ms: int = 0
) -> sqlite3.Connection:
    """The connection to ``path`` with ``schema`` applied; ``what`` and ``fix`` word the
    error (``"journal"``, ``"pick a writable journal path"``). ``busy_timeout_ms``: how long
    a write waits for another process's (the CLI's) write to end; 0 fails at once."""
    db: sqlite3.Connection | None = None
    try:
        make_private_file(path, *sqlite_companions(path))
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if busy_timeout_ms:
            db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        db.executescript(schema)
    except (OSError, sqlite3.Error) as err:
        if db is not None:
            db.close()
        if isinstance(err, sqlite3.Error) and is_damage(err):
            raise damaged(what, path, str(err)) from None
        raise ConfigError(f"{what} {path}: cannot open ({err}); {fix}") from None
    return db
