"""cloud-heterogeneous.yaml selects hardware: autoscaler v2 on the head, Ray's own
accelerator resource per GPU node type (so v1 tells them apart too), and the HTTP API's
replicas on the ingress node type. Reads the configs only; no cluster starts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_cluster_configs import (
    NODE_TYPED_FILES,
    ids_of,
    load,
    logical_lines,
    start_commands_by_node_type,
)

# Ray's names of the accelerator each luma.io/accelerator kind stands for (ray.util.accelerators).
RAY_ACCELERATOR_TYPES = {"nvidia-h100": "NVIDIA_H100", "amd-mi300x": "AMD_INSTINCT_MI300x"}


@pytest.mark.parametrize("path", NODE_TYPED_FILES, ids=ids_of(NODE_TYPED_FILES))
def test_gpu_node_types_declare_ray_s_own_accelerator_resource(path: Path) -> None:
    """Autoscaler v1 reads resources only: each GPU node type declares the resource Ray sets on
    a node with its GPU (accelerator_type:<Ray's name>), so kinds with the same CPU and GPU
    counts still differ, and a pool's `accelerator_type` picks its node type."""
    from ray.util import accelerators

    config = load(path)
    seen: dict[str, frozenset[tuple[str, float]]] = {}
    for node_type, spec in config["available_node_types"].items():
        kind = spec["labels"]["luma.io/accelerator"]
        declared = [r for r in spec["resources"] if r.startswith("accelerator_type:")]
        where = f"{path.name}: node type {node_type}"
        if kind == "cpu":
            assert not declared, f"{where}: a CPU node type declares {declared}"
            continue
        expected = getattr(accelerators, RAY_ACCELERATOR_TYPES[kind])
        assert declared == [f"accelerator_type:{expected}"], f"{where}: {declared}"
        assert spec["resources"][declared[0]] == 1, where
        seen[node_type] = frozenset(spec["resources"].items())
    kinds = {config["available_node_types"][t]["labels"]["luma.io/accelerator"] for t in seen}
    assert len(set(seen.values())) == len(kinds), f"{path.name}: GPU kinds share resources"


def head_start_lines(config: dict[str, Any]) -> list[str]:
    head = config.get("head_node_type", "head")
    return [
        line
        for command in start_commands_by_node_type(config)[head]
        for line in logical_lines(command)
    ]


@pytest.mark.parametrize("path", NODE_TYPED_FILES, ids=ids_of(NODE_TYPED_FILES))
def test_the_head_runs_autoscaler_v2(path: Path) -> None:
    """Only autoscaler v2 starts nodes for label selectors."""
    starts = [line for line in head_start_lines(load(path)) if re.search(r"\bray\s+start\b", line)]
    assert starts, f"{path.name}: no head ray start"
    for line in starts:
        assert re.search(r"(^|\s)RAY_enable_autoscaler_v2=1\s", line), f"{path.name}: {line}"


def luma_up_args(config: dict[str, Any]) -> list[str]:
    """The options of the head's `luma-ray up`."""
    for line in head_start_lines(config):
        words = shlex.split(line, comments=True)
        if words[:2] == ["luma-ray", "up"]:
            return words[2:]
    raise AssertionError("the head never runs luma-ray up")


@pytest.mark.parametrize("path", NODE_TYPED_FILES, ids=ids_of(NODE_TYPED_FILES))
def test_the_api_replicas_select_the_ingress_node_type(path: Path) -> None:
    """The head's `luma-ray up` options, read as luma-ray reads them: the API deployment's
    label selector matches the labels of the ingress node type and of no other, and a Serve
    proxy runs on every node, so the ingress nodes serve HTTP."""
    from luma_ray.api.ingress import api_application
    from luma_ray.cli import build_parser
    from luma_ray.config.apps import ApiAppArgs, serve_apps, serve_config
    from luma_ray.serving_cli.cluster import runtime_of

    config = load(path)
    args = build_parser().parse_args(["up", "--data-dir", "/tmp/luma-x", *luma_up_args(config)])
    runtime = runtime_of(args)
    api = serve_apps(runtime)[-1].args
    assert isinstance(api, ApiAppArgs) and api.node_labels, f"{path.name}: no ingress selector"
    matching = [
        name
        for name, spec in config["available_node_types"].items()
        if api.node_labels.items() <= (spec.get("labels") or {}).items()
    ]
    assert matching == ["ingress_cpu"], f"{path.name}: {api.node_labels} selects {matching}"
    assert config["available_node_types"]["ingress_cpu"]["min_workers"] >= 1
    assert serve_config(runtime)["proxy_location"] == "EveryNode"
    options = api_application(runtime)._bound_deployment.ray_actor_options
    assert options["label_selector"] == api.node_labels
