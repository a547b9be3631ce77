"""``luma-ray up --detach`` and ``down`` without Ray: the auth token a fresh machine lacks, the
record of what ``up`` started, and ``down`` stopping that only (real processes and sockets on
127.0.0.1; no Ray cluster is started)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from luma_ray.cli import main
from luma_ray.errors import ConfigError, LumaError
from luma_ray.serving_cli.auth_token import default_token_path, ensure_auth_token
from luma_ray.serving_cli.head import (
    ADDRESS_FILE,
    head_command,
    head_env,
    is_head,
    join_address,
    ray_temp_dir,
    reachable,
    start_head,
)
from luma_ray.serving_cli.record import (
    UpRecord,
    load_record,
    plan_down,
    record_path,
    save_record,
)

RAY_LOG_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)?\((?:raylet|[^()\n]*pid=\d+[^()\n]*)\)")
"""A line Ray forwards from a cluster's processes to this interpreter's stderr: the suite's
integration cluster may still be logging while these tests run."""


def own_lines(err: str) -> str:
    """``err`` without what Ray forwarded into it."""
    return "".join(line for line in err.splitlines(True) if not RAY_LOG_LINE.match(line))


def ray_finds_token(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Ask Ray itself (``ray get-auth-token``: reads, starts nothing) which token it finds."""
    env = {"PATH": os.environ["PATH"], **env, "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "get-auth-token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_up_makes_the_token_ray_start_needs_on_a_fresh_machine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = head_env({"HOME": str(home)})
    assert env["RAY_AUTH_MODE"] == "token"
    assert ray_finds_token(home, env).returncode != 0  # what broke `ray start`: no token
    setup = ensure_auth_token(env, home)
    token_file = default_token_path(home)
    assert setup.created and setup.source == str(token_file)
    token = token_file.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    found = ray_finds_token(home, env)
    assert found.returncode == 0 and found.stdout.strip() == token
    again = ensure_auth_token(env, home)  # a second `up` keeps it
    assert not again.created and token_file.read_text() == token


def test_the_token_follows_ray_s_own_variables(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert ensure_auth_token({"RAY_AUTH_TOKEN": "abc"}, home).source == "$RAY_AUTH_TOKEN"
    named = tmp_path / "team_token"
    named.write_text("def\n")
    assert ensure_auth_token({"RAY_AUTH_TOKEN_PATH": str(named)}, home).source == str(named)
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH=.*missing names no token"):
        ensure_auth_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}, home)
    assert not ensure_auth_token({"RAY_AUTH_MODE": "disabled"}, home).needed
    assert not home.exists()  # none of these wrote anything
    token_file = default_token_path(home)
    token_file.parent.mkdir(parents=True)
    token_file.write_text("")  # empty: Ray would find no token
    assert ensure_auth_token({}, home).created and len(token_file.read_text()) == 64
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_the_head_runs_in_the_foreground_of_its_own_process(tmp_path: Path) -> None:
    command = head_command(tmp_path / "ray", 2, python="python3")
    assert command[:4] == ["python3", "-m", "ray.scripts.scripts", "start"]
    assert {"--head", "--block", f"--temp-dir={tmp_path / 'ray'}", "--num-cpus=2"} <= set(command)
    assert head_env({"RAY_AUTH_MODE": "disabled"})["RAY_AUTH_MODE"] == "disabled"
    assert ray_temp_dir({"RAY_TMPDIR": "/x", "TMPDIR": "/y"}, "linux") == Path("/x/ray")
    assert ray_temp_dir({"TMPDIR": "/y"}, "linux") == Path("/y/ray")
    assert ray_temp_dir({"TMPDIR": "/y"}, "darwin") == Path("/tmp/ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_join_tries_only_an_address_that_answers(tmp_path: Path) -> None:
    temp_dir = tmp_path / "ray"
    assert join_address({}, None, temp_dir) is None
    temp_dir.mkdir()
    (temp_dir / ADDRESS_FILE).write_text("127.0.0.1:6379\n")
    assert join_address({}, None, temp_dir) == "127.0.0.1:6379"
    assert join_address({}, "127.0.0.1:1", temp_dir) == "127.0.0.1:1"
    assert join_address({"RAY_ADDRESS": "auto"}, "127.0.0.1:1", temp_dir) == "auto"
    assert not reachable(f"127.0.0.1:{free_port()}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable(f"127.0.0.1:{server.getsockname()[1]}")
    assert reachable("auto") and reachable("ray://head:10001")


def test_the_record_round_trips_and_a_damaged_one_says_so(tmp_path: Path) -> None:
    path = record_path(tmp_path)
    assert load_record(path) is None
    record = UpRecord("127.0.0.1:6379", "session_1", ("a",), 42, "/tmp/ray").with_apps(["b", "a"])
    save_record(path, record)
    assert load_record(path) == record and record.apps == ("a", "b") and record.started_ray
    path.write_text(json.dumps({"address": "x", "session": "s", "head_pid": "42"}))
    with pytest.raises(ConfigError, match="up.json is not a record of luma-ray up"):
        load_record(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="delete the file"):
        load_record(path)


def test_down_stops_ray_only_if_up_started_it() -> None:
    own = UpRecord("h:1", "s", ("pool", "luma-api"), head_pid=7, temp_dir="/t")
    joined = UpRecord("h:1", "s", ("pool",))
    assert plan_down(own, False, ["x"]) == plan_down(own, True, ["x"])
    assert plan_down(own, False, ["x"]).stop_head and plan_down(own, False, []).apps == own.apps
    assert not plan_down(joined, False, []).stop_head and not plan_down(joined, False, []).ray_stop
    assert plan_down(joined, True, []).ray_stop and not plan_down(joined, True, []).stop_head
    assert plan_down(None, False, ["x"]).apps == ("x",)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder and a Ray temp folder of the test's own, no $RAY_ADDRESS."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    return data


def test_down_when_nothing_runs_says_so_in_one_line(machine: Path, capsys) -> None:
    assert main(["down", "--data-dir", str(machine)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "luma_ray is not running here (no Ray cluster found)"
    assert own_lines(err) == ""


def fake_head(temp_dir: Path) -> subprocess.Popen[bytes]:
    """A process with a Ray head's command line, in a session of its own, with a child."""
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    args = ["start", "--head", "--block", f"--temp-dir={temp_dir}"]
    return subprocess.Popen([sys.executable, "-c", code, *args], start_new_session=True)


def session_members(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            text = (entry / "stat").read_text()
        except (OSError, NotADirectoryError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_down_stops_the_head_up_started_and_its_session(machine: Path, capsys) -> None:
    temp_dir = machine.parent / "raytmp" / "ray"
    temp_dir.mkdir(parents=True)
    address = f"127.0.0.1:{free_port()}"  # nothing answers: no ray.init is tried
    (temp_dir / ADDRESS_FILE).write_text(address)
    head = fake_head(temp_dir)
    try:
        deadline = time.monotonic() + 10
        while len(session_members(head.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_head(head.pid, temp_dir) and not is_head(head.pid, temp_dir / "other")
        record = UpRecord(address, "s", ("luma-tiny-workers",), head.pid, str(temp_dir))
        save_record(record_path(machine), record)
        assert main(["down", "--data-dir", str(machine)]) == 0
        assert f"stopped the Ray cluster luma-ray up started (pid {head.pid})" in (
            capsys.readouterr().out
        )
        assert head.wait(timeout=5) is not None
        assert session_members(head.pid) == []  # its child went too
        assert not (temp_dir / ADDRESS_FILE).exists()  # as `ray stop` leaves it
        assert load_record(record_path(machine)) is None
    finally:
        head.kill()
        head.wait()


def test_down_leaves_a_process_that_is_not_its_head_alone(machine: Path, capsys) -> None:
    other = subprocess.Popen(["sleep", "60"])  # took over a recorded pid, say
    try:
        temp_dir = machine.parent / "raytmp" / "ray"
        record = UpRecord(f"127.0.0.1:{free_port()}", "s", (), other.pid, str(temp_dir))
        save_record(record_path(machine), record)
        assert main(["down", "--data-dir", str(machine)]) == 0
        out = capsys.readouterr().out
        assert f"the Ray cluster luma-ray up started (pid {other.pid}) is not running" in out
        assert other.poll() is None  # still running
        assert load_record(record_path(machine)) is None  # the stale record is gone
    finally:
        other.kill()
        other.wait()


def test_down_on_a_cluster_up_joined_that_is_gone(machine: Path, capsys) -> None:
    save_record(record_path(machine), UpRecord(f"127.0.0.1:{free_port()}", "s", ("p",)))
    assert main(["down", "--data-dir", str(machine)]) == 0
    assert "that luma-ray up joined is gone" in capsys.readouterr().out


def test_generate_to_a_dead_url_is_one_line(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["generate", "a red circle", "--tier-key", "lr_x_y", "--url", url]) == 1
    err = own_lines(capsys.readouterr().err)
    assert err == (
        f"luma-ray: error: cannot reach {url}: connection refused; is `luma-ray up` running?\n"
    )
    assert main(["generate", "a red circle", "--url", url]) == 2
    assert "--url needs --tier-key" in capsys.readouterr().err


def test_a_head_that_fails_or_never_answers_is_stopped_and_says_why(tmp_path: Path) -> None:
    environ = {"RAY_TMPDIR": str(tmp_path)}
    temp_dir = tmp_path / "ray"
    shape = ["start", "--head", "--block", f"--temp-dir={temp_dir}"]
    fails = [sys.executable, "-c", "print('ConnectionError: port 6379 is taken'); exit(1)"]
    with pytest.raises(LumaError, match=r"ray start failed \(exit 1\): ConnectionError: port"):
        start_head(environ, 1, tmp_path / "head.log", command=[*fails, *shape])
    child = f"[{sys.executable!r}, '-c', 'import time; time.sleep(60)', 'child-of-{temp_dir}']"
    code = f"import subprocess, time; subprocess.Popen({child}); time.sleep(60)"
    hangs = [sys.executable, "-c", code, *shape]
    with pytest.raises(LumaError, match="did not start within 1 s"):
        start_head(environ, 1, tmp_path / "head.log", timeout_s=1.0, command=hangs)
    left = subprocess.run(["pgrep", "-f", "--", str(temp_dir)], capture_output=True)
    assert left.returncode == 1 and left.stdout == b""  # the head and its child are gone


# ---- up's options and the RuntimeConfig they build ----------------------------------------


def _runtime(*argv: str):
    from luma_ray.cli import build_parser
    from luma_ray.serving_cli.cluster import runtime_of

    return runtime_of(build_parser().parse_args(["up", "--data-dir", "/tmp/luma-x", *argv]))


def test_allow_private_callbacks_is_off_unless_asked_and_warns_when_on(caplog) -> None:
    with caplog.at_level("WARNING", logger="luma_ray.serving_cli.cluster"):
        assert _runtime().allow_private_callbacks is False
        assert not caplog.records
        assert _runtime().allow_private_inputs is False
        allowed = _runtime("--allow-private-callbacks")
        assert allowed.allow_private_callbacks is True and allowed.allow_private_inputs is True
    [warning] = caplog.records
    assert warning.levelname == "WARNING" and "private networks" in warning.getMessage()


def test_up_sets_the_asset_url_options(capsys) -> None:
    runtime = _runtime("--public-url", "https://v.example.com", "--asset-url-ttl", "600")
    assert (runtime.public_url, runtime.asset_url_ttl_s) == ("https://v.example.com", 600)
    assert runtime.asset_urls == "signed"
    assert _runtime().public_url is None and _runtime().asset_url_ttl_s == 86_400
    assert main(["up", "--data-dir", "/tmp/luma-x", "--asset-urls", "s3_presigned"]) == 2
    assert "s3:// result store" in capsys.readouterr().err  # one line, no traceback
    presigned = _runtime("--store", "s3://bucket/p", "--asset-urls", "s3_presigned")
    assert presigned.asset_urls == "s3_presigned"


def test_the_journal_can_live_apart_from_the_data_dir(tmp_path: Path, monkeypatch) -> None:
    """``--journal`` puts the journal (and its webhook outbox, next to it) on durable storage
    while the data dir stays where it was; a relative path is made absolute here, since the
    scheduler actor that opens it runs in a folder of Ray's choosing."""
    assert _runtime().journal == "/tmp/luma-x/journal.sqlite"
    durable = tmp_path / "volume" / "luma.sqlite"
    runtime = _runtime("--journal", str(durable))
    assert runtime.journal == str(durable) and runtime.data_dir == "/tmp/luma-x"
    monkeypatch.chdir(tmp_path)
    assert _runtime("--journal", "j/luma.sqlite").journal == str(tmp_path / "j" / "luma.sqlite")
