"""``luma-ray serve-config``: the Serve config file of what ``luma-ray up`` deploys.

It takes ``up``'s options and writes ``luma_ray.config.apps.serve_config`` of the same runtime
as YAML, headed by the command that wrote it, so ``serve deploy FILE`` builds the apps ``up``
would run (``deployments/luma.yaml`` is written this way; a unit test re-runs its command and
fails when the file is out of date).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from luma_ray.config.apps import serve_config
from luma_ray.serving_cli.cluster import runtime_of

COMMAND = "luma-ray serve-config"
HEADER = """\
# Serve config of a luma_ray system: what `luma-ray up` runs with the same options.
# Written by `luma_ray.config.apps.serve_config`; do not edit: change the options and run
#   {command}
# again (tests/unit/test_serve_apps.py fails while this file differs from its output).
#
#   luma-ray up --detach       # (same options) the Ray cluster, the scheduler, these apps
#   serve deploy {target}
#                              # later: update the apps in place (replicas, new pools)
#
# `serve deploy` replaces the apps with this list and leaves the scheduler and its journal
# alone. Each app's `args` are checked by its builder's pydantic model
# (luma_ray.config.apps: PoolAppArgs, ApiAppArgs). data_dir, when absent, is the default on
# the node that builds the apps; it must be the one `luma-ray up` used (keys, results).
"""


def deployment_parser() -> argparse.ArgumentParser:
    """The options of what ``up`` runs, and so what ``serve-config`` writes: HTTP, where the
    API runs, the S3 endpoint, asset URLs."""
    deployed = argparse.ArgumentParser(add_help=False)
    deployed.add_argument("--host", default="127.0.0.1", help="HTTP API address")
    deployed.add_argument("--port", type=int, default=8000, help="HTTP API port")
    deployed.add_argument(
        "--allow-private-callbacks",
        action="store_true",
        help="let callbacks and input URLs point at loopback and private networks (off by "
        "default: any API user could make the server call into its own network)",
    )
    deployed.add_argument(
        "--public-url", help="the API's public origin, for absolute asset URLs (https://...)"
    )
    deployed.add_argument(
        "--asset-url-ttl",
        dest="asset_url_ttl_s",
        type=int,
        help="seconds an asset URL lives (default 86400: 24 h; at most 7 days)",
    )
    deployed.add_argument(
        "--asset-urls",
        choices=["signed", "s3_presigned"],
        help="signed: /v1/assets URLs served by the API (default); s3_presigned: the s3:// "
        "result store's own presigned URLs",
    )
    deployed.add_argument(
        "--s3-endpoint-url",
        help="S3-compatible server of s3:// stores (http://host:port; default AWS)",
    )
    deployed.add_argument(
        "--ingress-replicas", type=int, help="replicas of the HTTP API (default 1)"
    )
    deployed.add_argument(
        "--ingress-label",
        action="append",
        dest="ingress_labels",
        metavar="KEY=VALUE",
        help="node label the API replicas' nodes must carry (repeat for several)",
    )
    deployed.add_argument(
        "--proxy-location",
        choices=["HeadOnly", "EveryNode"],
        help="where Serve runs HTTP proxies (EveryNode: on the API replicas' nodes too, "
        "behind a load balancer; default HeadOnly)",
    )
    return deployed


def add_serve_config_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "serve-config",
        parents=parents,
        help="write the Serve config (serve deploy) of what 'up' with these options runs",
    )
    cmd.add_argument("-o", "--out", default="-", help="file to write (default: stdout)")
    cmd.set_defaults(func=cmd_serve_config)


def render(args: argparse.Namespace, argv: list[str]) -> str:
    """The config file's text for the parsed ``args``; ``argv``: the options as given, for
    the header."""
    config = serve_config(runtime_of(args), data_dir_from_node=not args.data_dir)
    command = " ".join([COMMAND, *map(shlex.quote, argv)])
    target = args.out if args.out != "-" else "FILE"
    header = HEADER.format(command=command, target=target)
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


def cmd_serve_config(args: argparse.Namespace) -> int:
    argv = _options_given(sys.argv[1:])
    text = render(args, argv)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def _options_given(argv: list[str]) -> list[str]:
    """``argv`` after the ``serve-config`` word: the options to repeat in the header."""
    return argv[argv.index("serve-config") + 1 :] if "serve-config" in argv else argv
