"""Bring a luma_ray system up on a Ray cluster: the scheduler actor and the worker pools.

Called by ``luma-ray up``, by :func:`luma_ray.connect` when nothing is running yet, and by the
integration tests. Idempotent: a running scheduler is reused (``get_if_exists``) and Serve
updates pools in place.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import ray
from ray import serve

from luma_ray.config import PoolConfig, RuntimeConfig
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
    return ModelRepository(open_store(runtime.repository), time.time)


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
    for pool in runtime.all_pools:
        deploy_pool(runtime, pool)
    if runtime.http_host is not None:
        from luma_ray.api.ingress import APP_NAME, api_application

        serve.run(api_application(runtime), name=APP_NAME, route_prefix="/", blocking=False)
        log.info("HTTP API on http://%s:%d", runtime.http_host, runtime.http_port)
    log.info("luma_ray is up: journal %s, results %s", runtime.journal, runtime.store)
    return handle


def deploy_pool(runtime: RuntimeConfig, pool: PoolConfig) -> None:
    """Deploy (or update) one pool as a Serve application without an HTTP route."""
    serve.run(
        pool_application(runtime, pool),
        name=pool_app_name(pool),
        route_prefix=None,
        blocking=False,
    )
    where = pool.cluster or "the cluster named by each node's label"
    log.info("pool %s: %d replica(s) on %s", pool.app_name, pool.replicas, where)


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
    reserve: dict[str, Any] = {}
    if bundle:
        reserve["placement_group_bundles"] = [dict(bundle) for _ in range(pool.accelerators)]
        reserve["placement_group_strategy"] = "STRICT_PACK"
        if pool.node_labels:
            reserve["placement_group_bundle_label_selector"] = [
                dict(pool.node_labels) for _ in range(pool.accelerators)
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
        ray_actor_options={"num_cpus": 0},
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
    )


def stage_application(runtime: RuntimeConfig, pool: PoolConfig) -> Any:
    """The bound Serve application of a stage pool: CPU replicas, no gang, no version."""
    from luma_ray.workers.stage_worker import StageWorker

    options: dict[str, Any] = {"num_cpus": pool.num_cpus}  # where the CPUs are: any node
    deployment: Any = serve.deployment(
        StageWorker,
        name=pool_app_name(pool),
        num_replicas=pool.replicas,
        ray_actor_options=options,
        health_check_period_s=5,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=5,
    )
    assert pool.stage is not None
    return deployment.bind(
        pool.stage, pool.model, runtime.store, pool.cluster, pool.stage_impl, pool.app_name
    )


def namespace() -> str:
    return NAMESPACE


def build_pool(args: dict[str, str]) -> Any:
    """Serve app builder for config files (``import_path: luma_ray.launch:build_pool``).

    ``args``: ``model`` (default luma-tiny), ``replicas``, ``cluster``, ``data_dir``. The
    scheduler actor must already run (``luma-ray up --detach`` starts it).
    """
    from luma_ray.config import default_data_dir

    data_dir = args.get("data_dir") or str(default_data_dir(dict(os.environ)))
    pool = PoolConfig(
        model=args.get("model", "luma-tiny"),
        replicas=int(args.get("replicas", 1)),
        cluster=args.get("cluster", "local"),
    )
    return pool_application(RuntimeConfig(data_dir=data_dir), pool)
