"""Configuration: tiers, the dispatch policy, cluster and tenant limits.

Loaded once at an entry point (CLI, actor start) with :func:`load_config` and passed down as
values; nothing here reads the environment or a clock. A bad file raises
:class:`~luma_ray.errors.ConfigError` whose one-line message names the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from luma_ray.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(_Strict):
    """One service tier: its queue-wait SLO and its weight in weighted attainment."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
    """Tier name as clients send it, lower case (``api``, ``free``)."""
    max_wait_s: float = Field(gt=0, le=7 * 24 * 3600)
    """The SLO: the longest acceptable wait in the queue, in seconds."""
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Importance of one job of this tier in weighted attainment."""
    shed_ratio: float | None = Field(default=None, gt=1)
    """Admission control: refuse new jobs while the predicted wait exceeds this many SLOs.
    ``None`` never sheds (the default, and the only choice for ``api``)."""


class PolicyConfig(_Strict):
    """Which dispatch policy ranks queue heads, and its parameters."""

    name: str = "slo_guard"
    """One of ``fifo``, ``strict``, ``pct_slo``, ``edf``, ``slo_guard``."""
    params: dict[str, float] = Field(default_factory=dict)
    """Policy parameters, e.g. ``{r_cap: 2.0, guard_share: 0.25}`` for ``slo_guard``."""


class TenantLimits(_Strict):
    """Per-tenant caps inside one tier, so one client cannot flood it."""

    max_queued: int | None = Field(default=None, ge=1)
    """Most jobs one tenant may have queued in the tier; submits past it get 429."""
    max_leased: int | None = Field(default=None, ge=1)
    """Most jobs one tenant may have leased or running in the tier; more wait in the queue."""


DEFAULT_MAX_QUEUED = {
    "api": 5000,
    "enterprise": 5000,
    "unlimited": 5000,
    "light": 2000,
    "free": 500,
}
"""Each tier's default ``max_queued`` per tenant (docs/scheduling.md); a config may change it."""
OTHER_TIER_MAX_QUEUED = 2000
"""The default ``max_queued`` per tenant of a tier not named in ``DEFAULT_MAX_QUEUED``."""


def _with_default_caps(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every tier's default tenant caps under the fields it does not set itself
    (``max_queued: null`` removes a cap). Entries naming unknown tiers are left for the check."""
    tiers = data.get("tiers")
    given = data.get("tenant_limits", {})
    if not isinstance(given, dict) or (tiers is not None and not isinstance(tiers, list)):
        return data  # validation will say what is wrong with them
    names = [t.name for t in default_tiers()] if tiers is None else [_name(t) for t in tiers]
    merged = dict(given)
    for name in names:
        own = given.get(name, {})
        if isinstance(own, TenantLimits):
            own = own.model_dump(include=own.model_fields_set)
        if isinstance(name, str) and isinstance(own, dict):
            default = DEFAULT_MAX_QUEUED.get(name, OTHER_TIER_MAX_QUEUED)
            merged[name] = {"max_queued": default, **own}
    return {**data, "tenant_limits": merged}


def _name(tier: Any) -> Any:
    return tier.get("name") if isinstance(tier, dict) else getattr(tier, "name", None)


class ClusterConfig(_Strict):
    """A cluster that workers pull from, and its back-pressure limit."""

    dispatch_limit: int | None = Field(ge=0)
    """Most leased-but-unfinished jobs the cluster may hold (running, prefetched and being
    uploaded); pulls past it get nothing. 0 sends the cluster nothing (to empty it); None is
    no limit. docs/dispatch_limits.md: about the cluster's slot count works best."""


def default_tiers() -> list[TierConfig]:
    """The default tiers (docs/scheduling.md): api 2 min … free 2 h, weights 5 … 1."""
    return [
        TierConfig(name="api", max_wait_s=120, weight=5),
        TierConfig(name="enterprise", max_wait_s=300, weight=4),
        TierConfig(name="unlimited", max_wait_s=900, weight=3),
        TierConfig(name="light", max_wait_s=1800, weight=2),
        TierConfig(name="free", max_wait_s=7200, weight=1),
    ]


class SchedulerConfig(_Strict):
    """Everything the scheduler core needs, in one value."""

    tiers: list[TierConfig] = Field(default_factory=default_tiers)
    """Tiers in priority order (first = highest, used by ``strict``)."""
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    """Known clusters by name; a cluster not listed gets ``default_dispatch_limit``."""
    default_dispatch_limit: int | None = Field(default=None, ge=1)
    """Dispatch limit of clusters not listed in ``clusters``; ``None`` means unlimited."""
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict)
    """Per-tier tenant caps, keyed by tier name. Every tier has a default ``max_queued``
    (``DEFAULT_MAX_QUEUED``); a field set here replaces that tier's default, ``null`` removes
    it."""
    lease_ttl_s: float = Field(default=60.0, gt=0, le=3600)
    """A lease not renewed by a heartbeat for this long expires and its job is requeued."""
    max_attempts: int = Field(default=3, ge=1, le=100)
    """Most attempts a job gets: a lease lost on the last one fails the job instead of
    requeueing it."""
    pinned_grace_s: float = Field(default=600.0, ge=0, le=30 * 86400)
    """A job pinned to ``model@version`` fails, still queued, once no worker has run that
    version for this long and it is not the active version (after a promotion moved every
    worker on, and no rollback brought it back)."""
    keep_finished_s: float = Field(default=86400.0, ge=0, le=365 * 86400)
    """A finished job leaves the scheduler's memory this long after it finished; the journal
    keeps it, and get, list and delete read it from there. Its Idempotency-Key is
    remembered until then."""
    retention_s: float | None = Field(default=2_592_000.0, gt=0, le=100 * 365 * 86400)
    """A finished job is deleted this long after it finished (default 30 days): its row
    leaves the journal and its files (``results/<job id>/``) the result store, and get
    answers 404. ``None`` keeps every job and result for ever."""

    @model_validator(mode="before")
    @classmethod
    def _default_caps(cls, data: Any) -> Any:
        return _with_default_caps(data) if isinstance(data, dict) else data

    @field_validator("tiers")
    @classmethod
    def _tiers_unique(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        if not tiers:
            raise ValueError("list at least one tier")
        names = [t.name for t in tiers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tier names must be unique; {', '.join(dupes)} appear twice")
        return tiers

    @model_validator(mode="after")
    def _cross_checks(self) -> SchedulerConfig:
        names = {t.name for t in self.tiers}
        unknown = sorted(set(self.tenant_limits) - names)
        if unknown:
            raise ValueError(
                f"tenant_limits names unknown tier(s) {', '.join(unknown)}; "
                f"use one of {', '.join(sorted(names))}"
            )
        for tier in self.tiers:
            if tier.name == "api" and tier.shed_ratio is not None:
                raise ValueError("tier 'api' is never shed; remove its shed_ratio")
        return self

    def tier(self, name: str) -> TierConfig:
        """The tier called ``name``; raises ``KeyError`` for an unknown one."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field; remove it or check its spelling"
    elif first["type"] == "missing":
        msg = "required field is missing; add it"
    return f"{source}: field '{where}': {msg}"


def parse_config(data: Any, source: str = "config") -> SchedulerConfig:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{source}: the top level must be a mapping of fields, not {kind}")
    try:
        return SchedulerConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _read_yaml(path: Path, what: str) -> Any:
    """A YAML file's data (safe loader only); one-line ``ConfigError`` if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"{path}: cannot read {what} file ({err.strerror}); check the path"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} is not valid YAML; fix the syntax there") from None


def _read_list_file(path: Path, field: str) -> list[Any]:
    """A file holding ``{<field>: [...]}`` or a bare list; the list."""
    data = _read_yaml(path, field[:-1] if field.endswith("s") else field)
    if isinstance(data, list):
        data = {field: data}
    if not isinstance(data, dict) or field not in data:
        raise ConfigError(f"{path}: expected a list of {field} or a mapping with a '{field}' field")
    items: list[Any] = data[field]
    return items


def load_config(path: str | Path) -> SchedulerConfig:
    """Read a YAML config file (safe loader only). Called once by entry points."""
    path = Path(path)
    return parse_config(_read_yaml(path, "config"), str(path))


def load_tiers(path: str | Path) -> list[TierConfig]:
    """Read a tiers file: either ``{tiers: [...]}`` or a bare list of tiers."""
    path = Path(path)
    return parse_config({"tiers": _read_list_file(path, "tiers")}, str(path)).tiers


class AutoscalingConfig(_Strict):
    """Queue-driven autoscaling of one pool (``luma_ray.workers.autoscale``)."""

    min_replicas: int = Field(default=1, ge=1, le=10_000)
    """The warm pool: never fewer replicas (at least 1: a pool at 0 reports no backlog)."""
    max_replicas: int = Field(default=8, ge=1, le=10_000)
    target_drain_s: float = Field(default=120.0, gt=0, le=86_400)
    """Ask for enough replicas to run the backlog within this long."""
    idle_window_s: float = Field(default=300.0, ge=0, le=86_400)
    """Scale down only after demand stayed lower for this long."""
    upscale_delay_s: float = Field(default=5.0, ge=0, le=3600)
    metrics_interval_s: float = Field(default=5.0, gt=0, le=600)
    """How often replicas report the backlog to Serve's controller."""

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas {self.max_replicas} is below min_replicas {self.min_replicas}"
            )
        return self


class PoolConfig(_Strict):
    """A pool of model workers: one Serve deployment whose replicas serve one model.

    A model may have several pools (different hardware, clusters); give each a ``name``."""

    model: str = Field(default="luma-tiny", min_length=1, max_length=64)
    """Model name the replicas load (see ``luma_ray.models.registry``)."""
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    """Serve application name of the pool; default ``<model>-workers``."""
    replicas: int = Field(default=1, ge=0, le=10_000)
    """Number of replicas (each one worker, one gang)."""
    cluster: str | None = Field(default=None, min_length=1, max_length=64)
    """Cluster the replicas count against for dispatch limits; default: the node's
    ``luma.io/cluster`` label (cluster_configs/ set it), else ``local``."""
    prefetch: bool = True
    """Lease the next job near the end of the running one, so the model never waits for the
    scheduler."""
    prefetch_lead_s: float = Field(default=2.0, ge=0, le=3600)
    """Prefetch when the running job should end within this (at the latest before its last
    step). Keep it above a pull's round trip to the scheduler; larger values hold a lease
    longer, so an api job that arrives meanwhile may wait behind a lower tier's job."""
    accelerators: int = Field(default=1, ge=1, le=64)
    """Ranks per replica: one process per accelerator, one torch.distributed group, all on
    one node (a placement group bundle per rank)."""
    accelerator: str = Field(default="cpu", pattern=r"^(cpu|nvidia|amd)$")
    """``cpu`` (gloo), ``nvidia`` or ``amd`` (NCCL / RCCL; one GPU per rank)."""
    node_labels: dict[str, str] = Field(default_factory=dict)
    """Ray node labels a replica's node must carry, e.g. ``{"luma.io/cluster": "aws-east",
    "luma.io/accelerator": "nvidia-h100"}`` (cluster_configs/ set them on every node)."""
    num_cpus: float = Field(default=1.0, ge=0, le=1024)
    """CPUs Ray reserves per rank."""
    torch_threads: int = Field(default=1, ge=1, le=256)
    """Intra-op threads per replica on CPU."""
    watch_interval_s: float = Field(default=5.0, ge=0.1, le=3600)
    """How often each replica reads the model's ``active.yaml`` to notice a promotion."""
    autoscaling: AutoscalingConfig | None = None
    """Scale replicas with the queue between min and max; ``replicas`` is then ignored."""

    @property
    def app_name(self) -> str:
        return self.name or f"{self.model}-workers"


class IngressLimits(_Strict):
    """What each HTTP ingress replica allows one API key and one tenant (docs/api.md). Counted
    per replica: N replicas allow up to N times as much."""

    key_rate_per_s: float | None = Field(default=20.0, gt=0, le=1_000_000)
    """Requests a second one API key may make on average; past it, 429 ``rate_limited``.
    ``None``: no limit."""
    key_burst: int = Field(default=40, ge=1, le=1_000_000)
    """Requests one key may make at once before its rate applies (the bucket's size)."""
    max_streams_per_tenant: int | None = Field(default=16, ge=1, le=1_000_000)
    """Event streams (``/v1/generations/{id}/events``) one tenant may hold open; past it,
    429 ``stream_limit``. ``None``: no limit."""


STANDARD_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Standard Webhooks' retry schedule: after the first attempt (at once), retries 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h after the attempt before failed (about 27.6 h in all)."""

_Wait = Annotated[float, Field(ge=0, le=7 * 86400)]


class WebhookConfig(_Strict):
    """How the scheduler delivers webhooks (docs/webhooks.md): when it retries, how long one
    attempt may take, and how much of the sender one tenant may hold."""

    retry_schedule_s: tuple[_Wait, ...] = Field(default=STANDARD_RETRY_SCHEDULE_S, max_length=30)
    """Seconds to wait before each retry: retry n goes this list's n-th entry after attempt n
    failed (the first attempt goes at once). An event still undelivered after the last retry
    expires. Empty: one attempt only. Each wait at most 7 days, 30 retries at most, 30 days
    in all."""
    attempt_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """The deadline of one attempt, all of it: connect, TLS, sending the request and receiving
    the response's status line and headers. A receiver that answers one byte at a time is cut
    off at this deadline."""
    max_pending_per_tenant: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most events of one tenant waiting for delivery; past it that tenant's new events are
    dropped (counted and logged), other tenants' are not affected."""
    max_in_flight_per_tenant: int = Field(default=2, ge=1, le=64)
    """Most attempts to one tenant's receivers at once, so one tenant's slow receiver holds
    only its own share of the delivery threads."""
    delivery_threads: int = Field(default=8, ge=1, le=256)
    """Threads that make attempts, for all tenants together."""

    @field_validator("retry_schedule_s")
    @classmethod
    def _bounded_span(cls, schedule: tuple[float, ...]) -> tuple[float, ...]:
        if sum(schedule) > 30 * 86400:
            raise ValueError(f"the retries span {sum(schedule):.0f} s; at most 30 days")
        return schedule


class RuntimeConfig(_Strict):
    """Where a running system keeps its state, and which worker pools it starts."""

    data_dir: str
    """Root for the journal, results (file:// store) and cached checkpoints."""
    journal_path: str | None = None
    """SQLite journal file; default ``<data_dir>/journal.sqlite``."""
    store_uri: str | None = None
    """Result store: ``file:///path`` or ``s3://bucket/prefix``; default under data_dir."""
    pools: list[PoolConfig] = Field(default_factory=lambda: [PoolConfig()])
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    http_host: str | None = "127.0.0.1"
    """Serve the HTTP API here; None runs without HTTP (workers and Ray clients only)."""
    http_port: int = Field(default=8000, ge=1, le=65535)
    http_proxy_location: str = Field(default="HeadOnly", pattern="^(HeadOnly|EveryNode)$")
    """Where Serve runs HTTP proxies: ``HeadOnly``, or ``EveryNode`` behind a load balancer
    (each node binds ``http_host:http_port``)."""
    allow_private_callbacks: bool = False
    """Let webhook callback URLs point at loopback and private networks."""
    ingress: IngressLimits = Field(default_factory=IngressLimits)
    """Per-key request rate and per-tenant event streams at each HTTP ingress replica."""
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    """Webhook delivery: retry schedule, attempt deadline, per-tenant limits."""
    repository_uri: str | None = None
    """Model repository: ``file:///path`` or ``s3://bucket/prefix``; default under data_dir."""
    model_cache_max_bytes: int = Field(default=50 * 2**30, ge=0)
    """Each node's cache of model versions keeps at most this much beyond the newest."""

    @model_validator(mode="after")
    def _pool_names_unique(self) -> RuntimeConfig:
        names = [pool.app_name for pool in self.pools]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"pools {twice} share a name: give each pool of one model its own 'name'"
            )
        return self

    @property
    def journal(self) -> str:
        return self.journal_path or str(Path(self.data_dir) / "journal.sqlite")

    @property
    def store(self) -> str:
        return self.store_uri or (Path(self.data_dir) / "results").resolve().as_uri()

    @property
    def webhook_secret_path(self) -> str:
        """The HMAC key that signs webhooks; made on first start, readable by its owner."""
        return str(Path(self.data_dir) / "webhook.secret")

    @property
    def repository(self) -> str:
        return self.repository_uri or (Path(self.data_dir) / "repository").resolve().as_uri()

    @property
    def model_cache_dir(self) -> str:
        """Per-node cache of verified model versions (every node uses this path locally)."""
        return str(Path(self.data_dir) / "model-cache")


def default_data_dir(environ: dict[str, str]) -> Path:
    """``$LUMA_RAY_HOME``, else ``$XDG_DATA_HOME/luma_ray``, else ``~/.local/share/luma_ray``.

    Entry points pass ``os.environ``; nothing else reads the environment.
    """
    if environ.get("LUMA_RAY_HOME"):
        return Path(environ["LUMA_RAY_HOME"]).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "luma_ray"


class _Pools(_Strict):
    pools: list[PoolConfig] = Field(min_length=1)


def load_pools(path: str | Path) -> list[PoolConfig]:
    """Read a pools file (``luma-ray up --pools``): ``{pools: [...]}`` or a bare list."""
    path = Path(path)
    try:
        return _Pools.model_validate({"pools": _read_list_file(path, "pools")}).pools
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, str(path))) from None
