"""The scheduler's configuration: tiers, the dispatch policy, cluster and tenant limits.

Loaded once at an entry point (CLI, actor start) with :func:`load_config` and passed down as
values; nothing here reads the environment or a clock. A bad file raises
:class:`~luma_ray.errors.ConfigError` whose one-line message names the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from luma_ray.config.base import Strict, format_validation_error, read_list_file, read_yaml
from luma_ray.config.pipelines import check_pipeline
from luma_ray.errors import ConfigError


class TierConfig(Strict):
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


class PolicyConfig(Strict):
    """Which dispatch policy ranks queue heads, and its parameters."""

    name: str = "slo_shadow"
    """One of ``fifo``, ``strict``, ``pct_slo``, ``edf``, ``slo_guard``, ``slo_ratchet``,
    ``slo_shadow`` (the default, ``luma_ray.scheduler.policies.DEFAULT_POLICY``)."""
    params: dict[str, float] = Field(default_factory=dict)
    """Policy parameters, e.g. ``{tail_target: 1.0}`` for ``slo_shadow``."""


class PreemptionConfig(Strict):
    """When a running job may be parked at a step boundary for a more urgent one
    (docs/scheduling.md, "Preemption"). Off by default."""

    enabled: bool = False
    """Park running jobs at all. Off by default: parking needs models that can park and
    resume (docs/models.md), and the simulator shows it pays only on some days."""
    overhead_s: float = Field(default=2.0, ge=0, le=3600)
    """What one park and resume costs, in seconds added to the parked job's remaining work
    (writing and reading its latent and sampler state)."""
    min_gap_s: float = Field(default=600.0, ge=0, le=7 * 24 * 3600)
    """A job parked once is not parked again until this long after."""
    min_remaining_s: float = Field(default=30.0, ge=0, le=7 * 24 * 3600)
    """Never park a job with less work than this left after its next step boundary."""
    min_remaining_fraction: float = Field(default=0.1, ge=0, le=1)
    """Never park a job with less than this share of its steps left after that boundary."""
    min_tier_gap: int = Field(default=1, ge=1, le=100)
    """The parked job's tier is at least this many tiers below the waiting job's."""
    max_parks: int = Field(default=3, ge=1, le=1000)
    """Most times one job is parked; after that it runs to the end."""


class TenantLimits(Strict):
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


class ClusterConfig(Strict):
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


class SchedulerConfig(Strict):
    """Everything the scheduler core needs, in one value."""

    tiers: list[TierConfig] = Field(default_factory=default_tiers)
    """Tiers in priority order (first = highest, used by ``strict``)."""
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    preemption: PreemptionConfig = Field(default_factory=PreemptionConfig)
    """Parking running jobs at step boundaries for more urgent ones (off by default)."""
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    """Known clusters by name; a cluster not listed gets ``default_dispatch_limit``."""
    default_dispatch_limit: int | None = Field(default=None, ge=1)
    """Dispatch limit of clusters not listed in ``clusters``; ``None`` means unlimited."""
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict)
    """Per-tier tenant caps, keyed by tier name. Every tier has a default ``max_queued``
    (``DEFAULT_MAX_QUEUED``); a field set here replaces that tier's default, ``null`` removes
    it."""
    fair_share: bool = True
    """Share each tier fairly between its tenants (docs/scheduling.md, "Fair share inside a
    tier"): dispatches go to the tenant with the least virtual time (its past dispatches'
    sizes over its weight), so one tenant's flood costs the others little. ``false``: first
    come, first served across the tenants of a tier."""
    fair_share_lag_jobs: float = Field(default=1000.0, ge=0, le=1e9)
    """How far a tenant may run ahead of the least-served tenant of its tier (in mean job sizes
    of virtual time) while its savable jobs are still taken oldest first; past it, fair share
    picks. ``0``: fair share picks every savable job."""
    fair_share_flood_share: float = Field(default=0.7, gt=0, le=1)
    """A tenant holding more than this share of its tier's queued jobs, and past the lag, floods
    it (docs/scheduling.md, "A flood is contained"): the tier's other tenants go first and its
    jobs never go ahead of a heavier tier's savable job. ``1``: never."""
    tenant_weights: dict[str, float] = Field(default_factory=dict)
    """Fair-share weight per tenant id (default 1): a tenant of weight 2 gets twice the
    dispatches of a weight-1 tenant of its tier while both have jobs waiting."""
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
    journal_group_window_s: float | None = Field(default=0.001, ge=0, le=0.1)
    """Group commit (docs/architecture.md, "Group commit"): the scheduler actor commits the
    journal writes of concurrent calls together, in one transaction and one fsync, waiting up to
    this long (default 1 ms; or until ``journal_group_max`` writes wait) for more while calls
    come together (a lone call commits at once); each caller is answered once its change is
    durable. ``0``: no wait (writes that arrive during a commit still share the next one).
    ``None``: every call's change commits alone, on the event loop."""
    journal_group_max: int = Field(default=512, ge=1, le=100_000)
    """Most journal writes one group commit waits for before it commits at once."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The scheduler actor's log level (the ``luma_ray`` loggers in its process). INFO logs
    what an operator acts on; the routine lines of each job (submitted, leased, done) are
    DEBUG, since the journal records every job's history (docs/operations.md)."""

    pipelines: dict[str, list[str]] = Field(default_factory=dict)
    """Each model's chain of stages (docs/pipelines.md), e.g. ``{luma-tiny: [generate, qa,
    caption, thumbnail]}``; a model not listed runs alone. ``RuntimeConfig.pipelines`` (with
    the default for luma-tiny) sets it when a system starts."""
    qa_regenerations: int = Field(default=2, ge=0, le=20)
    """Times a video the QA stage rejected is generated again with a new seed (``seed + 1``
    each time) before the job fails with ``qa: <reasons>``."""

    @field_validator("pipelines")
    @classmethod
    def _pipelines_valid(cls, pipelines: dict[str, list[str]]) -> dict[str, list[str]]:
        for model, stages in pipelines.items():
            check_pipeline(model, stages)
        return pipelines

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

    @field_validator("tenant_weights")
    @classmethod
    def _weights_positive(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = sorted(t for t, w in weights.items() if not 0 < w < float("inf"))
        if bad:
            raise ValueError(f"weight of {', '.join(bad)} must be a number > 0 (1 is the default)")
        return weights

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
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path) -> SchedulerConfig:
    """Read a YAML config file (safe loader only). Called once by entry points."""
    path = Path(path)
    return parse_config(read_yaml(path, "config"), str(path))


def load_tiers(path: str | Path) -> list[TierConfig]:
    """Read a tiers file: either ``{tiers: [...]}`` or a bare list of tiers."""
    path = Path(path)
    return parse_config({"tiers": read_list_file(path, "tiers")}, str(path)).tiers
