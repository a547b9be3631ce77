"""Scenario days: deterministic per seed, inside the documented ranges, overloaded but sane."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from luma_ray.cli import main
from luma_ray.errors import TraceError
from luma_ray.sim.traces import scenarios as sc
from luma_ray.sim.traces.reader import read_capacity, read_trace

TIERS = ("api", "enterprise", "unlimited", "light", "free")
FILES = ("trace.csv", "capacity.csv", "scenario.json")


def within(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("family")
    sc.write_scenarios(out, count=6, seed=500, scale=0.05)
    return out


def test_same_seed_same_bytes_and_scenario_k_is_seed_plus_k(family: Path, tmp_path: Path) -> None:
    sc.write_scenarios(tmp_path, count=2, seed=503, scale=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenario-503", "scenario-504"]
    for name in ("scenario-503", "scenario-504"):
        for file in FILES:
            assert (tmp_path / name / file).read_bytes() == (family / name / file).read_bytes()
    other = tmp_path / "other"
    sc.write_scenarios(other, count=1, seed=504, scale=0.05)
    assert (other / "scenario-504" / "trace.csv").read_bytes() != (
        family / "scenario-503" / "trace.csv"
    ).read_bytes()


def test_drawn_parameters_stay_in_the_documented_ranges() -> None:
    specs = [sc.draw_spec(seed) for seed in range(300)]
    kinds = Counter(s.capacity_kind for s in specs)
    assert set(kinds) == set(sc.CAPACITY_KINDS) and min(kinds.values()) > 40
    floods = [s.flood for s in specs if s.flood]
    assert 0.4 < len(floods) / len(specs) < 0.6
    assert {f.tier for f in floods} == set(TIERS)
    for f in floods:
        assert within(f.factor, sc.FLOOD_FACTOR_RANGE)
        assert within(f.duration_h, sc.FLOOD_DURATION_RANGE_H)
        assert f.tenant.startswith(f.tier + "-") and int(f.tenant.split("-")[1]) < 20
    assert max(f.factor for f in floods) > 15 and min(f.factor for f in floods) < 3
    for s in specs:
        assert within(s.jobs, sc.JOBS_RANGE)
        assert within(len(s.surges), sc.SURGE_COUNT_RANGE)
        for surge in s.surges:
            assert within(surge.center_h, sc.SURGE_CENTER_RANGE_H)
            assert within(surge.height, sc.SURGE_HEIGHT_RANGE)
            assert within(surge.width_h, sc.SURGE_WIDTH_RANGE_H)
        assert within(s.load, sc.LOAD_RANGE) and within(s.zipf_exponent, sc.ZIPF_RANGE)
        assert within(s.diurnal_amplitude, sc.DIURNAL_AMPLITUDE_RANGE)
        assert sum(s.tier_shares) == pytest.approx(1.0, abs=1e-3)
        assert sum(m.share for m in s.models) == pytest.approx(1.0, abs=1e-3)
        for m in s.models:
            assert within(m.median_s, sc.MODELS[m.name][1])
        hours = [h for h, _ in s.capacity_shape]
        assert hours[0] == 0 and hours == sorted(hours)
        assert s.capacity_shape[-1][1] == 1.0 and all(0 < f <= 1 for _, f in s.capacity_shape)
    # Short image jobs and long 4K jobs both weigh in: mean service spans a wide range.
    means = [s.mean_service_s for s in specs]
    assert min(means) < 60 and max(means) > 250


def test_days_overload_yet_stay_servable(family: Path) -> None:
    for folder in sorted(family.iterdir()):
        written = json.loads((folder / "scenario.json").read_text())["written"]
        assert within(written["lower_bound_ratio_max"], sc.BOUND_RANGE), folder.name
        trace = read_trace(folder / "trace.csv", TIERS)
        capacity = read_capacity(folder / "capacity.csv")
        assert capacity == [tuple(step) for step in written["capacity"]]
        assert len(trace) == written["jobs"] and trace.arrival_s[-1] <= sc.DURATION_S
        # Peak demand over some 10-minute window is above what the slots can serve.
        arrival, service = np.array(trace.arrival_s), np.array(trace.service_s)
        work = np.bincount((arrival // 600).astype(int), weights=service)
        slots = np.array([[s for t, s in capacity if t <= w * 600][-1] for w in range(len(work))])
        assert (work / (slots * 600)).max() > 1.0, folder.name


def test_a_flood_sends_its_factor_times_the_tier_volume(tmp_path: Path) -> None:
    spec = next(
        s
        for s in (sc.draw_spec(seed, 0.2) for seed in range(100))
        if s.flood and s.flood.factor > 8 and s.flood.tier == "free"
    )
    sc.write_scenario(tmp_path, spec)
    trace = read_trace(tmp_path / "trace.csv", TIERS)
    f = spec.flood
    assert f is not None
    lo, hi = f.start_h * 3600, (f.start_h + f.duration_h) * 3600
    window = [k for k, a in enumerate(trace.arrival_s) if lo <= a < hi]
    mine = sum(trace.tenant[k] == f.tenant for k in window)
    others = sum(trace.tier[k] == f.tier and trace.tenant[k] != f.tenant for k in window)
    assert mine / others == pytest.approx(f.factor, rel=0.2)
    flood_jobs = json.loads((tmp_path / "scenario.json").read_text())["written"]["flood_jobs"]
    assert flood_jobs > 0.7 * mine


def test_calibration_moves_capacity_into_the_bound_range() -> None:
    spec = sc.draw_spec(2037, 0.05)
    arrival = np.arange(0.0, 3600.0, 1.0)
    service, slo = np.full(len(arrival), 60.0), np.full(len(arrival), 120.0)
    idle = dataclasses.replace(spec, full_slots=90, capacity_shape=((0.0, 1.0),))
    full, bound, steps = sc.calibrate(idle, arrival, service, slo)
    assert steps > 0 and full < 90 and within(bound, sc.BOUND_RANGE)
    swamped = dataclasses.replace(spec, full_slots=20, capacity_shape=((0.0, 1.0),))
    full, bound, steps = sc.calibrate(swamped, arrival, service, slo)
    assert steps > 0 and full > 20 and within(bound, sc.BOUND_RANGE)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--count", "0"], "count must be a whole number from 1 to 1000, got 0"),
        (["--count", "two"], "--count: 'two' is not a whole number"),
        (["--seed", "-3"], "seed must be a whole number >= 0, got -3"),
        (["--scale", "0"], "scale must be in (0, 10], got 0"),
        (["--scale", "big"], "--scale: 'big' is not a number"),
        (["--scale", "inf"], "scale must be a number in (0, 10]"),
    ],
)
def test_cli_bad_arguments_are_one_line(tmp_path: Path, capsys, args, expected) -> None:
    assert main(["trace", "scenarios", *args, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_cli_writes_the_family(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    args = ["trace", "scenarios", "--count", "2", "--seed", "9", "--scale", "0.02"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["scenario-9", "scenario-10"]
    assert all((out / name / f).exists() for name in ("scenario-9", "scenario-10") for f in FILES)
    (tmp_path / "file").write_text("")
    assert main(["trace", "scenarios", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_write_scenarios_checks_types() -> None:
    with pytest.raises(TraceError, match="count"):
        sc.write_scenarios("/nonexistent", count=True, seed=1)  # type: ignore[arg-type]
