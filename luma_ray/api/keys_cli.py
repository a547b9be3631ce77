"""``luma-ray keys create | list | revoke | webhook-secret``: manage the API keys of a
deployment, and hand each tenant the secret that signs its webhooks.

Entry-point code: it reads the environment once (the data directory) and the clock once per
command, and passes values to :class:`~luma_ray.api.keys.KeyStore`. The main CLI
(:mod:`luma_ray.cli`) calls :func:`add_commands` and prints any
:class:`~luma_ray.errors.LumaError` as one line with exit code 2.

The keys live in ``<data_dir>/keys.sqlite``, the same data directory ``luma-ray up`` uses.
``create`` prints the plaintext key once, alone on its last line, so scripts can take it with
``tail -n 1``; nothing else ever shows it again.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from luma_ray.api.keys import GRANTABLE_SCOPES, KeyRecord, KeyStore, keys_path
from luma_ray.config import default_data_dir, default_tiers, load_config
from luma_ray.errors import InvalidRequest, NotFound


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir(dict(os.environ))


def _tier_names(args: argparse.Namespace) -> list[str]:
    tiers = load_config(args.config).tiers if args.config else default_tiers()
    return [t.name for t in tiers]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_create(args: argparse.Namespace) -> int:
    """``keys create``: a summary line, then the new key alone on the last line."""
    with KeyStore(keys_path(_data_dir(args)), _tier_names(args)) as store:
        key, record = store.create(
            args.tenant, args.tier, admin=args.admin, scopes=args.scope, now_s=time.time()
        )
    print(
        f"created key {record.key_id} for tenant {record.tenant}, tier {record.tier}, "
        f"scopes {','.join(record.scopes)}; store it now, it is not shown again:"
    )
    print(key)
    return 0


def format_table(records: list[KeyRecord]) -> str:
    """The ``keys list`` table: one row per key, columns padded, no secrets."""
    header = ("KEY_ID", "TENANT", "TIER", "SCOPES", "CREATED", "REVOKED")
    rows = [header] + [
        (
            r.key_id,
            r.tenant,
            r.tier,
            ",".join(r.scopes),
            _when(r.created_at_s),
            _when(r.revoked_at_s),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cmd_list(args: argparse.Namespace) -> int:
    """``keys list``: every key, oldest first. Does not create a missing keys file."""
    path = keys_path(_data_dir(args))
    records: list[KeyRecord] = []
    if path.exists():
        with KeyStore(path, ()) as store:
            records = store.list()
    if not records:
        print(f"no keys in {path}; make one with `luma-ray keys create --tenant T --tier T`")
        return 0
    print(format_table(records))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """``keys revoke KEY_ID``: the key stops working (servers: within their cache TTL)."""
    path = keys_path(_data_dir(args))
    if not path.exists():
        raise NotFound(f"no keys file at {path}; pass the --data-dir the keys were made in")
    with KeyStore(path, ()) as store:
        record = store.revoke(args.key_id, now_s=time.time())
    print(f"revoked key {record.key_id} of tenant {record.tenant} at {_when(record.revoked_at_s)}")
    return 0


def cmd_webhook_secret(args: argparse.Namespace) -> int:
    """``keys webhook-secret --tenant T``: the secret that signs T's webhooks, on one line."""
    if not args.tenant.strip():
        raise InvalidRequest("--tenant must name a tenant")
    path = _data_dir(args) / "webhook.secret"
    if not path.exists():
        raise NotFound(f"no webhook secret at {path}; `luma-ray up` makes it on first start")
    # Lazy: standardwebhooks comes with the server extra; `luma_ray[client]` lacks it.
    from luma_ray.notify.signing import tenant_secret

    print(tenant_secret(path.read_bytes().strip(), args.tenant))
    return 0


def add_commands(sub: Any) -> None:
    """Register ``keys`` and its subcommands on the ``luma-ray`` subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="state folder (default: $LUMA_RAY_HOME or ~/.local/share/luma_ray)"
    )
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", parents=[common], help="make a key (shown once)")
    create.add_argument("--tenant", required=True, help="tenant the key acts for")
    create.add_argument("--tier", required=True, help="service tier of the tenant's jobs")
    create.add_argument("--admin", action="store_true", help="also grant the admin scope")
    create.add_argument(
        "--scope",
        action="append",
        choices=GRANTABLE_SCOPES,
        help="grant only these scopes (repeat for several; default: user). queues:read reads "
        "the queue page and GET /v1/admin/queues and nothing else: the key for the page",
    )
    create.add_argument("--config", help="scheduler config YAML whose tiers are allowed")
    create.set_defaults(func=cmd_create)

    listing = actions.add_parser("list", parents=[common], help="show keys (never secrets)")
    listing.set_defaults(func=cmd_list)

    revoke = actions.add_parser("revoke", parents=[common], help="stop a key from working")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the 12 hex characters after lr_")
    revoke.set_defaults(func=cmd_revoke)

    hook = actions.add_parser(
        "webhook-secret", parents=[common], help="print the secret that signs a tenant's webhooks"
    )
    hook.add_argument("--tenant", required=True, help="the tenant whose webhooks it verifies")
    hook.set_defaults(func=cmd_webhook_secret)
