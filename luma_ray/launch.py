"""Bring a luma_ray system up on a Ray cluster: the scheduler actor and the worker pools.

Called by ``luma-ray up``, by :func:`luma_ray.connect` when nothing is running yet, and by the
integration tests. Idempotent: a running scheduler is reused (``get_if_exists``) and Serve
updates pools in place.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import ray
from ray import serve

from luma_ray.config import PoolConfig, RuntimeConfig
from luma_ray.models.interface import ModelLimits
from luma_ray.models.registry import MODELS, get_model_class
from luma_ray.scheduler.actor import NAMESPACE, start_scheduler

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 300.0


def model_limits() -> dict[str, ModelLimits]:
    """Limits of every registered model, for request validation in the scheduler."""
    return {name: get_model_class(name).limits for name in MODELS}


def ensure_webhook_secret(path: Path) -> str:
    """Create the webhook signing secret (0600) if it does not exist; return its path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return str(path)


def pool_app_name(pool: PoolConfig) -> str:
    return f"{pool.model}-workers"


def start(runtime: RuntimeConfig) -> Any:
    """Start (or reuse) the scheduler and deploy every pool; return the scheduler handle.

    Blocks until the scheduler answers and every pool's replicas are running.
    """
    if not ray.is_initialized():
        raise RuntimeError("call ray.init() (or luma_ray.connect()) before launch.start()")
    handle = start_scheduler(
        runtime.scheduler.model_dump(),
        runtime.journal,
        model_limits(),
        ensure_webhook_secret(Path(runtime.webhook_secret_path)),
        runtime.allow_private_callbacks,
    )
    ray.get(handle.ping.remote(), timeout=READY_TIMEOUT_S)
    if runtime.http_host is not None:
        serve.start(http_options={"host": runtime.http_host, "port": runtime.http_port})
    elif runtime.pools:
        serve.start(proxy_location="Disabled")
    for pool in runtime.pools:
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
    log.info("pool %s: %d replica(s) on cluster %s", pool.model, pool.replicas, pool.cluster)


def pool_application(runtime: RuntimeConfig, pool: PoolConfig) -> Any:
    """The bound Serve application of one worker pool."""
    from luma_ray.workers.deployment import ModelWorker

    deployment: Any = serve.deployment(
        ModelWorker,
        name=pool_app_name(pool),
        num_replicas=pool.replicas,
        ray_actor_options={"num_cpus": pool.num_cpus},
        health_check_period_s=5,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=5,
    )
    return deployment.bind(
        pool.model,
        runtime.store,
        runtime.checkpoint_root,
        pool.cluster,
        pool.prefetch,
        pool.torch_threads,
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
