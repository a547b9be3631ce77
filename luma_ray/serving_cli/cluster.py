"""The Ray cluster the serving commands work on: the runtime they describe, which cluster
to join (without ``ray.init`` waiting minutes on a dead address), and luma_ray's Serve apps."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from luma_ray.config import (
    PoolConfig,
    RuntimeConfig,
    default_data_dir,
    load_config,
    load_pools,
)
from luma_ray.config.apps import serve_apps
from luma_ray.config.base import format_validation_error
from luma_ray.errors import ConfigError, Unavailable
from luma_ray.serving_cli.head import join_address, ray_temp_dir, reachable
from luma_ray.serving_cli.record import UpRecord

log = logging.getLogger(__name__)


def data_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir(dict(os.environ))


def runtime_of(args: argparse.Namespace, http: bool = True) -> RuntimeConfig:
    scheduler = load_config(args.config) if getattr(args, "config", None) else None
    if getattr(args, "pools", None):
        pools = load_pools(args.pools)
    else:
        pools = [PoolConfig(replicas=getattr(args, "replicas", 1))]
    fields: dict[str, Any] = {"data_dir": str(data_dir_of(args)), "pools": pools}
    if http:
        fields["http_host"] = getattr(args, "host", None) or "127.0.0.1"
        fields["http_port"] = getattr(args, "port", None) or 8000
    else:
        fields["http_host"] = None
    if scheduler is not None:
        fields["scheduler"] = scheduler
    if getattr(args, "journal", None):
        # Absolute: the scheduler actor that opens it runs in a folder of Ray's choosing.
        fields["journal_path"] = str(Path(args.journal).expanduser().resolve())
    if getattr(args, "store", None):
        fields["store_uri"] = args.store
    for name in ("public_url", "asset_url_ttl_s", "asset_urls", "s3_endpoint_url"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    if getattr(args, "ingress_replicas", None) is not None:
        fields["ingress_replicas"] = args.ingress_replicas
    if getattr(args, "ingress_labels", None):
        fields["ingress_node_labels"] = labels_of(args.ingress_labels, "--ingress-label")
    if getattr(args, "proxy_location", None):
        fields["http_proxy_location"] = args.proxy_location
    if getattr(args, "allow_private_callbacks", False):
        fields["allow_private_callbacks"] = True
        fields["allow_private_inputs"] = True
        log.warning(
            "--allow-private-callbacks: callback URLs and input URLs may point at loopback "
            "and private networks; any API user can then make this deployment send requests "
            "into its own network. Use it for tests and trusted on-prem users only."
        )
    try:
        return RuntimeConfig(**fields)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "the luma-ray options")) from None


def join(environ: Mapping[str, str], record: UpRecord | None, scan: bool = True) -> str | None:
    """Join the running Ray cluster luma_ray uses here; its address, or None if none runs.

    The address is ``$RAY_ADDRESS``, the one ``up`` recorded, or Ray's address file, and only
    tried if it answers (a dead one keeps ``ray.init`` waiting for minutes). With none known,
    ``scan`` lets Ray look for a cluster among this machine's processes (``address='auto'``).
    """
    import ray

    from luma_ray.runtime.handle import NAMESPACE

    address = join_address(environ, record.address if record else None, ray_temp_dir(environ))
    if address is None and not scan:
        return None
    if address is not None and not reachable(address):
        return None
    try:
        ray.init(address=address or "auto", namespace=NAMESPACE, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError):
        return None
    except ray.exceptions.AuthenticationError as err:
        first = (str(err.message).strip().splitlines() or ["no reason given"])[0]
        raise Unavailable(
            f"the Ray cluster at {address or 'auto'} refused this machine's token: {first}; "
            "give it the cluster's token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)"
        ) from None
    return str(ray.get_runtime_context().gcs_address)


def labels_of(pairs: list[str], option: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a pair without ``=`` or with an empty key is refused."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {pair!r}: give KEY=VALUE, e.g. luma.io/role=ingress")
        labels[key.strip()] = value.strip()
    return labels


def luma_apps(runtime: RuntimeConfig) -> list[str]:
    """The Serve applications ``launch.start(runtime)`` deploys."""
    return [app.name for app in serve_apps(runtime)]
