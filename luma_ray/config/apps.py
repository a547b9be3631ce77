"""The Serve applications of a luma_ray system, as values: which apps, built by which builder
from which typed arguments.

:func:`serve_apps` is the one mapping from a runtime config (its pools, its store, its HTTP
settings) to applications. ``luma-ray up`` (``launch.start``) calls each app's builder with
these arguments; :func:`serve_config` writes the same list as a Serve config file
(``deployments/luma.yaml``, ``luma-ray serve-config``), whose ``args`` Serve validates against
the builder's pydantic parameter (:class:`PoolAppArgs`, :class:`ApiAppArgs`) before the
builder runs. So ``serve deploy`` builds what ``up`` runs, and a bad argument is a pydantic
error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from luma_ray.config.base import Strict, format_validation_error
from luma_ray.config.dream_machine import DreamMachineConfig
from luma_ray.config.scheduling import default_tiers
from luma_ray.config.serving import (
    IngressLimits,
    PoolConfig,
    RuntimeConfig,
    default_data_dir,
)

POOL_BUILDER = "luma_ray.launch:build_pool"
API_BUILDER = "luma_ray.api.ingress:build_api"
API_APP = "luma-api"
"""The Serve application (and deployment) name of the HTTP API."""

_Labels = dict[str, str]


class StoreArgs(Strict):
    """Where the system keeps its state: the builder arguments every app shares."""

    data_dir: str | None = Field(default=None, min_length=1)
    """``luma-ray up``'s ``--data-dir``; None: the default on the node that builds the app
    (``$LUMA_RAY_HOME``, else ``~/.local/share/luma_ray``)."""
    store_uri: str | None = None
    """Result store (``file:///...``, ``s3://bucket/prefix``); None: ``<data_dir>/results``."""
    repository_uri: str | None = None
    """Model repository; None: ``<data_dir>/repository``."""
    s3_endpoint_url: str | None = None
    """The S3-compatible server of ``s3://`` URIs; None: AWS."""
    model_cache_max_bytes: int = Field(default=50 * 2**30, ge=0)

    def runtime(self, environ: Mapping[str, str], **fields: Any) -> RuntimeConfig:
        """The runtime config these arguments describe (``environ``: the builder's own, for
        the default data directory)."""
        return RuntimeConfig(
            data_dir=self.data_dir or str(default_data_dir(dict(environ))),
            store_uri=self.store_uri,
            repository_uri=self.repository_uri,
            s3_endpoint_url=self.s3_endpoint_url,
            model_cache_max_bytes=self.model_cache_max_bytes,
            **fields,
        )

    def _runtime_fields(self) -> dict[str, Any]:
        return {}

    @model_validator(mode="after")
    def _a_valid_runtime(self) -> StoreArgs:
        """Every rule of ``RuntimeConfig`` (URIs, endpoint, presigned URLs need s3) applies."""
        try:
            self.runtime({"LUMA_RAY_HOME": "/nonexistent"}, **self._runtime_fields())
        except ValidationError as err:
            raise ValueError(
                format_validation_error(err, "the runtime these args describe")
            ) from None
        return self


class PoolAppArgs(StoreArgs):
    """Arguments of ``luma_ray.launch:build_pool``: one worker pool and where state lives."""

    pool: PoolConfig
    """Model, replicas, cluster, node labels, accelerator (kind, type, count per replica:
    the gang), CPUs, autoscaling, stage: everything ``--pools`` takes."""

    def _runtime_fields(self) -> dict[str, Any]:
        return {"pools": [self.pool], "pipelines": {}}


class ApiAppArgs(StoreArgs):
    """Arguments of ``luma_ray.api.ingress:build_api``: the HTTP API's replicas, where they
    run, and what each replica needs to serve (tiers, limits, asset URLs)."""

    replicas: int = Field(default=1, ge=1, le=1000)
    node_labels: _Labels = Field(default_factory=dict)
    """The replicas' label selector: node labels their node must carry; {}: any node."""
    tiers: list[str] = Field(default_factory=lambda: [t.name for t in default_tiers()])
    """Tier names API keys may have: the scheduler config's tiers."""
    allow_private_callbacks: bool = False
    allow_private_inputs: bool = False
    ingress: IngressLimits = Field(default_factory=IngressLimits)
    dream_machine: DreamMachineConfig = Field(default_factory=DreamMachineConfig)
    public_url: str | None = None
    asset_url_ttl_s: int = 86_400
    asset_urls: Literal["signed", "s3_presigned"] = "signed"

    def _runtime_fields(self) -> dict[str, Any]:
        return {
            "pools": [],
            "allow_private_callbacks": self.allow_private_callbacks,
            "allow_private_inputs": self.allow_private_inputs,
            "ingress": self.ingress,
            "dream_machine": self.dream_machine,
            "public_url": self.public_url,
            "asset_url_ttl_s": self.asset_url_ttl_s,
            "asset_urls": self.asset_urls,
            "ingress_replicas": self.replicas,
            "ingress_node_labels": self.node_labels,
        }

    def api_runtime(self, environ: Mapping[str, str]) -> RuntimeConfig:
        return self.runtime(environ, **self._runtime_fields())


@dataclass(frozen=True)
class ServeApp:
    """One Serve application: its name, HTTP route (None: none), builder and arguments."""

    name: str
    route_prefix: str | None
    import_path: str
    args: PoolAppArgs | ApiAppArgs


def serve_apps(runtime: RuntimeConfig, data_dir_from_node: bool = False) -> list[ServeApp]:
    """The applications ``runtime`` runs: a pool app per pool (stage pools included), then
    the HTTP API if ``http_host`` is set. ``data_dir_from_node``: leave ``data_dir`` out, so
    each app uses the default data directory of the node that builds it."""
    store: dict[str, Any] = {
        "data_dir": None if data_dir_from_node else runtime.data_dir,
        "store_uri": runtime.store_uri,
        "repository_uri": runtime.repository_uri,
        "s3_endpoint_url": runtime.s3_endpoint_url,
        "model_cache_max_bytes": runtime.model_cache_max_bytes,
    }
    apps = [
        ServeApp(pool.app_name, None, POOL_BUILDER, PoolAppArgs(**store, pool=pool))
        for pool in runtime.all_pools
    ]
    if runtime.http_host is not None:
        api = ApiAppArgs(
            **store,
            replicas=runtime.ingress_replicas,
            node_labels=runtime.ingress_node_labels,
            tiers=[tier.name for tier in runtime.scheduler.tiers],
            allow_private_callbacks=runtime.allow_private_callbacks,
            allow_private_inputs=runtime.allow_private_inputs,
            ingress=runtime.ingress,
            dream_machine=runtime.dream_machine,
            public_url=runtime.public_url,
            asset_url_ttl_s=runtime.asset_url_ttl_s,
            asset_urls=runtime.asset_urls,
        )
        apps.append(ServeApp(API_APP, "/", API_BUILDER, api))
    return apps


def proxy_location(runtime: RuntimeConfig) -> str:
    """Where Serve runs its HTTP proxies for ``runtime``."""
    return runtime.http_proxy_location if runtime.http_host is not None else "Disabled"


def serve_config(runtime: RuntimeConfig, data_dir_from_node: bool = False) -> dict[str, Any]:
    """The Serve config (``serve deploy``'s file) of :func:`serve_apps`: proxy location, HTTP
    options and the applications with their import paths and typed args (defaults left
    out, except each pool's model and replicas)."""
    config: dict[str, Any] = {"proxy_location": proxy_location(runtime)}
    if runtime.http_host is not None:
        config["http_options"] = {"host": runtime.http_host, "port": runtime.http_port}
    config["applications"] = [
        {
            "name": app.name,
            "route_prefix": app.route_prefix,
            "import_path": app.import_path,
            "args": _args_of(app.args),
        }
        for app in serve_apps(runtime, data_dir_from_node)
    ]
    return config


def _args_of(args: PoolAppArgs | ApiAppArgs) -> dict[str, Any]:
    out = args.model_dump(mode="json", exclude_defaults=True)
    if isinstance(args, PoolAppArgs):
        pool = out.pop("pool", {})
        out["pool"] = {"model": args.pool.model, "replicas": args.pool.replicas, **pool}
    return out
