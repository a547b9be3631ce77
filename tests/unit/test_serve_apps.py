"""`serve deploy deployments/luma.yaml` builds what `luma-ray up` runs.

Both go through ``luma_ray.config.apps.serve_apps``: ``up`` calls the builders with its typed
arguments (``launch.applications``), ``serve deploy`` reads them from the config file and Serve
validates them against the builder's pydantic parameter (``call_user_app_builder_with_args_
if_necessary``, Serve's own step, called here as the controller calls it). The applications are
built and compared as Serve's deployment schemas and bound arguments; no Ray starts.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve.deployment import deployment_to_schema
from ray.serve.schema import ServeDeploySchema

from luma_ray.cli import build_parser
from luma_ray.config import AutoscalingConfig, PoolConfig, RuntimeConfig, default_tiers
from luma_ray.config.apps import PoolAppArgs, serve_apps, serve_config
from luma_ray.config.scheduling import SchedulerConfig, TierConfig
from luma_ray.errors import ConfigError
from luma_ray.launch import applications, build_pool
from luma_ray.serving_cli.cluster import runtime_of
from luma_ray.serving_cli.serve_config import render

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deployments" / "luma.yaml"
ENDPOINT = "http://127.0.0.1:8333"


def s3_runtime(data_dir: str) -> RuntimeConfig:
    """A cluster like cloud-heterogeneous.yaml's: S3 store and repository on an S3-compatible
    endpoint, a labelled GPU gang pool that autoscales, a CPU pool, stage pools, the API on
    ingress nodes behind a proxy on every node, and a tier of its own."""
    return RuntimeConfig(
        data_dir=data_dir,
        store_uri="s3://luma-results/videos",
        repository_uri="s3://luma-models",
        s3_endpoint_url=ENDPOINT,
        http_host="0.0.0.0",
        http_proxy_location="EveryNode",
        ingress_replicas=3,
        ingress_node_labels={"luma.io/role": "ingress"},
        scheduler=SchedulerConfig(
            tiers=[*default_tiers(), TierConfig(name="trial", max_wait_s=5, weight=0.5)]
        ),
        pools=[
            PoolConfig(
                model="luma-tiny",
                name="tiny-h100",
                accelerator="nvidia",
                accelerator_type="H100",
                accelerators=8,
                num_cpus=8,
                node_labels={"luma.io/cluster": "aws-us-east-1"},
                autoscaling=AutoscalingConfig(min_replicas=1, max_replicas=6, target_drain_s=90),
            ),
            PoolConfig(model="luma-tiny", replicas=2, cluster="cpu", node_labels={"a": "b"}),
        ],
    )


def up_apps(runtime: RuntimeConfig) -> dict[str, dict[str, Any]]:
    """What `luma-ray up` deploys (launch.start runs them all with one serve.run_many)."""
    return {app.name: described(app.route_prefix, app.app) for app in applications(runtime)}


def deployed_apps(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What `serve deploy` of ``config`` deploys: each app built as Serve's controller does."""
    ServeDeploySchema.model_validate(config)
    out = {}
    for app in config["applications"]:
        builder = import_attr(app["import_path"])
        built = call_user_app_builder_with_args_if_necessary(builder, app.get("args") or {})
        out[app["name"]] = described(app["route_prefix"], built)
    return out


REPLICA_OPTIONS = (
    "ray_actor_options",
    "placement_group_bundles",
    "placement_group_strategy",
    "placement_group_bundle_label_selector",  # not in Serve's deployment schema
    "placement_group_fallback_strategy",
    "max_replicas_per_node",
)


def described(route_prefix: str | None, app: Any) -> dict[str, Any]:
    """An application as Serve would run it: route, the deployment's options as Serve's own
    schema shows them, its whole deployment and replica config, its constructor's args."""
    deployment = app._bound_deployment
    replica = deployment._replica_config
    return {
        "route_prefix": route_prefix,
        "options": deployment_to_schema(deployment).model_dump(exclude_unset=True),
        "deployment_config": deployment._deployment_config.model_dump(),
        "replica_config": {name: getattr(replica, name) for name in REPLICA_OPTIONS},
        "init_args": deployment.init_args,
        "init_kwargs": deployment.init_kwargs,
    }


def through_yaml(config: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(config, sort_keys=False))


def test_serve_deploy_builds_exactly_what_up_runs_on_an_s3_cluster(tmp_path: Path) -> None:
    runtime = s3_runtime(str(tmp_path))
    up = up_apps(runtime)
    deployed = deployed_apps(through_yaml(serve_config(runtime)))
    assert deployed.keys() == up.keys()
    for name in up:
        assert deployed[name] == up[name], name
    # ... and what they both run is the S3 system, not a local folder.
    gpu = up["tiny-h100"]
    assert gpu["init_args"][:3] == ("luma-tiny", "s3://luma-results/videos", "s3://luma-models")
    options = gpu["options"]
    assert options["ray_actor_options"]["runtime_env"]["env_vars"] == {
        "AWS_ENDPOINT_URL_S3": ENDPOINT
    }
    assert options["autoscaling_config"]["max_replicas"] == 6
    bundles = options["placement_group_bundles"]
    assert len(bundles) == 8 and bundles[0]["GPU"] == 1
    assert bundles[0]["accelerator_type:H100"] > 0  # the H100 node type, v1 and v2
    assert gpu["replica_config"]["placement_group_bundle_label_selector"][0] == {
        "luma.io/cluster": "aws-us-east-1"
    }
    assert up["luma-tiny-workers"]["init_args"][5] == "cpu"  # the pool's cluster, not "local"
    assert up["luma-tiny-caption-workers"]["init_args"][2] == "s3://luma-results/videos"
    api = up["luma-api"]["options"]
    assert api["num_replicas"] == 3
    assert api["ray_actor_options"]["label_selector"] == {"luma.io/role": "ingress"}
    env = api["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env["AWS_ENDPOINT_URL_S3"] == ENDPOINT
    assert '"store": "s3://luma-results/videos"' in env["LUMA_RAY_API"]
    assert '"trial"' in env["LUMA_RAY_API"]
    config = serve_config(runtime)
    assert config["proxy_location"] == "EveryNode"
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}


def test_a_config_without_data_dir_uses_the_building_node_s_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed file leaves data_dir out: built on a node whose default is the data
    directory `up` used, it is the same system."""
    runtime = s3_runtime(str(tmp_path))
    config = through_yaml(serve_config(runtime, data_dir_from_node=True))
    assert all("data_dir" not in app["args"] for app in config["applications"])
    monkeypatch.setenv("LUMA_RAY_HOME", str(tmp_path))
    assert deployed_apps(config) == up_apps(runtime)
    monkeypatch.setenv("LUMA_RAY_HOME", str(tmp_path / "elsewhere"))
    assert deployed_apps(config) != up_apps(runtime)


def test_luma_apps_of_up_are_the_config_s_apps(tmp_path: Path) -> None:
    from luma_ray.serving_cli.cluster import luma_apps

    runtime = s3_runtime(str(tmp_path))
    names = [app["name"] for app in serve_config(runtime)["applications"]]
    assert luma_apps(runtime) == names == [app.name for app in serve_apps(runtime)]
    assert names[-1] == "luma-api"
    assert "luma-api" not in luma_apps(runtime.model_copy(update={"http_host": None}))


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_the_committed_config_is_what_its_command_writes_today() -> None:
    text = COMMITTED.read_text()
    lines = [line for line in text.splitlines() if line.startswith("#   luma-ray serve-config")]
    assert len(lines) == 1, "deployments/luma.yaml names the command that wrote it"
    argv = shlex.split(lines[0].removeprefix("#   luma-ray serve-config"))
    assert render(parse(["serve-config", *argv]), argv) == text, (
        f"deployments/luma.yaml is out of date: run {lines[0].removeprefix('#   ')}"
    )


def test_the_committed_config_is_a_valid_serve_config_of_up_s_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load(COMMITTED.read_text())
    monkeypatch.setenv("LUMA_RAY_HOME", str(tmp_path))
    default_up = runtime_of(parse(["up", "--data-dir", str(tmp_path)]))
    assert deployed_apps(config) == up_apps(default_up)
    pool = next(a for a in config["applications"] if a["name"] == "luma-tiny-workers")
    assert "cluster" not in pool["args"]["pool"]  # the node's luma.io/cluster label decides


def test_serve_config_takes_up_s_options() -> None:
    argv = [
        "serve-config",
        "--data-dir",
        "/srv/luma",
        "--store",
        "s3://luma-results/v",
        "--s3-endpoint-url",
        ENDPOINT,
        "--ingress-replicas",
        "2",
        "--ingress-label",
        "luma.io/role=ingress",
        "--proxy-location",
        "EveryNode",
        "--host",
        "0.0.0.0",
    ]
    config = yaml.safe_load(render(parse(argv), argv[1:]))
    assert config["proxy_location"] == "EveryNode"
    api = config["applications"][-1]["args"]
    assert api["data_dir"] == "/srv/luma" and api["s3_endpoint_url"] == ENDPOINT
    assert api["replicas"] == 2 and api["node_labels"] == {"luma.io/role": "ingress"}
    assert config["applications"][0]["args"]["store_uri"] == "s3://luma-results/v"


def test_a_bad_ingress_label_option_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        runtime_of(parse(["up", "--ingress-label", "luma.io/role"]))


@pytest.mark.parametrize(
    "import_path,args,field",
    [
        ("luma_ray.launch:build_pool", {"pool": {"replicas": "many"}}, "pool.replicas"),
        ("luma_ray.launch:build_pool", {"pool": {}, "replica": 2}, "replica"),
        ("luma_ray.launch:build_pool", {}, "pool"),
        ("luma_ray.launch:build_pool", {"pool": {"accelerator": "tpu"}}, "pool.accelerator"),
        ("luma_ray.launch:build_pool", {"pool": {}, "s3_endpoint_url": "ftp://x"}, "endpoint"),
        ("luma_ray.launch:build_pool", {"pool": {"accelerator_type": "H100"}}, "nvidia or amd"),
        ("luma_ray.api.ingress:build_api", {"replicas": 0}, "replicas"),
        ("luma_ray.api.ingress:build_api", {"asset_urls": "s3_presigned"}, "s3_presigned"),
    ],
)
def test_bad_builder_args_are_a_validation_error_naming_the_field(
    import_path: str, args: dict[str, Any], field: str
) -> None:
    """What Serve shows for a bad `args` block: pydantic's message, raised before our
    builder runs (so never a traceback of ours)."""
    with pytest.raises(ValidationError) as err:
        call_user_app_builder_with_args_if_necessary(import_attr(import_path), args)
    assert field in str(err.value)


def test_the_builders_declare_their_args_model_for_serve() -> None:
    """Serve converts `args` only if the annotation is a class (not a postponed string)."""
    import inspect

    from luma_ray.api.ingress import build_api
    from luma_ray.config.apps import ApiAppArgs

    assert inspect.signature(build_pool).parameters["args"].annotation is PoolAppArgs
    assert inspect.signature(build_api).parameters["args"].annotation is ApiAppArgs
