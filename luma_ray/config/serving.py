"""How luma_ray runs on a cluster: worker pools, autoscaling, the ingress's limits, webhook
delivery, and where state lives (``RuntimeConfig``). Loaded once at an entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from luma_ray.config.base import Strict, format_validation_error, read_list_file
from luma_ray.config.dream_machine import DreamMachineConfig
from luma_ray.config.pipelines import DEFAULT_PIPELINE, check_pipeline
from luma_ray.config.scheduling import SchedulerConfig
from luma_ray.errors import ConfigError


class AutoscalingConfig(Strict):
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


class PoolConfig(Strict):
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
    heartbeat_relay: bool = False
    """Send the replicas' heartbeats through one relay per node, which renews the leases of
    the beats that arrive together in one scheduler call (``workers/beat_relay.py``): for
    pools of many small replicas a node, where heartbeats are the scheduler's most frequent
    call. Off: each replica beats the scheduler itself (one hop fewer per step)."""
    accelerators: int = Field(default=1, ge=1, le=64)
    """Ranks per replica: one process per accelerator, one torch.distributed group, all on
    one node (a placement group bundle per rank)."""
    accelerator: str = Field(default="cpu", pattern=r"^(cpu|nvidia|amd)$")
    """``cpu`` (gloo), ``nvidia`` or ``amd`` (NCCL / RCCL; one GPU per rank)."""
    accelerator_type: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][\w.-]{0,62}$")
    """Ray's name of the GPU model every rank needs (``H100``, ``AMD-Instinct-MI300X-OAM``:
    ``ray.util.accelerators``). Each rank's bundle then asks for a sliver of Ray's
    ``accelerator_type:<name>`` resource, which Ray sets on nodes with that GPU and node types
    declare, so autoscaler v1 and v2 start the right node type. None: any GPU of
    ``accelerator``."""
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
    stage: str | None = Field(default=None, pattern=r"^(qa|caption|thumbnail)$")
    """A stage pool (docs/pipelines.md): its replicas run this stage of ``model``'s
    pipeline (a CPU worker, no model version) instead of the model. None: a model pool."""
    stage_impl: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``module:factory`` returning the stage to run (``workers.stages.Stage``); None: the
    built-in one for ``stage``."""

    @model_validator(mode="after")
    def _type_needs_a_gpu(self) -> PoolConfig:
        if self.accelerator_type is not None and self.accelerator == "cpu":
            raise ValueError(
                f"accelerator_type {self.accelerator_type!r} needs accelerator nvidia or amd"
            )
        return self

    @property
    def app_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.model}-{self.stage}-workers" if self.stage else f"{self.model}-workers"


S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
"""boto3's own setting of the S3 endpoint (``RuntimeConfig.s3_endpoint_url``)."""

STAGE_CLUSTER = "stages"
"""The cluster default stage pools count against: their leases must not take the dispatch
slots of a cluster's accelerators."""


class IngressLimits(Strict):
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
    max_upload_bytes: int = Field(default=50 * 2**20, ge=1024, le=2**40)
    """Largest file ``POST /v1/files`` takes, and largest input fetched from an http(s) URL
    (50 MiB); past it, 413 ``too_large``. The upload is streamed to disk, never held whole."""
    max_input_side: int = Field(default=4096, ge=16, le=65_536)
    """Widest and tallest image or video input accepted, in pixels; past it, 400."""
    input_fetch_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Deadline of fetching one http(s) input: connect, TLS, headers and the whole body."""


STANDARD_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Standard Webhooks' retry schedule: after the first attempt (at once), retries 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h after the attempt before failed (about 27.6 h in all)."""

_Wait = Annotated[float, Field(ge=0, le=7 * 86400)]


class WebhookConfig(Strict):
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


class RuntimeConfig(Strict):
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
    ingress_replicas: int = Field(default=1, ge=1, le=1000)
    """Replicas of the HTTP API's Serve deployment (``luma-api``)."""
    ingress_node_labels: dict[str, str] = Field(default_factory=dict)
    """Ray node labels an API replica's node must carry (its ``label_selector``), e.g.
    ``{"luma.io/role": "ingress"}``; {}: any node."""
    ingress_journal_reads: bool = True
    """An API replica that finds the journal's file on its machine (the head node's) reads
    finished jobs from it, read-only, instead of asking the scheduler; False: every read asks
    the scheduler."""
    s3_endpoint_url: str | None = Field(default=None, max_length=512, pattern=r"^https?://\S+$")
    """The S3-compatible server of ``s3://`` stores and repositories (SeaweedFS, MinIO...);
    None: AWS. Every process that opens them gets it as ``AWS_ENDPOINT_URL_S3``, which boto3
    reads; credentials stay in the usual AWS environment, never here."""
    allow_private_callbacks: bool = False
    """Let webhook callback URLs point at loopback and private networks."""
    allow_private_inputs: bool = False
    """Let http(s) URLs of generation inputs (first_frame...) point at loopback and private
    networks. Off: only public addresses, checked after DNS resolution (the SSRF guard)."""
    public_url: str | None = Field(default=None, max_length=512, pattern=r"^https?://[^\s?#]+$")
    """The API's public origin, for absolute asset URLs (``https://api.example.com``, with a
    path prefix if a proxy adds one); None: each request's own base URL, and paths from the
    API root in webhooks."""
    asset_url_ttl_s: int = Field(default=86_400, ge=60, le=7 * 86_400)
    """How long an asset URL lives from when a view shows it (default 24 h, at most 7 days)."""
    asset_urls: Literal["signed", "s3_presigned"] = "signed"
    """``signed``: ``/v1/assets/...`` URLs signed with ``<data_dir>/asset.secret`` and served
    by the API; ``s3_presigned`` (an ``s3://`` store only): the store's own presigned URLs."""
    ingress: IngressLimits = Field(default_factory=IngressLimits)
    """Per-key request rate and per-tenant event streams at each HTTP ingress replica."""
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    """Webhook delivery: retry schedule, attempt deadline, per-tenant limits."""
    dream_machine: DreamMachineConfig = Field(default_factory=DreamMachineConfig)
    """The Dream Machine-compatible API's model names and their resolutions and durations."""
    repository_uri: str | None = None
    """Model repository: ``file:///path`` or ``s3://bucket/prefix``; default under data_dir."""
    model_cache_max_bytes: int = Field(default=50 * 2**30, ge=0)
    """Each node's cache of model versions keeps at most this much beyond the newest."""
    pipelines: dict[str, list[str]] = Field(
        default_factory=lambda: {"luma-tiny": list(DEFAULT_PIPELINE)}
    )
    """Each model's chain of stages (docs/pipelines.md); the default runs luma-tiny through
    generate, qa, caption and thumbnail. ``{}``: every model runs alone. A stage without a
    pool in ``pools`` gets one small CPU pool (``stage_pools``)."""
    stage_num_cpus: float = Field(default=0.25, ge=0, le=1024)
    """CPUs Ray reserves for each replica of a stage pool added by default."""

    @field_validator("pipelines")
    @classmethod
    def _pipelines_valid(cls, pipelines: dict[str, list[str]]) -> dict[str, list[str]]:
        for model, stages in pipelines.items():
            check_pipeline(model, stages)
        return pipelines

    @property
    def scheduler_config(self) -> SchedulerConfig:
        """``scheduler`` with this config's ``pipelines``: what the scheduler actor runs."""
        return self.scheduler.model_copy(update={"pipelines": dict(self.pipelines)})

    @property
    def all_pools(self) -> list[PoolConfig]:
        """``pools``, and one stage pool (1 replica, ``stage_num_cpus``, cluster ``stages``)
        for each stage of a pipeline whose model has a pool here but that stage has none."""
        out = list(self.pools)
        declared = {(p.model, p.stage) for p in self.pools}
        for model, stages in self.pipelines.items():
            if (model, None) not in declared:
                continue  # no pool generates it here: no stage pools either
            for stage in stages[1:]:
                if (model, stage) not in declared:
                    out.append(
                        PoolConfig(
                            model=model,
                            stage=stage,
                            num_cpus=self.stage_num_cpus,
                            cluster=STAGE_CLUSTER,
                            prefetch=False,
                        )
                    )
        return out

    @model_validator(mode="after")
    def _presigned_needs_s3(self) -> RuntimeConfig:
        if self.asset_urls == "s3_presigned" and not self.store.startswith("s3://"):
            raise ValueError(
                f"asset_urls s3_presigned needs an s3:// result store, not {self.store!r}; "
                "use asset_urls: signed"
            )
        return self

    @model_validator(mode="after")
    def _pool_names_unique(self) -> RuntimeConfig:
        names = [pool.app_name for pool in self.all_pools]
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
    def asset_secret_path(self) -> str:
        """The HMAC key that signs asset URLs; made on first start, readable by its owner."""
        return str(Path(self.data_dir) / "asset.secret")

    @property
    def store_env(self) -> dict[str, str]:
        """Environment variables every process that opens the store or repository needs."""
        return {S3_ENDPOINT_ENV: self.s3_endpoint_url} if self.s3_endpoint_url else {}

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


class _Pools(Strict):
    pools: list[PoolConfig] = Field(min_length=1)


def load_pools(path: str | Path) -> list[PoolConfig]:
    """Read a pools file (``luma-ray up --pools``): ``{pools: [...]}`` or a bare list."""
    path = Path(path)
    try:
        return _Pools.model_validate({"pools": read_list_file(path, "pools")}).pools
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None
