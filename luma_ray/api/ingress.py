"""The HTTP API as a Ray Serve application (FastAPI ingress).

Serve calls :func:`build_app` on each ingress replica; the replica is an entry point, so it
reads its settings once from ``LUMA_RAY_API`` (JSON, set through the deployment's runtime
environment by :func:`api_application`). ``deployments/luma.yaml`` deploys the same app with
``serve deploy`` through :func:`build_api`. No ``from __future__ import annotations`` here:
Serve reads the builder's parameter annotation as a class to validate its ``args`` with.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from ray import serve

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore, keys_path
from luma_ray.config import (
    DreamMachineConfig,
    IngressLimits,
    RuntimeConfig,
    default_data_dir,
    default_tiers,
)
from luma_ray.config.apps import API_APP, ApiAppArgs
from luma_ray.models.repository import ModelRepository
from luma_ray.runtime.handle import get_async_scheduler
from luma_ray.storage import open_store

APP_NAME = API_APP
ENV = "LUMA_RAY_API"


def api_settings(runtime: RuntimeConfig, tiers: list[str] | None = None) -> dict[str, Any]:
    """What an ingress replica needs to build the app, as JSON-able values (``tiers``: the
    tier names keys may have; None: the runtime's scheduler tiers)."""
    return {
        "keys_path": str(keys_path(runtime.data_dir)),
        "tiers": list(tiers) if tiers is not None else [t.name for t in runtime.scheduler.tiers],
        "store": runtime.store,
        "repository": runtime.repository,
        "asset_secret_path": runtime.asset_secret_path,  # the path: never the secret itself
        "settings": {
            "allow_private_callbacks": runtime.allow_private_callbacks,
            "allow_private_inputs": runtime.allow_private_inputs,
            "limits": runtime.ingress.model_dump(),
            "dream_machine": runtime.dream_machine.model_dump(),
            "asset_ttl_s": runtime.asset_url_ttl_s,
            "public_url": runtime.public_url,
            "asset_urls": runtime.asset_urls,
            "journal_reads": runtime.ingress_journal_reads,
        },
    }


def build_app() -> FastAPI:
    """Called by Serve on every ingress replica."""
    raw = os.environ.get(ENV)
    if raw:
        cfg = json.loads(raw)
    else:  # `serve run luma_ray.api.ingress:app` with no settings: the user's data dir
        data_dir = default_data_dir(dict(os.environ))
        cfg = api_settings(RuntimeConfig(data_dir=str(data_dir)))
        cfg["tiers"] = [t.name for t in default_tiers()]
    keys = KeyStore(cfg["keys_path"], cfg["tiers"])
    settings = dict(cfg["settings"])
    settings["limits"] = IngressLimits.model_validate(settings.get("limits") or {})
    settings["dream_machine"] = DreamMachineConfig.model_validate(
        settings.get("dream_machine") or {}
    )
    secret = Path(cfg.get("asset_secret_path") or "")
    if secret.name and secret.is_file():  # made by launch.start; absent: no asset URLs
        settings["asset_secret"] = secret.read_bytes().strip()
    return create_app(
        get_async_scheduler(),
        keys,
        open_store(cfg["store"]),
        ApiSettings(**settings),
        ModelRepository(open_store(cfg["repository"]), time.time),
    )


class ApiIngress:
    """The ingress deployment; all routes come from :func:`build_app`."""


def api_application(
    runtime: RuntimeConfig, replicas: int | None = None, tiers: list[str] | None = None
) -> Any:
    """The Serve application of the HTTP API, bound and ready for ``serve.run``: ``replicas``
    (None: ``runtime.ingress_replicas``) on nodes carrying ``runtime.ingress_node_labels``."""
    env = {**runtime.store_env, ENV: json.dumps(api_settings(runtime, tiers))}
    options: dict[str, Any] = {"num_cpus": 0, "runtime_env": {"env_vars": env}}
    if runtime.ingress_node_labels:
        options["label_selector"] = dict(runtime.ingress_node_labels)
    deployment: Any = serve.deployment(
        serve.ingress(build_app)(ApiIngress),
        name=APP_NAME,
        num_replicas=runtime.ingress_replicas if replicas is None else replicas,
        max_ongoing_requests=256,  # requests mostly wait on the scheduler actor, not the CPU
        ray_actor_options=options,
    )
    return deployment.bind()


_default: Any = serve.deployment(serve.ingress(build_app)(ApiIngress), name=APP_NAME)
app = _default.bind()
"""For ``serve run luma_ray.api.ingress:app`` and the config in ``deployments/``."""


def build_api(args: ApiAppArgs) -> Any:
    """Serve app builder of the HTTP API (``import_path: luma_ray.api.ingress:build_api``).

    ``args``: :class:`~luma_ray.config.apps.ApiAppArgs` (Serve validates the config file's
    ``args`` against it); ``luma-ray up`` builds its API app here too.
    """
    return api_application(args.api_runtime(os.environ), args.replicas, args.tiers)
