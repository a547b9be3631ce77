"""``luma-ray models ...``: publish, list, promote, roll back, inspect and verify versions, and
scaffold a tiny diffusers pipeline version folder.

Who calls this: ``luma_ray.cli`` calls :func:`add_commands` on its subparsers; each handler is
``func(args) -> int``. Errors are ``LumaError`` subclasses, which the main CLI prints as one line
with exit code 2. ``verify`` prints one line per problem and exits 1 on a mismatch.

``--repo`` is a store URI (``file:///...``, a path, or ``s3://bucket/prefix`` with
``--endpoint-url``; S3 credentials come from the usual AWS environment or config). The default
is ``<data dir>/repository``, the data dir from ``luma_ray.config.default_data_dir``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from luma_ray.config import default_data_dir
from luma_ray.errors import ConfigError, InvalidRequest
from luma_ray.models.repository import ModelRepository
from luma_ray.storage import open_store


def add_commands(sub: Any) -> None:
    """Register ``models`` and its subcommands on the ``luma-ray`` subparsers ``sub``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo", help="repository store URI (default: file URI of <data dir>/repository)"
    )
    common.add_argument("--endpoint-url", help="S3 endpoint for an s3:// --repo")

    models = sub.add_parser("models", help="the model repository: versions and rollout")
    cmds = models.add_subparsers(dest="models_command", required=True)

    publish = cmds.add_parser("publish", parents=[common], help="upload a folder as a version")
    publish.add_argument("name")
    publish.add_argument("version")
    publish.add_argument("dir", type=Path, help="folder with model.yaml and checkpoints/")
    publish.set_defaults(func=cmd_publish)

    listing = cmds.add_parser("list", parents=[common], help="published versions, oldest first")
    listing.add_argument("name")
    listing.set_defaults(func=cmd_list)

    promote = cmds.add_parser("promote", parents=[common], help="make a version active")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument(
        "--max-unavailable",
        help="how much of each pool may swap at once, e.g. 25%% or 1 (default: keep)",
    )
    promote.set_defaults(func=cmd_promote)

    rollback = cmds.add_parser("rollback", parents=[common], help="return to the previous one")
    rollback.add_argument("name")
    rollback.set_defaults(func=cmd_rollback)

    status = cmds.add_parser("status", parents=[common], help="active, versions and history")
    status.add_argument("name")
    status.set_defaults(func=cmd_status)

    verify = cmds.add_parser("verify", parents=[common], help="re-hash a version's files")
    verify.add_argument("name")
    verify.add_argument("version")
    verify.set_defaults(func=cmd_verify)

    scaffold = cmds.add_parser(
        "scaffold", help="write a version folder for a diffusers pipeline (needs the extra)"
    )
    scaffold.add_argument(
        "--pipeline", required=True, help="WanPipeline or LTXPipeline (the text-to-video class)"
    )
    scaffold.add_argument(
        "--tiny",
        action="store_true",
        required=True,
        help="tiny random weights built in code (no download): for tests and dry runs",
    )
    scaffold.add_argument("--out", required=True, type=Path, help="folder to write; new or empty")
    scaffold.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    scaffold.set_defaults(func=cmd_scaffold)


def open_repository(args: argparse.Namespace) -> ModelRepository:
    """The repository named by ``--repo`` (or the default under the data dir)."""
    uri = args.repo or (default_data_dir(dict(os.environ)) / "repository").as_uri()
    endpoint_url = getattr(args, "endpoint_url", None)
    store = open_store(uri, endpoint_url=endpoint_url) if endpoint_url else open_store(uri)
    return ModelRepository(store, time.time)


def cmd_publish(args: argparse.Namespace) -> int:
    """``models publish NAME VERSION DIR``: upload a folder as a new version."""
    manifest = open_repository(args).publish(args.name, args.version, args.dir)
    print(
        f"published {manifest.model}@{manifest.version}: {len(manifest.files)} files, "
        f"{manifest.size_bytes} bytes, entrypoint {manifest.entrypoint}"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``models list NAME``: one line per version, oldest first; ``*`` marks the active one."""
    repo = open_repository(args)
    active = repo.active(args.name).active
    for manifest in repo.versions(args.name):
        mark = "*" if manifest.version == active else " "
        print(
            f"{mark} {manifest.version}\t{_when(manifest.created_at_s)}\t"
            f"{manifest.size_bytes} bytes\t{manifest.entrypoint}"
        )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """``models promote NAME VERSION``: make a version active."""
    pointer = open_repository(args).promote(args.name, args.version, args.max_unavailable)
    print(
        f"{args.name}: active {pointer.active} (previous {pointer.previous}); workers swap "
        f"{pointer.max_unavailable} of a pool at a time"
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``models rollback NAME``: return to the previous version."""
    pointer = open_repository(args).rollback(args.name)
    print(f"{args.name}: rolled back to {pointer.active} (previous {pointer.previous})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``models status NAME``: active, previous, versions and history as YAML."""
    print(yaml.safe_dump(open_repository(args).status(args.name), sort_keys=False), end="")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``models verify NAME VERSION``: exit 1 and one line per problem on a mismatch."""
    problems = open_repository(args).verify(args.name, args.version)
    for problem in problems:
        print(f"{args.name}@{args.version}: {problem}")
    if problems:
        return 1
    print(f"{args.name}@{args.version}: ok")
    return 0


def cmd_scaffold(args: argparse.Namespace) -> int:
    """``models scaffold --pipeline CLASS --tiny --out DIR``: a tiny pipeline version folder."""
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidRequest(f"--out {out} exists and is not an empty folder; pick a new one")
    try:
        from luma_ray.models.diffusers.scaffold import write_tiny_folder
    except ImportError as exc:
        raise ConfigError(
            f"the diffusers extra is not installed ({exc}); pip install 'luma_ray[diffusers]'"
        ) from None
    folder = write_tiny_folder(out, args.pipeline, seed=args.seed)
    print(
        f"wrote a tiny {args.pipeline} version to {folder}; publish it with: "
        f"luma-ray models publish NAME VERSION {folder}"
    )
    return 0


def _when(at_s: float) -> str:
    return datetime.fromtimestamp(at_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
