"""What every route of the app needs: its ports, its settings and the caller.

``create_app`` stores one :class:`Ports` on the app; routes reach it with :func:`ports` and
authenticate the bearer key through the :data:`Caller` (scope ``user``), :data:`Admin` and
:data:`QueueReader` (scope ``queues:read`` or admin) dependencies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from luma_ray.api.events import EventHub
from luma_ray.api.finished_reads import FinishedReads
from luma_ray.api.keys import SCOPE_USER, KeyStore, Principal
from luma_ray.api.limits_cache import LIMITS_TTL_S, LimitsCache
from luma_ray.api.throttles import KeyRates, StreamSlots
from luma_ray.config import DreamMachineConfig, IngressLimits
from luma_ray.errors import Forbidden, NotFound, RateLimited
from luma_ray.models.repository import ModelRepository
from luma_ray.notify.targets import Resolver, resolve_host
from luma_ray.scheduler.protocol import AsyncSchedulerPort
from luma_ray.storage import BlobStore
from luma_ray.wire.assets import DEFAULT_TTL_S, AssetSigner

_bearer = HTTPBearer(auto_error=False)


@dataclass
class ApiSettings:
    """Knobs of the HTTP layer, fixed when the app is built."""

    allow_private_callbacks: bool = False
    """Let callback_url point at loopback/private hosts (tests, on-prem receivers)."""
    allow_private_inputs: bool = False
    """Let http(s) input URLs point at loopback/private hosts (tests, on-prem media servers)."""
    resolver: Resolver = resolve_host
    """How input URLs' hosts are looked up (tests pass a fake one)."""
    sse_poll_s: float = 0.2
    """What each stream polled before job events were pushed; only the benchmark's baseline
    reads it now."""
    sse_timeout_s: float = 3600.0
    """An event stream ends (with ``done`` and the job as last seen) after this long."""
    sse_keepalive_s: float = 15.0
    """A comment line on every stream at this interval, so that proxies and load balancers
    (which cut idle connections after ~60 s) keep a stream open while its job waits."""
    sse_feed_wait_s: float = 10.0
    """How long the replica's one subscriber waits in each ``EventFeed`` call."""
    sse_feed_interval_s: float = 0.25
    """``EventFeed`` calls of a replica are paced to one per this (4 a second sustained): on a
    busy cluster a stream sees an event up to this much later."""
    sse_feed_burst: int = 10
    """Calls a quiet replica makes at once before the pace applies, so a lone job's events
    (its ``done`` above all) reach its streams without waiting the interval. With the
    interval, at most ``burst + T / interval`` calls in any T seconds: 10 + 4 T, no more than
    5 a second over any 10 s."""
    sse_queue: int = 256
    """Events waiting per stream; a stream this far behind skips to its job's latest state."""
    limits: IngressLimits = field(default_factory=IngressLimits)
    """Per-key request rate and per-tenant event streams, counted in this replica."""
    limits_ttl_s: float = LIMITS_TTL_S
    """How old the replica's copy of the scheduler's limits (``DescribeLimits``) may get
    before a request asks the scheduler again (``api/limits_cache.py``)."""
    dream_machine: DreamMachineConfig = field(default_factory=DreamMachineConfig)
    """Model names and labels of the Dream Machine-compatible API."""
    asset_secret: bytes | None = field(default=None, repr=False)
    """Signs asset URLs (``<data_dir>/asset.secret``); None: generations show no ``assets``
    and ``/v1/assets`` answers 404."""
    asset_ttl_s: int = DEFAULT_TTL_S
    """How long an asset URL lives from when a view is rendered (default 24 h)."""
    public_url: str | None = None
    """The API's public origin for absolute asset URLs (``https://api.example.com``); None:
    the request's own base URL."""
    asset_urls: str = "signed"
    """``signed``: ``/v1/assets/...`` URLs served here; ``s3_presigned``: presigned URLs of
    the S3 result store itself (the browser fetches from S3)."""
    journal_reads: bool = True
    """Read finished jobs from the journal's file when this replica runs beside the scheduler
    (``finished_reads``); False: every read asks the scheduler."""


@dataclass
class Ports:
    scheduler: AsyncSchedulerPort
    keys: KeyStore
    store: BlobStore
    settings: ApiSettings
    repository: ModelRepository | None = None
    """The model repository the admin model endpoints act on (None: no repository)."""
    clock: Callable[[], float] = time.monotonic
    """Monotonic seconds, for the request rates; tests pass a fake one."""
    wall_clock: Callable[[], float] = time.time
    """Seconds since the epoch, for asset URLs' expiry; tests pass a fake one."""
    rates: KeyRates = field(init=False)
    streams: StreamSlots = field(init=False)
    events: EventHub = field(init=False)
    """The replica's one reader of the scheduler's job events, for every event stream."""
    signer: AssetSigner | None = field(init=False)
    model_limits: LimitsCache = field(init=False)
    """The scheduler's limits, kept by this replica: a submit does not ask for them."""

    def __post_init__(self) -> None:
        limits = self.settings.limits
        self.rates = KeyRates(limits.key_rate_per_s, limits.key_burst)
        self.streams = StreamSlots(limits.max_streams_per_tenant)
        s = self.settings
        self.events = EventHub(
            self.scheduler, s.sse_feed_wait_s, s.sse_queue, s.sse_feed_interval_s, s.sse_feed_burst
        )
        self.model_limits = LimitsCache(self.scheduler, self.clock, s.limits_ttl_s)
        if s.journal_reads:  # the routes' reads of finished jobs skip the scheduler
            self.scheduler = FinishedReads(self.scheduler, self.model_limits)
        secret = self.settings.asset_secret
        self.signer = None if secret is None else AssetSigner(secret, self.settings.asset_ttl_s)


def ports(request: Request) -> Ports:
    return request.app.state.ports  # type: ignore[no-any-return]


def repository(request: Request) -> ModelRepository:
    repo = ports(request).repository
    if repo is None:
        raise NotFound("this deployment has no model repository")
    return repo


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; 401 when missing or wrong, 429 when
    the key is past its request rate at this replica."""
    p = ports(request)
    who = p.keys.authenticate(credentials.credentials if credentials else None)
    wait_s = p.rates.take(who.key_id, p.clock())
    if wait_s > 0:
        limits = p.settings.limits
        raise RateLimited(
            f"key {who.key_id} is over {limits.key_rate_per_s:g} requests a second (bursts "
            f"of {limits.key_burst}) at this API replica; retry after Retry-After seconds",
            retry_after_s=wait_s,
        )
    return who


async def user(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A caller whose key has scope ``user``: the tenant's own generations, limits, models."""
    if SCOPE_USER not in who.scopes:
        raise Forbidden(
            f"this key has scope {', '.join(sorted(who.scopes))} only; generations need a user key"
        )
    return who


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Forbidden("this endpoint needs an admin key")
    return who


async def queue_reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A caller that may read the queues: a ``queues:read`` key, or an admin key."""
    if not who.can_read_queues:
        raise Forbidden("this endpoint needs a key with scope queues:read, or an admin key")
    return who


Caller = Annotated[Principal, Depends(user)]
Admin = Annotated[Principal, Depends(admin)]
QueueReader = Annotated[Principal, Depends(queue_reader)]
