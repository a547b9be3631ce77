"""Write the RayService's serveConfigV2 from deployments/luma.yaml.

deploy/kubernetes/base/rayservice.yaml embeds the Serve config that ``serve deploy
deployments/luma.yaml`` uses, so Kubernetes and a hand-run cluster deploy the same apps. This
script reads that file as YAML, applies the few settings a pod needs (``K8S_OVERRIDES``: Serve's
HTTP proxy listens on every interface, where the Serve Service reaches it), and replaces the
``serveConfigV2: |`` block of the manifest with the result; the rest of the manifest, comments
included, is left as it is. ``--check`` writes nothing and exits 1 when the manifest is stale
(tests/unit/test_kubernetes_manifests.py runs it).

    python scripts/render_kubernetes.py            # rewrite the manifest
    python scripts/render_kubernetes.py --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SERVE_CONFIG = REPO / "deployments" / "luma.yaml"
MANIFEST = REPO / "deploy" / "kubernetes" / "base" / "rayservice.yaml"
HEADER = "# generated from deployments/luma.yaml by scripts/render_kubernetes.py: do not edit here"
K8S_OVERRIDES: dict[str, Any] = {"http_options": {"host": "0.0.0.0"}}
"""What differs from deployments/luma.yaml on Kubernetes, merged key by key."""

_BLOCK = re.compile(r"^(?P<indent>[ ]*)serveConfigV2: \|[-+]?[ ]*$")


class RenderError(Exception):
    pass


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def serve_config_text(serve_yaml: str) -> str:
    """The serveConfigV2 text: deployments/luma.yaml's content with ``K8S_OVERRIDES``."""
    config = yaml.safe_load(serve_yaml)
    if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
        raise RenderError("deployments/luma.yaml: expected a Serve config with `applications`")
    body = yaml.safe_dump(merged(config, K8S_OVERRIDES), sort_keys=False, default_flow_style=False)
    return f"{HEADER}\n{body}"


def render(manifest: str, serve_yaml: str) -> str:
    """``manifest`` with its ``serveConfigV2: |`` block replaced by the rendered config."""
    lines = manifest.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _BLOCK.match(line.rstrip("\n"))]
    if len(starts) != 1:
        raise RenderError(f"expected one `serveConfigV2: |` line, found {len(starts)}")
    start = starts[0]
    indent = len(_BLOCK.match(lines[start].rstrip("\n"))["indent"])  # type: ignore[index]
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" ")) > indent
    ):
        end += 1
    pad = " " * (indent + 2)
    block = [
        f"{pad}{line}\n" if line else "\n" for line in serve_config_text(serve_yaml).splitlines()
    ]
    return "".join([*lines[: start + 1], *block, *lines[end:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the manifest is stale")
    parser.add_argument("--serve-config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    current = args.manifest.read_text(encoding="utf-8")
    try:
        wanted = render(current, args.serve_config.read_text(encoding="utf-8"))
    except RenderError as err:
        print(f"render_kubernetes: {args.manifest}: {err}", file=sys.stderr)
        return 2
    if args.check:
        if wanted != current:
            print(
                f"{args.manifest} is stale: its serveConfigV2 differs from {args.serve_config}; "
                "run python scripts/render_kubernetes.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.manifest}: up to date")
        return 0
    if wanted != current:
        args.manifest.write_text(wanted, encoding="utf-8")
        print(f"wrote {args.manifest}")
    else:
        print(f"{args.manifest}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
