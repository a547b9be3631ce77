"""Smoke test of benchmarks/policy_sweep.py's functions on two small scenario days."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from luma_ray.scheduler.policies import DEFAULT_POLICY
from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def sweep_module():
    return load_script("benchmarks/policy_sweep.py")


def test_two_small_scenarios_end_to_end(sweep_module, tmp_path: Path) -> None:
    m = sweep_module
    tasks = m.trace_tasks(tmp_path, count=2, seed=77, scale=0.02, launch_seeds=(), gentd26=None)
    assert [t[2]["seed"] for t in tasks] == [77, 78]
    traces = [m._prepare(t) for t in tasks]
    assert [label for label, _ in traces] == ["scenario-77", "scenario-78"]
    trace_file = Path(traces[0][1]) / "trace.csv"
    written_at = trace_file.stat().st_mtime_ns
    assert m._prepare(tasks[0]) == traces[0] and trace_file.stat().st_mtime_ns == written_at
    results = [m.run_one((label, folder, name)) for label, folder in traces for name in m.POLICIES]
    assert {r["policy"] for r in results} == {DEFAULT_POLICY, "strict", "pct_slo"}
    rows = m.compare(results)
    assert [r["trace"] for r in rows] == ["scenario-77", "scenario-78"]
    for row in rows:
        assert row["attainment_ratio"] == pytest.approx(
            row["default_attainment"] / row["strict_attainment"]
        )
        assert row["pass"] == (row["attainment_ratio"] >= 0.9 and row["tail_ratio"] <= 1.1)
        assert row["scenario"]["capacity_kind"]
    worst = m.worst(rows)
    assert worst["attainment_ratio"] == min(r["attainment_ratio"] for r in rows)
    assert worst["tail_ratio"] == max(r["tail_ratio"] for r in rows)
    text = m.render(rows, "header")
    assert text.count("| scenario-7") == 2 and "Worst tail ratio" in text
    assert text.rstrip().endswith("PASS" if worst["pass"] else "FAIL")


def test_ratio_and_worst_verdicts(sweep_module) -> None:
    m = sweep_module
    assert m._ratio(0.0, 0.0) == 1.0 and m._ratio(1.0, 0.0) == math.inf
    rows = [
        {"trace": "a", "attainment_ratio": 0.95, "tail_ratio": 1.05},
        {"trace": "b", "attainment_ratio": 0.85, "tail_ratio": 1.2},
    ]
    worst = m.worst(rows)
    assert (worst["attainment_trace"], worst["tail_trace"], worst["pass"]) == ("b", "b", False)
    assert m.worst(rows[:1])["pass"]
