"""Config loading: defaults, YAML files, and one-line errors that name the field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.config import (
    PoolConfig,
    RuntimeConfig,
    load_config,
    load_pools,
    load_tiers,
    parse_config,
)
from luma_ray.errors import ConfigError
from luma_ray.scheduler.policies import DEFAULT_POLICY


def test_defaults_match_the_design() -> None:
    cfg = parse_config({})
    assert [(t.name, t.max_wait_s, t.weight) for t in cfg.tiers] == [
        ("api", 120, 5),
        ("enterprise", 300, 4),
        ("unlimited", 900, 3),
        ("light", 1800, 2),
        ("free", 7200, 1),
    ]
    assert cfg.policy.name == DEFAULT_POLICY == "slo_shadow"
    assert cfg.fair_share is True and cfg.tenant_weights == {}


def test_every_tier_caps_each_tenants_queued_jobs_out_of_the_box() -> None:
    caps = {name: lim.max_queued for name, lim in parse_config({}).tenant_limits.items()}
    assert caps == {"api": 5000, "enterprise": 5000, "unlimited": 5000, "light": 2000, "free": 500}
    assert all(lim.max_leased is None for lim in parse_config({}).tenant_limits.values())
    own = parse_config({"tiers": [{"name": "gold", "max_wait_s": 60}]})
    assert own.tenant_limits["gold"].max_queued == 2000  # a tier the defaults do not name


def test_a_config_raises_or_removes_a_default_cap_field_by_field() -> None:
    cfg = parse_config(
        {
            "tenant_limits": {
                "api": {"max_queued": 100_000},
                "light": {"max_queued": None},
                "free": {"max_leased": 4},
            }
        }
    )
    assert cfg.tenant_limits["api"].max_queued == 100_000
    assert cfg.tenant_limits["light"].max_queued is None  # removed
    assert (cfg.tenant_limits["free"].max_queued, cfg.tenant_limits["free"].max_leased) == (500, 4)
    assert cfg.tenant_limits["enterprise"].max_queued == 5000  # not named: keeps its default
    assert parse_config(cfg.model_dump()) == cfg  # the actor gets the same config back
    with pytest.raises(ConfigError, match="unknown tier"):
        parse_config({"tiers": [{"name": "gold", "max_wait_s": 60}], "tenant_limits": {"free": {}}})


def test_full_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "luma.yaml"
    path.write_text(
        "policy: {name: pct_slo}\n"
        "clusters: {onprem: {dispatch_limit: 16}}\n"
        "default_dispatch_limit: 64\n"
        "tenant_limits: {free: {max_queued: 10, max_leased: 2}}\n"
        "fair_share: false\n"
        "tenant_weights: {acme: 2.5}\n"
        "tiers:\n"
        "  - {name: api, max_wait_s: 60, weight: 5}\n"
        "  - {name: free, max_wait_s: 3600, weight: 1, shed_ratio: 4}\n"
    )
    cfg = load_config(path)
    assert cfg.policy.name == "pct_slo"
    assert cfg.clusters["onprem"].dispatch_limit == 16
    assert cfg.tenant_limits["free"].max_leased == 2
    assert cfg.tier("free").shed_ratio == 4
    assert cfg.fair_share is False and cfg.tenant_weights == {"acme": 2.5}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("tiers: [{name: api, max_wait_s: -5}]", "field 'tiers.0.max_wait_s'"),
        ("tiers: [{name: api}]", "field 'tiers.0.max_wait_s': required field is missing"),
        ("polcy: {name: fifo}", "field 'polcy': unknown field"),
        ("clusters: {a: {dispatch_limit: -1}}", "field 'clusters.a.dispatch_limit'"),
        ("tenant_limits: {gold: {max_queued: 3}}", "unknown tier(s) gold"),
        ("tiers: [{name: api, max_wait_s: 1, shed_ratio: 3}]", "'api' is never shed"),
        (
            "tiers: [{name: a, max_wait_s: 1}, {name: a, max_wait_s: 2}]",
            "tier names must be unique",
        ),
        ("- just\n- a list", "top level must be a mapping"),
        ("tiers: [unclosed", "is not valid YAML"),
        ("tenant_weights: {acme: 0}", "field 'tenant_weights': Value error, weight of acme"),
        ("tenant_weights: {acme: -1, b: .inf}", "weight of acme, b must be a number > 0"),
        ("fair_share: sometimes", "field 'fair_share'"),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and str(path) in message


def test_missing_file_and_unsafe_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    evil = tmp_path / "evil.yaml"
    evil.write_text("policy: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)


def test_tiers_file_as_list(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text("- {name: gold, max_wait_s: 30, weight: 9}\n- {name: tin, max_wait_s: 600}\n")
    assert [t.name for t in load_tiers(path)] == ["gold", "tin"]


def test_pools_file_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "pools.yaml"
    good.write_text(
        "pools:\n"
        "  - {model: my-video, name: h100, accelerators: 8, accelerator: nvidia,\n"
        "     node_labels: {luma.io/accelerator: nvidia-h100}}\n"
        "  - {model: my-video, name: mi300x, accelerators: 8, accelerator: amd}\n"
    )
    pools = load_pools(good)
    assert [(p.app_name, p.accelerators, p.accelerator) for p in pools] == [
        ("h100", 8, "nvidia"),
        ("mi300x", 8, "amd"),
    ]
    assert pools[0].node_labels == {"luma.io/accelerator": "nvidia-h100"}
    assert pools[0].cluster is None  # taken from each node's luma.io/cluster label
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {model: m, accelerator: tpu}\n")
    with pytest.raises(ConfigError, match="accelerator"):
        load_pools(bad)
    with pytest.raises(ValueError, match="share a name"):
        RuntimeConfig(data_dir=str(tmp_path), pools=[PoolConfig(model="m"), PoolConfig(model="m")])


def test_webhook_defaults_follow_standard_webhooks(tmp_path: Path) -> None:
    hooks = RuntimeConfig(data_dir=str(tmp_path)).webhooks
    assert hooks.retry_schedule_s == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert 27 * 3600 < sum(hooks.retry_schedule_s) < 28 * 3600  # about a day of retries
    assert (hooks.attempt_timeout_s, hooks.max_in_flight_per_tenant) == (10.0, 2)
    custom = RuntimeConfig(data_dir=str(tmp_path), webhooks={"retry_schedule_s": [1, 60]})
    assert custom.webhooks.retry_schedule_s == (1.0, 60.0)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"retry_schedule_s": [5, -1]}, "retry_schedule_s.1"),
        ({"retry_schedule_s": [8 * 86400]}, "retry_schedule_s.0"),
        ({"retry_schedule_s": [6 * 86400] * 6}, "at most 30 days"),
        ({"retry_schedule_s": [1] * 31}, "retry_schedule_s"),
        ({"attempt_timeout_s": 0}, "attempt_timeout_s"),
        ({"attempt_timeout_s": 3600}, "attempt_timeout_s"),
        ({"max_pending_per_tenant": 0}, "max_pending_per_tenant"),
        ({"max_in_flight_per_tenant": 0}, "max_in_flight_per_tenant"),
        ({"delivery_threads": 0}, "delivery_threads"),
        ({"retries": 3}, "retries"),
    ],
)
def test_webhook_settings_are_bounded(
    tmp_path: Path, fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        RuntimeConfig(data_dir=str(tmp_path), webhooks=fields)


def test_the_default_pipeline_adds_small_cpu_stage_pools_for_luma_tiny(tmp_path) -> None:
    """docs/pipelines.md: luma-ray up on one machine starts the luma-tiny pool and one small
    CPU pool per stage of its default pipeline; the scheduler gets the pipelines."""
    from luma_ray.config import PoolConfig, RuntimeConfig

    runtime = RuntimeConfig(data_dir=str(tmp_path))
    assert runtime.pipelines == {"luma-tiny": ["generate", "qa", "caption", "thumbnail"]}
    pools = runtime.all_pools
    assert [(p.model, p.stage, p.app_name) for p in pools] == [
        ("luma-tiny", None, "luma-tiny-workers"),
        ("luma-tiny", "qa", "luma-tiny-qa-workers"),
        ("luma-tiny", "caption", "luma-tiny-caption-workers"),
        ("luma-tiny", "thumbnail", "luma-tiny-thumbnail-workers"),
    ]
    assert all(p.num_cpus == 0.25 and p.cluster == "stages" for p in pools[1:])
    assert runtime.scheduler_config.pipelines == runtime.pipelines
    assert runtime.scheduler.pipelines == {}  # the config as written stays as written
    # A declared stage pool replaces the default one; no pipelines: no stage pools.
    own = PoolConfig(model="luma-tiny", stage="qa", replicas=3)
    declared = RuntimeConfig(data_dir=str(tmp_path), pools=[PoolConfig(), own])
    assert [p.stage for p in declared.all_pools].count("qa") == 1
    assert RuntimeConfig(data_dir=str(tmp_path), pipelines={}).all_pools == [PoolConfig()]
    # A model without a pool here gets no stage pools either.
    other = RuntimeConfig(data_dir=str(tmp_path), pools=[PoolConfig(model="tiny-x")])
    assert [p.model for p in other.all_pools] == ["tiny-x"]
