"""Per-job output: one row per job, first start and end, empty for rejected jobs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from luma_ray.cli import main
from luma_ray.config import TierConfig
from luma_ray.errors import TraceError
from luma_ray.scheduler.policies import make_policy
from luma_ray.sim.jobs_out import JOBS_HEADER, write_jobs
from luma_ray.sim.simulate import simulate
from luma_ray.sim.traces.reader import Trace


def trace_of(rows: list[tuple[float, str, str, float]]) -> Trace:
    return Trace(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        ["m"] * len(rows),
        [r[3] for r in rows],
    )


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_defaults_end_is_start_plus_service_and_no_preemptions(tmp_path: Path) -> None:
    trace = trace_of([(0.0, "a", "free", 10.0), (1.5, "b,c", "api", 2.25)])
    assert write_jobs(tmp_path / "j.csv", trace, [0.0, math.nan]) == 2
    assert (tmp_path / "j.csv").read_text().splitlines()[0] == JOBS_HEADER
    first, rejected = read(tmp_path / "j.csv")
    assert first == {
        "arrival_s": "0.000",
        "tenant": "a",
        "tier": "free",
        "model": "m",
        "service_s": "10.000",
        "start_s": "0.000",
        "end_s": "10.000",
        "preemptions": "0",
    }
    assert rejected["tenant"] == "b,c"  # quoted, so a comma in a tenant id survives
    assert rejected["start_s"] == rejected["end_s"] == ""
    assert not list(tmp_path.glob("*.tmp"))


def test_a_preemptive_replay_passes_its_own_ends_and_counts(tmp_path: Path) -> None:
    trace = trace_of([(0.0, "a", "free", 10.0)])
    write_jobs(tmp_path / "j.csv", trace, [1.0], end_s=[31.0], preemptions=[2])
    (row,) = read(tmp_path / "j.csv")
    assert (row["start_s"], row["end_s"], row["preemptions"]) == ("1.000", "31.000", "2")


def test_lengths_must_match_the_trace(tmp_path: Path) -> None:
    trace = trace_of([(0.0, "a", "free", 10.0)])
    with pytest.raises(TraceError, match="one per job"):
        write_jobs(tmp_path / "j.csv", trace, [0.0, 1.0])
    with pytest.raises(TraceError, match="one per job"):
        write_jobs(tmp_path / "j.csv", trace, [0.0], preemptions=[0, 0])
    with pytest.raises(TraceError, match="cannot write"):
        write_jobs(tmp_path / "missing" / "j.csv", trace, [0.0])


def test_simulate_writes_waits_that_match_its_summary(tmp_path: Path) -> None:
    # One slot: strict serves the api job first (wait 80), then the second free job (wait 140).
    trace = trace_of(
        [(0.0, "f1", "free", 100.0), (10.0, "f2", "free", 50.0), (20.0, "a1", "api", 50.0)]
    )
    result = simulate(trace, [(0.0, 1)], make_policy("strict"), jobs_out=tmp_path / "j.csv")
    rows = read(tmp_path / "j.csv")
    assert [(r["tenant"], r["start_s"], r["end_s"]) for r in rows] == [
        ("f1", "0.000", "100.000"),
        ("f2", "150.000", "200.000"),
        ("a1", "100.000", "150.000"),
    ]
    waits = [float(r["start_s"]) - float(r["arrival_s"]) for r in rows]
    assert max(waits) == result["overall"]["wait_max_s"]


def test_rejected_jobs_have_empty_times(tmp_path: Path) -> None:
    # free sheds once its queued head has waited more than 1.5 x its 10 s SLO (15 s).
    tiers = [TierConfig(name="free", max_wait_s=10.0, weight=1, shed_ratio=1.5)]
    trace = trace_of([(0.0, "a", "free", 100.0), (1.0, "b", "free", 5.0), (20.0, "c", "free", 5)])
    result = simulate(trace, [(0.0, 1)], make_policy("fifo"), tiers, jobs_out=tmp_path / "j.csv")
    assert result["overall"]["rejected"] == 1
    assert [r["start_s"] for r in read(tmp_path / "j.csv")] == ["0.000", "100.000", ""]


def test_cli_jobs_out(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.csv").write_text(
        "arrival_s,tenant,tier,model,service_s\n0,a,free,m,100\n10,b,api,m,50\n"
    )
    (tmp_path / "c.csv").write_text("time_s,slots\n0,1\n")
    args = ["simulate", "--trace", str(tmp_path / "t.csv"), "--capacity", str(tmp_path / "c.csv")]
    assert main([*args, "--jobs-out", str(tmp_path / "jobs.csv")]) == 0
    assert [r["start_s"] for r in read(tmp_path / "jobs.csv")] == ["0.000", "100.000"]
    capsys.readouterr()
    assert main([*args, "--jobs-out", str(tmp_path / "no" / "jobs.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the jobs file" in err and err.count("\n") == 1
