"""A flood on the GenTD26 replay: one free tenant at 10x the free tier's volume, no caps.

The replay is the policy table's (speedup 50, 25 slots), the flood :func:`add_flood`'s. Fair
share must keep api whole (attainment >= 0.98) and leave the other free tenants at least 0.8x
the attainment they get without the flood; without fair share (first come, first served
inside the tier) the flood takes the free tier from them. The default passes through flood
containment (luma_ray/scheduler/shares.py): the flood's oldest jobs are the free tier's tail,
and without containment they went ahead of the other tenants' savable jobs and, on the record
band's share, of api's (api 0.951, the others 0.36x).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_ray.config import default_tiers
from luma_ray.scheduler.policies import DEFAULT_POLICY, make_policy
from luma_ray.scheduler.tiers import tier_specs
from luma_ray.sim.simulate import _replay
from luma_ray.sim.traces import write_gentd26
from luma_ray.sim.traces.flood import add_flood
from luma_ray.sim.traces.flood import attainment as flood_attainment
from luma_ray.sim.traces.reader import Trace, read_capacity, read_trace

SPECS = tier_specs(default_tiers())


@pytest.fixture(scope="module")
def gentd26(tmp_path_factory) -> tuple[Trace, list[tuple[float, int]]]:
    folder = tmp_path_factory.mktemp("gentd26")
    write_gentd26(folder, speedup=50.0, slots=25)
    trace = read_trace(Path(folder) / "trace.csv", list(SPECS))
    return trace, read_capacity(Path(folder) / "capacity.csv")


def attainment(trace: Trace, start: list[float], tier: str, skip_tenant: str = "") -> float:
    return flood_attainment(trace, start, tier, SPECS[tier].max_wait_s, skip_tenant)


def flood_figures(gentd26, name: str, params: dict, fair_share: bool) -> dict[str, float]:
    trace, capacity = gentd26
    flooded = add_flood(trace, tier="free", factor=10.0, tenant="flood", seed=0)
    base = _replay(trace, capacity, make_policy(name, params), SPECS, fair_share)
    flood = _replay(flooded, capacity, make_policy(name, params), SPECS, fair_share)
    return {
        "api": attainment(flooded, flood, "api"),
        "others": attainment(flooded, flood, "free", skip_tenant="flood"),
        "others_before": attainment(trace, base, "free"),
    }


def test_the_flood_is_ten_times_the_free_tier(gentd26) -> None:
    trace, _ = gentd26
    flooded = add_flood(trace, factor=10.0)
    free = sum(t == "free" for t in trace.tier)
    assert flooded.tenant.count("flood") == 10 * free
    assert sorted(flooded.arrival_s) == flooded.arrival_s
    assert add_flood(trace, factor=10.0).arrival_s == flooded.arrival_s  # seeded


@pytest.mark.parametrize("name,params", [(DEFAULT_POLICY, {}), ("slo_guard", {"guard_share": 0.1})])
def test_fair_share_contains_a_flood(gentd26, name, params) -> None:
    got = flood_figures(gentd26, name, params, fair_share=True)
    assert got["api"] >= 0.98, got
    assert got["others"] >= 0.8 * got["others_before"], got


def test_without_fair_share_the_flood_takes_the_tier(gentd26) -> None:
    got = flood_figures(gentd26, "slo_guard", {"guard_share": 0.1}, fair_share=False)
    assert got["others"] < 0.3 * got["others_before"], got
