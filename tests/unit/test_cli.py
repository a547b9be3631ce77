"""The command line: bad input ends in one line naming the row or field, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from luma_ray.cli import main

HEADER = "arrival_s,tenant,tier,model,service_s\n"


def write(tmp_path: Path, trace: str, capacity: str = "time_s,slots\n0,2\n") -> list[str]:
    (tmp_path / "t.csv").write_text(trace)
    (tmp_path / "c.csv").write_text(capacity)
    return ["simulate", "--trace", str(tmp_path / "t.csv"), "--capacity", str(tmp_path / "c.csv")]


@pytest.mark.parametrize(
    "trace,capacity,expected",
    [
        ("arrival_s,tenant,tier,service_s\n0,a,free,5\n", None, "row 1: missing column(s) model"),
        (HEADER + "0,a,free,m,5\n-1,a,free,m,5\n", None, "row 3: column arrival_s: -1 is negative"),
        (
            HEADER + "5,a,free,m,5\n1,a,free,m,5\n",
            None,
            "row 3: column arrival_s: 1 is before the previous row",
        ),
        (HEADER + "0,a,gold,m,5\n", None, "row 2: column tier: unknown tier 'gold'"),
        (HEADER + "0,a,free,m,zero\n", None, "row 2: column service_s: 'zero' is not a number"),
        (HEADER + "0,a,free,m,0\n", None, "row 2: column service_s: 0 must be greater than 0"),
        (HEADER + "0,a,free\n", None, "row 2: has 3 fields"),
        (HEADER + "0,a,free,m,5\n", "time_s,slots\n0,2\n-5,3\n", "row 3: column time_s: -5"),
        (HEADER + "0,a,free,m,5\n", "time_s,slots\n0,2.5\n", "row 2: column slots"),
        (HEADER + "0,a,free,m,5\n", "time,slots\n0,2\n", "missing column(s) time_s"),
        ("", None, "file is empty"),
    ],
)
def test_bad_trace_input_is_one_line(tmp_path, capsys, trace, capacity, expected) -> None:
    args = write(tmp_path, trace, capacity or "time_s,slots\n0,2\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_policy_params_and_tiers(tmp_path, capsys) -> None:
    args = write(tmp_path, HEADER + "0,a,free,m,5\n")
    assert main([*args, "--policy", "slo_guard", "--param", "r_kap=3"]) == 2
    assert "unknown parameter(s) r_kap" in capsys.readouterr().err
    assert main([*args, "--param", "guard_share=7"]) == 2
    assert "guard_share must be in [0, 1]" in capsys.readouterr().err
    (tmp_path / "tiers.yaml").write_text("- {name: free, max_wait_s: -1}\n")
    assert main([*args, "--tiers", str(tmp_path / "tiers.yaml")]) == 2
    assert "field 'tiers.0.max_wait_s'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*args, "--param", "novalue"])
    assert info.value.code == 2


def test_simulate_writes_the_result_json(tmp_path, capsys) -> None:
    trace = HEADER + "0,a,free,m,100\n10,b,api,m,50\n20,c,free,m,50\n"
    args = write(tmp_path, trace, "time_s,slots\n0,1\n")
    out = tmp_path / "r.json"
    assert main([*args, "--policy", "strict", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed["overall"] == saved["overall"]
    assert saved["policy"] == "strict" and saved["jobs"] == 3
    assert set(saved["tiers"]) == {"api", "free"}
    assert saved["tiers"]["api"]["wait_max_s"] == 90.0


def test_simulate_shares_a_tier_fairly_unless_told_not_to(tmp_path, capsys) -> None:
    # One slot; tenant a queues two long jobs before b's short one.
    trace = HEADER + "0,a,free,m,100\n1,a,free,m,100\n2,a,free,m,100\n3,b,free,m,10\n"
    args = write(tmp_path, trace, "time_s,slots\n0,1\n")
    assert main([*args, "--fair-share-lag-jobs", "0"]) == 0
    fair = json.loads(capsys.readouterr().out)
    assert main([*args, "--no-fair-share"]) == 0
    fifo = json.loads(capsys.readouterr().out)
    assert fair["fair_share"] is True and fifo["fair_share"] is False
    assert fair["tiers"]["free"]["wait_max_s"] == 208.0  # b goes at 200, after a's one job
    assert fifo["tiers"]["free"]["wait_max_s"] == 297.0  # b waits behind both of a's jobs
    assert main(args) == 0  # the default lag: a is within it, so its jobs go oldest first
    lagged = json.loads(capsys.readouterr().out)
    assert lagged["tiers"]["free"]["wait_max_s"] == 297.0
    with pytest.raises(SystemExit) as exited:
        main([*args, "--fair-share-lag-jobs", "-1"])
    assert exited.value.code == 2
    assert "must be a number >= 0" in capsys.readouterr().err


def test_console_script_runs_as_a_module(tmp_path) -> None:
    args = write(tmp_path, HEADER + "0,a,gold,m,5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "luma_ray.cli", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("luma-ray: error:") and "Traceback" not in proc.stderr


def test_trace_command_writes_files(tmp_path, capsys) -> None:
    assert (
        main(
            ["trace", "gentd26", "--speedup", "1000", "--slots", "4", "--out", str(tmp_path / "g")]
        )
        == 0
    )
    assert "wrote 26823 jobs" in capsys.readouterr().out
    assert (tmp_path / "g" / "trace.csv").read_text().startswith(HEADER)
    assert main(["trace", "launch-day", "--scale", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "scale" in capsys.readouterr().err


def test_a_trace_that_is_not_utf8_is_one_line_naming_row_and_byte(tmp_path, capsys) -> None:
    args = write(tmp_path, "")
    good = (HEADER + "0,a,free,m,5\n").encode()
    (tmp_path / "t.csv").write_bytes(good + "1,café,free,m,5\n".encode("latin-1"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    offset = len(good) + len("1,caf")
    assert f"{tmp_path / 't.csv'}: row 3: byte {offset}: not UTF-8" in err
    (tmp_path / "c.csv").write_bytes(b"time_s,sl\xffots\n0,2\n")  # in the header
    (tmp_path / "t.csv").write_bytes(good)
    assert main(args) == 2
    assert f"{tmp_path / 'c.csv'}: row 1: byte 9: not UTF-8" in capsys.readouterr().err


def test_a_spreadsheet_export_with_a_byte_order_mark_reads(tmp_path, capsys) -> None:
    args = write(tmp_path, "\ufeff" + HEADER + "0,a,free,m,5\n", "\ufefftime_s,slots\n0,1\n")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["jobs"] == 1


def test_gentd26_source_that_is_not_utf8_is_one_line(tmp_path, capsys) -> None:
    source = tmp_path / "src.csv"
    header = b"gmt_create,exec_time_seconds,groupId,checkpoint_model_version_id\n"
    source.write_bytes(header + b"2024-11-15 16:57:50,3.5,caf\xe9,m1\n")
    assert main(["trace", "gentd26", "--source", str(source), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    offset = len(header) + len("2024-11-15 16:57:50,3.5,caf")
    assert f"{source}: row 2: byte {offset}: not UTF-8" in err and "Traceback" not in err


def test_version_prints_the_package_version(capsys) -> None:
    from luma_ray import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"luma-ray {__version__}"
