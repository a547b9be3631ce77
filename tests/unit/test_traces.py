"""Trace generators: file format, determinism, the launch-day story, the GenTD26 mapping."""

from __future__ import annotations

import ast
import csv
import hashlib
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from luma_ray.errors import TraceError
from luma_ray.sim.traces import TraceSummary, write_gentd26, write_launch_day
from luma_ray.sim.traces import gentd26 as gentd26_module
from luma_ray.sim.traces.launch_day import GPU_SCHEDULE, HOUR_S

TIERS = ("api", "enterprise", "unlimited", "light", "free")
SHARES = (0.04, 0.04, 0.12, 0.25, 0.55)
TRACE_HEADER = "arrival_s,tenant,tier,model,service_s"
CAPACITY_HEADER = "time_s,slots"
NUMBER = re.compile(r"^\d+(\.\d{1,3})?$")  # non-negative, at most 3 decimals
SOURCE = Path(gentd26_module.__file__).parent / "data" / "gentd26_requests.csv"


def read_trace(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def read_capacity(path: Path) -> list[tuple[float, int]]:
    lines = path.read_text().splitlines()
    assert lines[0] == CAPACITY_HEADER
    steps = []
    for line in lines[1:]:
        time_s, slots = line.split(",")
        assert NUMBER.match(time_s) and re.match(r"^\d+$", slots), line
        steps.append((float(time_s), int(slots)))
    return steps


def offered_load(rows: list[list[str]], capacity: list[tuple[float, int]], lo: float, hi: float):
    """Service seconds arriving in [lo, hi) over slot-seconds available in [lo, hi)."""
    work = sum(float(r[4]) for r in rows if lo <= float(r[0]) < hi)
    edges = [t for t, _ in capacity[1:]] + [math.inf]
    avail = sum(
        max(0.0, min(end, hi) - max(start, lo)) * slots
        for (start, slots), end in zip(capacity, edges, strict=True)
    )
    return work / avail


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("launch") / "new" / "dir"  # created by the generator
    summary = write_launch_day(out, scale=0.05, seed=3)
    header, rows = read_trace(out / "trace.csv")
    return summary, header, rows, read_capacity(out / "capacity.csv")


# ---- launch-day: format ------------------------------------------------------------------


def test_launch_day_files_have_exact_headers_and_valid_rows(launch) -> None:
    summary, header, rows, capacity = launch
    assert isinstance(summary, TraceSummary)
    assert ",".join(header) == TRACE_HEADER
    assert summary.trace_path.read_text().startswith(TRACE_HEADER + "\n")
    assert summary.capacity_path.read_text().startswith(CAPACITY_HEADER + "\n")
    arrivals = [float(r[0]) for r in rows]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0 and arrivals[-1] <= 48 * HOUR_S
    for row in rows[:: max(1, len(rows) // 5000)]:
        assert len(row) == 5
        assert NUMBER.match(row[0]) and NUMBER.match(row[4]), row
        assert float(row[4]) > 0
        assert row[1].startswith(row[2] + "-"), row  # tenant belongs to its tier's pool
    assert {r[2] for r in rows} == set(TIERS)
    assert {r[3] for r in rows} == {"video-std", "video-hd"}
    assert summary.jobs == len(rows)
    assert summary.duration_s == pytest.approx(arrivals[-1])


def test_launch_day_job_count_scales(launch) -> None:
    summary = launch[0]
    assert abs(summary.jobs - 85_000) < 2_000  # 1.7M * 0.05, Poisson noise ~300


def test_launch_day_tier_mix_within_tolerance(launch) -> None:
    rows = launch[2]
    counts = Counter(r[2] for r in rows)
    for tier, share in zip(TIERS, SHARES, strict=True):
        assert abs(counts[tier] / len(rows) - share) < 0.01, (tier, counts[tier] / len(rows))


def test_launch_day_service_times_match_documented_models(launch) -> None:
    rows = launch[2]
    by_model = defaultdict(list)
    for r in rows:
        by_model[r[3]].append(float(r[4]))
    assert len(by_model["video-hd"]) / len(rows) == pytest.approx(0.25, abs=0.01)
    assert np.median(by_model["video-std"]) == pytest.approx(50, rel=0.05)
    assert np.median(by_model["video-hd"]) == pytest.approx(150, rel=0.05)
    sigma = np.std(np.log(by_model["video-std"]))
    assert sigma == pytest.approx(0.5, abs=0.03)


def test_launch_day_has_heavy_tenants(launch) -> None:
    free = Counter(r[1] for r in launch[2] if r[2] == "free")
    top = sum(n for _, n in free.most_common(max(1, len(free) // 100)))
    assert top / sum(free.values()) > 0.15  # a few tenants are heavy (uniform would be ~1 %)
    assert free.most_common(1)[0][0] == "free-00000"  # rank 0 is the heaviest


def test_launch_day_capacity_follows_gpu_schedule(launch, tmp_path: Path) -> None:
    assert GPU_SCHEDULE == ((0.0, 500), (4.0, 5_000), (10.0, 9_000))  # the documented fleet
    # slots = round(GPUs / 8 * scale): 3.125, 31.25, 56.25 at scale 0.05
    assert launch[3] == [(0.0, 3), (4 * HOUR_S, 31), (10 * HOUR_S, 56)]
    summary = write_launch_day(tmp_path, scale=0.001, seed=0)  # tiny: every step at least 1
    assert read_capacity(summary.capacity_path) == [(0.0, 1), (14400.0, 1), (36000.0, 1)]


def test_launch_day_load_tells_the_launch_story(launch) -> None:
    summary, _, rows, capacity = launch
    work_s = sum(float(r[4]) for r in rows)
    slot_s = 3 * 4 * HOUR_S + 31 * 6 * HOUR_S + 56 * (summary.duration_s - 10 * HOUR_S)
    assert summary.offered_load == pytest.approx(work_s / slot_s, rel=1e-9)
    # Overloaded for hours, yet capacity catches up within the two days.
    assert 0.75 <= summary.offered_load <= 0.95
    assert offered_load(rows, capacity, 4 * HOUR_S, 10 * HOUR_S) > 1.3  # still over at 5,000
    launch_hours = offered_load(rows, capacity, 0, 4 * HOUR_S)
    assert 12 < offered_load(rows, capacity, 0, 0.5 * HOUR_S) < 30  # ~16-20x at launch
    assert launch_hours > 10
    assert offered_load(rows, capacity, 24 * HOUR_S, 29 * HOUR_S) > 1.2  # second surge
    assert offered_load(rows, capacity, 40 * HOUR_S, 47 * HOUR_S) < 0.7  # night


def test_launch_day_is_deterministic_per_seed(tmp_path: Path) -> None:
    a = write_launch_day(tmp_path / "a", scale=0.01, seed=7)
    b = write_launch_day(tmp_path / "b", scale=0.01, seed=7)
    c = write_launch_day(tmp_path / "c", scale=0.01, seed=8)
    assert a.trace_path.read_bytes() == b.trace_path.read_bytes()
    assert a.capacity_path.read_bytes() == b.capacity_path.read_bytes()
    assert a.trace_path.read_bytes() != c.trace_path.read_bytes()
    assert not list((tmp_path / "a").glob("*.tmp"))


@pytest.mark.parametrize("scale", [0, -1.0, 100.5, float("nan"), float("inf")])
def test_launch_day_rejects_bad_scale(tmp_path: Path, scale: float) -> None:
    with pytest.raises(TraceError, match="scale"):
        write_launch_day(tmp_path, scale=scale)
    assert not (tmp_path / "trace.csv").exists()


# ---- gentd26 -----------------------------------------------------------------------------


def valid_source_rows(path: Path) -> int:
    with path.open(newline="") as f:
        stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        return sum(1 for row in csv.DictReader(f) if stamp.match(row["gmt_create"] or ""))


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gentd26")
    summary = write_gentd26(out, speedup=50, slots=30)
    header, rows = read_trace(summary.trace_path)
    return summary, header, rows


def test_gentd26_replays_every_valid_source_row(replay) -> None:
    summary, header, rows = replay
    assert ",".join(header) == TRACE_HEADER
    assert summary.jobs == len(rows) == valid_source_rows(SOURCE) == 26_823
    assert summary.skipped_rows == 0
    arrivals = [float(r[0]) for r in rows]
    assert arrivals == sorted(arrivals) and arrivals[0] == 0.0
    assert all(float(r[4]) > 0 and NUMBER.match(r[0]) and NUMBER.match(r[4]) for r in rows)
    assert {r[2] for r in rows} <= set(TIERS)
    assert summary.capacity_path.read_text() == "time_s,slots\n0,30\n"
    assert 23 * 86_400 / 50 * 0.95 < summary.duration_s < 24 * 86_400 / 50


def test_gentd26_tier_is_stable_per_tenant(replay, tmp_path: Path) -> None:
    rows = replay[2]
    tiers: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        tiers[r[1]].add(r[2])
    assert all(len(t) == 1 for t in tiers.values())
    again = write_gentd26(tmp_path, speedup=7, slots=3)
    for r in read_trace(again.trace_path)[1]:
        assert tiers[r[1]] == {r[2]}
    # The tier comes from SHA-256 of the tenant id, mapped onto the 4/4/12/25/55 % mix.
    edges = np.cumsum(SHARES) * 10_000
    for tenant, (tier,) in list(tiers.items())[:200]:
        bucket = int.from_bytes(hashlib.sha256(tenant.encode()).digest()[:8], "big") % 10_000
        assert tier == TIERS[int(np.searchsorted(edges, bucket, side="right"))]
    per_tenant = Counter(next(iter(t)) for t in tiers.values())
    for tier, share in zip(TIERS, SHARES, strict=True):
        assert abs(per_tenant[tier] / len(tiers) - share) < 0.03


def test_gentd26_speedup_compresses_time(tmp_path: Path) -> None:
    one = write_gentd26(tmp_path / "x1", speedup=1.0)
    two = write_gentd26(tmp_path / "x2", speedup=2.0)
    assert two.duration_s == pytest.approx(one.duration_s / 2, abs=0.001)
    rows1, rows2 = read_trace(one.trace_path)[1], read_trace(two.trace_path)[1]
    assert [float(r[0]) / 2 for r in rows1[:500]] == pytest.approx(
        [float(r[0]) for r in rows2[:500]], abs=0.001
    )
    assert [r[1:] for r in rows1] == [r[1:] for r in rows2]  # only arrivals change
    assert two.offered_load == pytest.approx(one.offered_load * 2, rel=1e-4)
    again = write_gentd26(tmp_path / "x1b", speedup=1.0)
    assert again.trace_path.read_bytes() == one.trace_path.read_bytes()


def test_gentd26_maps_odd_rows(tmp_path: Path) -> None:
    source = tmp_path / "src.csv"
    source.write_text(
        "gmt_create,exec_time_seconds,groupId,checkpoint_model_version_id,extra\n"
        "2024-01-01 00:01:00,10,G1,M1,x\n"
        "not a date,10,G1,M1,x\n"
        "2024-01-01 00:00:00,,G2,,x\n"
        "2024-01-01 00:00:30,-3,G1,M2,x\n"
        ",5,G3,M1,x\n"
        "2024-01-01 00:01:00,2.5,G3,M1,x\n"
    )
    summary = write_gentd26(tmp_path / "out", speedup=10, slots=2, source=source)
    assert summary.jobs == 4 and summary.skipped_rows == 2
    rows = read_trace(summary.trace_path)[1]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("0.000", "G2", "unknown", "1.000"),  # missing exec time → 1 s, empty model → unknown
        ("3.000", "G1", "M2", "1.000"),  # non-positive exec time → 1 s
        ("6.000", "G1", "M1", "10.000"),  # ties keep source order (stable sort)
        ("6.000", "G3", "M1", "2.500"),
    ]
    assert summary.offered_load == pytest.approx(14.5 / (2 * 6.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speedup": 0}, "speedup"),
        ({"speedup": -2.0}, "speedup"),
        ({"slots": 0}, "slots"),
        ({"slots": 2.5}, "slots"),
        ({"source": "/nonexistent/gentd26.csv"}, "not found"),
    ],
)
def test_gentd26_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(TraceError, match=match) as err:
        write_gentd26(tmp_path, **kwargs)
    assert "\n" not in str(err.value)


def test_gentd26_rejects_source_without_needed_column(tmp_path: Path) -> None:
    source = tmp_path / "src.csv"
    source.write_text("gmt_create,groupId,checkpoint_model_version_id\n2024-01-01 00:00:00,G,M\n")
    with pytest.raises(TraceError, match="exec_time_seconds"):
        write_gentd26(tmp_path / "out", source=source)


# ---- purity ------------------------------------------------------------------------------


def test_trace_modules_import_no_heavy_or_clock_modules() -> None:
    forbidden = {"ray", "torch", "boto3", "fastapi", "time"}
    package = Path(gentd26_module.__file__).parent
    for path in package.glob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, (path.name, names)
        assert ".now(" not in source and "today(" not in source, path.name
