"""Bring a luma_ray system up on a Ray cluster: the scheduler actor and the worker pools.

Called by ``luma-ray up``, by :func:`luma_ray.connect` when nothing is running yet, and by the
integration tests. Idempotent: a running scheduler is reused (``get_if_exists``) and Serve
updates pools in place.

The Serve applications come from ``luma_ray.config.apps.serve_apps``, built by the same
builders ``serve deploy deployments/luma.yaml`` calls (:func:`build_pool`,
``luma_ray.api.ingress.build_api``). No ``from __future__ import annotations`` here: Serve
reads the builder's parameter annotation as a class to validate its ``args`` with.
"""

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.serve.api import RunTarget

from luma_ray.config import PoolConfig, RuntimeConfig
from luma_ray.config.apps import API_BUILDER, POOL_BUILDER, ApiAppArgs, PoolAppArgs, serve_apps
from luma_ray.errors import ConfigError
from luma_ray.jobs import ModelLimits
from luma_ray.jobs.request import limits_from_yaml
from luma_ray.models.manifest import Manifest
from luma_ray.models.registry import MODELS, get_model_class
from luma_ray.models.repository import ModelRepository
from luma_ray.runtime.actor import ActorSettings, start_scheduler
from luma_ray.runtime.handle import NAMESPACE, SchedulerHandle
from luma_ray.scheduler.protocol import Ping
from luma_ray.storage import open_store
from luma_ray.storage.base import make_folders

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0
ACCELERATOR_RESOURCE = "accelerator_type:"
"""Ray's resource on a node with a known GPU model: ``accelerator_type:H100`` = 1."""
ACCELERATOR_SLIVER = 0.001
"""What one rank asks of ``accelerator_type:<name>``: enough to need such a node."""


def model_limits(runtime: RuntimeConfig | None = None) -> dict[str, ModelLimits]:
    """Limits of every model the scheduler accepts jobs for: the built-in ones, and each
    pool's model from its active repository version (publish and promote before starting)."""
    limits = {name: get_model_class(name).limits for name in MODELS}
    if runtime is None:
        return limits
    repository = open_repository(runtime)
    for pool in runtime.pools:
        if pool.model in MODELS or pool.stage is not None:
            continue
        active = repository.active(pool.model).active
        if active is None:
            raise ConfigError(
                f"pool model {pool.model!r} has no active version in {runtime.repository}; "
                f"run luma-ray models publish and promote first"
            )
        limits[pool.model] = limits_of(repository.manifest(pool.model, active))
    return limits


def limits_of(manifest: Manifest) -> ModelLimits:
    """A version's request limits: from its model.yaml, or its built-in class."""
    if manifest.limits is not None:
        return limits_from_yaml(manifest.limits, f"{manifest.model}@{manifest.version}")
    builtin = {entry: name for name, entry in MODELS.items()}.get(manifest.entrypoint)
    if builtin is None:
        raise ConfigError(
            f"{manifest.model}@{manifest.version} does not declare 'limits' in its model.yaml "
            "and is not a built-in model; publish a version that declares them"
        )
    return get_model_class(builtin).limits


def open_repository(runtime: RuntimeConfig) -> ModelRepository:
    uri = runtime.repository
    if uri.startswith("s3://") and runtime.s3_endpoint_url:
        store = open_store(uri, endpoint_url=runtime.s3_endpoint_url)
    else:
        store = open_store(uri)
    return ModelRepository(store, time.time)


def ensure_versions(runtime: RuntimeConfig) -> None:
    """Publish and promote the built-in reference model for pools that serve it and have no
    active version yet (first start); other models must be published by their team."""
    from luma_ray.models.reference.publish import ensure_reference  # imports torch

    repository = open_repository(runtime)
    for pool in runtime.pools:
        if pool.stage is not None:
            continue
        if pool.model in MODELS and repository.active(pool.model).active is None:
            version = ensure_reference(repository, pool.model)
            log.info("published the reference model as %s@%s", pool.model, version)


def ensure_webhook_secret(path: Path) -> str:
    """Create a signing secret (0600, in a 0700 folder) if it does not exist; return its
    path. The webhook secret and the asset URL secret (:func:`ensure_asset_secret`)."""
    if not path.exists():
        make_folders(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return str(path)


ensure_asset_secret = ensure_webhook_secret
"""The asset URL secret is made like the webhook secret, in its own file."""


def pool_app_name(pool: PoolConfig) -> str:
    return pool.app_name


def start(runtime: RuntimeConfig) -> SchedulerHandle:
    """Start (or reuse) the scheduler and deploy every pool; return the scheduler handle.

    Blocks until the scheduler answers and every pool's replicas are running.
    """
    if not ray.is_initialized():
        raise RuntimeError("call ray.init() (or luma_ray.connect()) before launch.start()")
    ensure_versions(runtime)
    handle = start_scheduler(
        ActorSettings(
            config=runtime.scheduler_config.model_dump(),
            journal_path=runtime.journal,
            models=model_limits(runtime),
            webhook_secret_path=ensure_webhook_secret(Path(runtime.webhook_secret_path)),
            asset_secret_path=ensure_asset_secret(Path(runtime.asset_secret_path)),
            asset_ttl_s=runtime.asset_url_ttl_s,
            public_url=runtime.public_url,
            asset_urls=runtime.asset_urls,
            allow_private_callbacks=runtime.allow_private_callbacks,
            webhooks=runtime.webhooks,
            repository_uri=runtime.repository,
            store_uri=runtime.store,
            env=runtime.store_env,
        )
    )
    SchedulerHandle(handle.actor, READY_TIMEOUT_S).call(Ping())
    if runtime.http_host is not None:
        serve.start(
            proxy_location=runtime.http_proxy_location,
            http_options={"host": runtime.http_host, "port": runtime.http_port},
        )
    elif runtime.pools:
        serve.start(proxy_location="Disabled")
    apps = applications(runtime)
    if apps:
        # One call for all of them: their replicas start side by side, and it returns once
        # every application runs (one serve.run after another waited for each replica's start
        # in turn: the integration tests' 14 applications took 137 s to come up, now 96 s).
        serve.run_many([RunTarget(a.app, name=a.name, route_prefix=a.route_prefix) for a in apps])
        log.info("deployed %s", ", ".join(a.name for a in apps))
    if runtime.http_host is not None:
        log.info("HTTP API on http://%s:%d", runtime.http_host, runtime.http_port)
    log.info("luma_ray is up: journal %s, results %s", runtime.journal, runtime.store)
    return handle


@dataclass(frozen=True)
class BuiltApp:
    """One bound Serve application and where ``serve.run_many`` puts it."""

    name: str
    route_prefix: str | None
    app: Any


def applications(runtime: RuntimeConfig) -> list[BuiltApp]:
    """Every Serve application ``runtime`` runs, built by the builders ``serve deploy`` calls
    with the arguments ``luma_ray.config.apps.serve_apps`` gives them."""
    from luma_ray.api.ingress import build_api

    out = []
    for app in serve_apps(runtime):
        if app.import_path == POOL_BUILDER:
            assert isinstance(app.args, PoolAppArgs)
            built = build_pool(app.args)
        else:
            assert app.import_path == API_BUILDER and isinstance(app.args, ApiAppArgs)
            built = build_api(app.args)
        out.append(BuiltApp(app.name, app.route_prefix, built))
    return out


def pool_application(runtime: RuntimeConfig, pool: PoolConfig) -> Any:
    """The bound Serve application of one worker pool."""
    from luma_ray.workers.deployment import ModelWorker

    if pool.stage is not None:
        return stage_application(runtime, pool)

    # The replica itself (a supervisor) needs no CPU. Each rank of its gang takes one bundle,
    # packed on one node; the next version's ranks take them over on a swap.
    bundle: dict[str, float] = {}
    if pool.num_cpus > 0:
        bundle["CPU"] = pool.num_cpus
    if pool.accelerator != "cpu":
        bundle["GPU"] = 1
    selector = dict(pool.node_labels)
    if pool.accelerator_type is not None:
        # Ray's own accelerator resource (Ray sets it on every node with such a GPU; node types
        # declare it): both autoscalers pick the node type by it. Not Ray's label
        # ray.io/accelerator-type: a node type cannot declare ray.io/ labels, so autoscaler v2
        # would never start a node for a selector on it.
        bundle[f"{ACCELERATOR_RESOURCE}{pool.accelerator_type}"] = ACCELERATOR_SLIVER
    reserve: dict[str, Any] = {}
    if bundle:
        reserve["placement_group_bundles"] = [dict(bundle) for _ in range(pool.accelerators)]
        reserve["placement_group_strategy"] = "STRICT_PACK"
        if selector:
            reserve["placement_group_bundle_label_selector"] = [
                dict(selector) for _ in range(pool.accelerators)
            ]
    scaling: dict[str, Any] = {"num_replicas": pool.replicas}
    if pool.autoscaling is not None:
        auto = pool.autoscaling
        scaling = {
            "autoscaling_config": {
                "min_replicas": auto.min_replicas,
                "max_replicas": auto.max_replicas,
                "upscale_delay_s": auto.upscale_delay_s,
                "downscale_delay_s": auto.idle_window_s,
                "metrics_interval_s": auto.metrics_interval_s,
                "look_back_period_s": 2 * auto.metrics_interval_s,
                "policy": {"policy_function": "luma_ray.workers.autoscale:queue_policy"},
            }
        }
    deployment: Any = serve.deployment(
        ModelWorker,
        name=pool_app_name(pool),
        **scaling,
        ray_actor_options=_actor_options(runtime, {"num_cpus": 0}),
        **reserve,
        health_check_period_s=5,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=5,
    )
    return deployment.bind(
        pool.model,
        runtime.store,
        runtime.repository,
        runtime.model_cache_dir,
        runtime.model_cache_max_bytes,
        pool.cluster,
        pool.prefetch,
        pool.torch_threads,
        pool.num_cpus,
        pool.replicas,
        pool.watch_interval_s,
        pool.accelerators,
        pool.accelerator,
        pool.autoscaling.target_drain_s if pool.autoscaling else None,
        pool.app_name,
        pool.prefetch_lead_s,
        pool.heartbeat_relay,
    )


def stage_application(runtime: RuntimeConfig, pool: PoolConfig) -> Any:
    """The bound Serve application of a stage pool: CPU replicas, no gang, no version."""
    from luma_ray.workers.stage_worker import StageWorker

    options: dict[str, Any] = {"num_cpus": pool.num_cpus}  # where the CPUs are: any node
    if pool.node_labels:  # unless the pool names its nodes
        options["label_selector"] = dict(pool.node_labels)
    deployment: Any = serve.deployment(
        StageWorker,
        name=pool_app_name(pool),
        num_replicas=pool.replicas,
        ray_actor_options=_actor_options(runtime, options),
        health_check_period_s=5,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=5,
    )
    assert pool.stage is not None
    return deployment.bind(
        pool.stage,
        pool.model,
        runtime.store,
        pool.cluster,
        pool.stage_impl,
        pool.app_name,
        pool.heartbeat_relay,
    )


def _actor_options(runtime: RuntimeConfig, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the store's environment (the S3 endpoint) for the replica."""
    if runtime.store_env:
        return {**options, "runtime_env": {"env_vars": dict(runtime.store_env)}}
    return options


def namespace() -> str:
    return NAMESPACE


def build_pool(args: PoolAppArgs) -> Any:
    """Serve app builder of one worker pool (``import_path: luma_ray.launch:build_pool``).

    ``args``: :class:`~luma_ray.config.apps.PoolAppArgs` (Serve validates the config file's
    ``args`` against it). The scheduler actor must already run (``luma-ray up --detach``).
    """
    return pool_application(args.runtime(os.environ), args.pool)
