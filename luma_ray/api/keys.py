"""API keys: who is calling, stored hashed in a SQLite file.

A key looks like ``lr_<key_id>_<secret>``: ``key_id`` is 12 lowercase hex characters (the
public handle that ``keys list`` and ``keys revoke`` use), ``secret`` is
``secrets.token_urlsafe(32)`` (256 random bits). The file keeps only ``sha256(secret)``; the
plaintext key exists once, in the return value of :meth:`KeyStore.create`.

Why plain SHA-256 and no slow KDF (bcrypt, scrypt, argon2): a slow hash protects low-entropy
passwords from guessing once the file leaks. A 256-bit random secret cannot be guessed, slow
hash or not, so stretching would only make every request pay milliseconds of CPU for nothing.

Who calls what: the ``luma-ray keys`` commands (:mod:`luma_ray.api.keys_cli`) create, list
and revoke keys; the HTTP layer holds one :class:`KeyStore` per process and calls
:meth:`KeyStore.authenticate` on every request, from several threads. A small in-memory cache
of successful lookups (``cache_ttl_s``, 5 s by default) saves the SQLite round trip on hot
keys, so a key revoked by another process (the CLI) stops working within that TTL; a key
revoked through the same ``KeyStore`` stops at once.

Imports the standard library and :mod:`luma_ray.errors` only. Never logs a key or a secret.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from luma_ray.errors import ConfigError, InvalidRequest, NotFound, Unauthorized
from luma_ray.storage.sqlite import open_durable

log = logging.getLogger(__name__)

SCOPE_USER = "user"
"""Submit, read and cancel the tenant's own generations: every key has it unless it was
created with other scopes only."""
SCOPE_ADMIN = "admin"
"""Admin keys only: queue stats, model promote and rollback (docs/security.md). Implies
every other scope."""
SCOPE_QUEUES_READ = "queues:read"
"""Read-only: the queue page's data and queue stats (``GET /v1/admin/queue-view``,
``GET /v1/admin/queues``), nothing else. The key to give the live queue page."""
GRANTABLE_SCOPES = (SCOPE_USER, SCOPE_QUEUES_READ)
"""What :meth:`KeyStore.create` takes in ``scopes``; ``admin`` comes with ``admin=True``."""

KEY_PREFIX = "lr_"
KEYS_FILE = "keys.sqlite"
_KEY_ID_HEX_CHARS = 12
_SECRET_BYTES = 32
_KEY_RE = re.compile(r"lr_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
"""A whole key: ``token_urlsafe(32)`` is always 43 characters of the URL-safe alphabet."""
_KEY_ID_RE = re.compile(r"[0-9a-f]{12}")
_TENANT_RE = re.compile(r"[A-Za-z0-9._@:-]{1,128}")
_KEY_CHARS = len(KEY_PREFIX) + _KEY_ID_HEX_CHARS + 1 + 43
_MAX_CACHED = 4096
_DUMMY_DIGEST = hashlib.sha256(b"no such key").hexdigest()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    tenant TEXT NOT NULL,
    tier TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at_s REAL NOT NULL,
    revoked_at_s REAL
) WITHOUT ROWID;
"""
_COLUMNS = "key_id, tenant, tier, scopes, created_at_s, revoked_at_s"

_Row = tuple[str, str, str, str, float, float | None]


@dataclass(frozen=True)
class Principal:
    """Who is calling. :meth:`KeyStore.authenticate` makes one; the HTTP layer attaches it to
    each request and checks scopes and tenant ownership against it."""

    tenant: str
    """The tenant whose jobs this caller may see and submit."""
    tier: str
    """The service tier the caller's jobs go into."""
    scopes: frozenset[str]
    """``{"user"}``, ``{"user", "admin"}`` for admin keys, ``{"queues:read"}`` for a queue
    page's key, or what the key was created with."""
    key_id: str
    """The public part of the key, for logs and audit; never the secret."""

    @property
    def is_admin(self) -> bool:
        """True for keys created with ``admin=True``."""
        return SCOPE_ADMIN in self.scopes

    @property
    def can_read_queues(self) -> bool:
        """True for keys with scope ``queues:read``, and for admin keys."""
        return SCOPE_QUEUES_READ in self.scopes or self.is_admin


@dataclass(frozen=True)
class KeyRecord:
    """One key as ``luma-ray keys list`` shows it: never the secret or its hash."""

    key_id: str
    tenant: str
    tier: str
    scopes: tuple[str, ...]
    """Sorted scope names, e.g. ``("admin", "user")`` or ``("queues:read",)``."""
    created_at_s: float
    """Seconds since the epoch, as passed to :meth:`KeyStore.create`."""
    revoked_at_s: float | None
    """Seconds since the epoch of the revocation; ``None`` while the key works."""


def keys_path(data_dir: str | Path) -> Path:
    """Where a deployment keeps its keys: ``<data_dir>/keys.sqlite``. The CLI and the HTTP
    layer both call this, so they open the same file."""
    return Path(data_dir) / KEYS_FILE


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record(row: _Row) -> KeyRecord:
    key_id, tenant, tier, scopes, created_at_s, revoked_at_s = row
    return KeyRecord(
        key_id=key_id,
        tenant=tenant,
        tier=tier,
        scopes=tuple(sorted(scopes.split(","))),
        created_at_s=float(created_at_s),
        revoked_at_s=None if revoked_at_s is None else float(revoked_at_s),
    )


def _scopes(scopes: Collection[str] | None) -> set[str]:
    if scopes is None:
        return {SCOPE_USER}
    if isinstance(scopes, str) or not scopes or not set(scopes) <= set(GRANTABLE_SCOPES):
        raise InvalidRequest(
            f"scopes must be one or more of {', '.join(GRANTABLE_SCOPES)}; admin comes with --admin"
        )
    return set(scopes)


class KeyStore:
    """The API keys of one deployment, in one SQLite file (WAL mode).

    Thread-safe: one connection opened with ``check_same_thread=False``, every use of it and
    of the cache under one lock. Several processes may open the same file (the server reads,
    the CLI writes); SQLite's own locking serialises their writes.

    ``tiers`` are the tier names :meth:`create` accepts. ``clock`` (monotonic seconds) only
    times cache entries; tests pass a fake one. ``cache_ttl_s=0`` turns the cache off.
    """

    def __init__(
        self,
        path: str | Path,
        tiers: Collection[str],
        *,
        cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_ttl_s < 0:
            raise InvalidRequest(f"cache_ttl_s must be >= 0, got {cache_ttl_s}")
        self.path = Path(path)
        self._tiers = frozenset(tiers)
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._db = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        # Only hashes inside, but nobody else needs to read it (0600, -wal and -shm too);
        # a write waits out a concurrent CLI write.
        return open_durable(
            path, _SCHEMA, "keys file", "pick a writable data directory", busy_timeout_ms=5000
        )

    def create(
        self,
        tenant: str,
        tier: str,
        *,
        admin: bool = False,
        scopes: Collection[str] | None = None,
        now_s: float,
    ) -> tuple[str, KeyRecord]:
        """Make a key for ``tenant`` in ``tier``; return the plaintext key and its record.

        Called by ``luma-ray keys create``. The plaintext is not kept anywhere: show it to the
        operator once. ``now_s`` (seconds since the epoch) becomes ``created_at_s``.
        ``scopes`` (of :data:`GRANTABLE_SCOPES`) replaces the default ``("user",)``, e.g.
        ``["queues:read"]`` for a key that can only read the queues; ``admin=True`` adds
        ``admin`` and ``user``.
        """
        if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
            long = isinstance(tenant, str) and len(tenant) > 40
            shown = f"{len(tenant)} characters" if long else repr(tenant)
            raise InvalidRequest(
                f"tenant must be 1-128 characters of letters, digits and . _ @ : -; got {shown}"
            )
        if tier not in self._tiers:
            raise InvalidRequest(
                f"unknown tier {tier!r}; use one of {', '.join(sorted(self._tiers))}"
            )
        granted = _scopes(scopes) | ({SCOPE_USER, SCOPE_ADMIN} if admin else set())
        scopes_text = ",".join(sorted(granted))
        with self._lock:
            for _ in range(5):
                key_id = secrets.token_hex(_KEY_ID_HEX_CHARS // 2)
                secret = secrets.token_urlsafe(_SECRET_BYTES)
                try:
                    self._db.execute(
                        "INSERT INTO api_keys (key_id, secret_sha256, tenant, tier, scopes, "
                        "created_at_s, revoked_at_s) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                        (key_id, _sha256_hex(secret), tenant, tier, scopes_text, now_s),
                    )
                    break
                except sqlite3.IntegrityError:  # key_id taken: 1 in 2**48 per existing key
                    continue
            else:  # pragma: no cover - needs five collisions in a row
                raise ConfigError(f"keys file {self.path}: could not pick a free key id")
        record = KeyRecord(key_id, tenant, tier, tuple(sorted(granted)), now_s, None)
        log.info(
            "key %s created for tenant %s, tier %s, scopes %s", key_id, tenant, tier, scopes_text
        )
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def authenticate(self, key: str | None) -> Principal:
        """The principal behind ``key``, or :class:`~luma_ray.errors.Unauthorized`.

        Called by the HTTP layer on every request, from any thread. One primary-key lookup,
        skipped when the key succeeded within the last ``cache_ttl_s`` seconds. Messages
        never contain the key, and do not tell an unknown id from a wrong secret.
        """
        if not key:
            raise Unauthorized("no API key given; send the key you were issued with the request")
        match = _KEY_RE.fullmatch(key) if isinstance(key, str) and len(key) == _KEY_CHARS else None
        if match is None:
            raise Unauthorized("API key is malformed; keys look like lr_<12 hex>_<43 characters>")
        key_id, secret = match.group(1), match.group(2)
        cache_key = _sha256_hex(key)
        with self._lock:
            now = self._clock()
            cached = self._cache.get(cache_key)
            if cached is not None and cached[1] > now:
                return cached[0]
            row = self._db.execute(
                "SELECT secret_sha256, tenant, tier, scopes, revoked_at_s FROM api_keys "
                "WHERE key_id = ?",
                (key_id,),
            ).fetchone()
            stored = row[0] if row is not None else _DUMMY_DIGEST
            # Compare even for an unknown id, so both failures take about the same time.
            if not hmac.compare_digest(stored, _sha256_hex(secret)) or row is None:
                self._cache.pop(cache_key, None)
                raise Unauthorized("API key is not valid; check it or ask an admin for a new one")
            if row[4] is not None:
                self._cache.pop(cache_key, None)
                raise Unauthorized("API key was revoked; ask an admin for a new one")
            principal = Principal(
                tenant=row[1], tier=row[2], scopes=frozenset(row[3].split(",")), key_id=key_id
            )
            if self._cache_ttl_s > 0:
                self._remember(cache_key, principal, now)
            return principal

    def _remember(self, cache_key: str, principal: Principal, now: float) -> None:
        """Cache a success; caller holds the lock. Bounded: expired entries go first, then the
        oldest, so a flood of distinct keys cannot grow memory."""
        if len(self._cache) >= _MAX_CACHED:
            for stale in [k for k, (_, expires) in self._cache.items() if expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= _MAX_CACHED:
                del self._cache[next(iter(self._cache))]
        self._cache[cache_key] = (principal, now + self._cache_ttl_s)

    def revoke(self, key_id: str, *, now_s: float) -> KeyRecord:
        """Revoke a key by its id; return its record. Called by ``luma-ray keys revoke``.

        Takes effect at once in this ``KeyStore`` and within ``cache_ttl_s`` in other
        processes that have the file open. Revoking twice keeps the first ``revoked_at_s``.
        Raises :class:`~luma_ray.errors.NotFound` for an unknown id.
        """
        if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
            # Do not echo: an operator may have pasted the whole key here.
            raise InvalidRequest(
                "key id must be 12 lowercase hex characters (the part after lr_ in the key); "
                "see `luma-ray keys list`"
            )
        with self._lock:
            self._db.execute(
                "UPDATE api_keys SET revoked_at_s = ? WHERE key_id = ? AND revoked_at_s IS NULL",
                (now_s, key_id),
            )
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            for cache_key in [k for k, (p, _) in self._cache.items() if p.key_id == key_id]:
                del self._cache[cache_key]
        if row is None:
            raise NotFound(f"no key with id {key_id}; see `luma-ray keys list` for the ids")
        log.info("key %s of tenant %s revoked", key_id, row[1])
        return _record(row)

    def close(self) -> None:
        """Close the file. Entry points call it on shutdown; the store is unusable after."""
        with self._lock:
            self._cache.clear()
            self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Last, so the ``list[...]`` annotations above mean the builtin.
    def list(self) -> builtins.list[KeyRecord]:
        """Every key, oldest first, without secrets or hashes. Called by ``keys list``."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at_s, key_id"
            ).fetchall()
        return [_record(row) for row in rows]
