"""The Ray head ``luma-ray up --detach`` starts, how it is found, and how ``down`` stops it.

``up`` runs ``ray start --head --block`` in a session of its own and leaves it running. In
``--block`` mode Ray watches the processes it started, stops them all on SIGTERM, and each of
them dies with it (Linux's parent-death signal). So ``down`` stops exactly that cluster by
signalling one process it can recognise, where ``ray stop`` would stop every Ray process on the
machine, other people's clusters included.

Ray finds a running cluster through the address file in its temp folder
(``ray_current_cluster``), and ``ray.init`` given a dead address waits minutes for it; so a join
here first checks that something answers at the address (:func:`reachable`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from luma_ray.errors import LumaError

ADDRESS_FILE = "ray_current_cluster"
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 60.0


@dataclass(frozen=True)
class Head:
    pid: int
    address: str
    temp_dir: Path


def ray_temp_dir(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """Ray's temp folder, by Ray's rule: ``$RAY_TMPDIR``, else ``$TMPDIR`` on Linux, else
    ``/tmp``; then ``ray``."""
    if environ.get("RAY_TMPDIR"):
        base = environ["RAY_TMPDIR"]
    elif platform.startswith("linux") and environ.get("TMPDIR"):
        base = environ["TMPDIR"]
    elif platform.startswith(("linux", "darwin")):
        base = "/tmp"
    else:
        base = tempfile.gettempdir()
    return Path(base) / "ray"


def read_address(temp_dir: Path) -> str | None:
    """The address of the cluster last started with this temp folder, if Ray noted one."""
    try:
        return (temp_dir / ADDRESS_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def join_address(environ: Mapping[str, str], recorded: str | None, temp_dir: Path) -> str | None:
    """The cluster to join: ``$RAY_ADDRESS``, else the one ``up`` recorded, else the one in
    Ray's address file; None when none is known."""
    return environ.get("RAY_ADDRESS") or recorded or read_address(temp_dir)


def reachable(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something accepts connections at a ``host:port`` address. Other forms
    (``auto``, ``ray://...``) are Ray's to resolve: True."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def head_command(temp_dir: Path, num_cpus: int, python: str = sys.executable) -> list[str]:
    """``ray start`` for a head that stays in the foreground of its own process."""
    return [
        python,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--dashboard-host=127.0.0.1",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
    ]


def head_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The head's environment: token auth unless the user chose otherwise, and no drain wait
    on SIGTERM (one machine: there is nowhere to move work to)."""
    env = dict(environ)
    env.setdefault("RAY_AUTH_MODE", "token")
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    return env


def start_head(
    environ: Mapping[str, str],
    num_cpus: int,
    log_path: Path,
    timeout_s: float = READY_TIMEOUT_S,
    command: list[str] | None = None,
) -> Head:
    """Start a Ray head (``command``: :func:`head_command`) and return once it answers at its
    address; its output goes to ``log_path``. ``LumaError`` (with the log's last line) if it
    exits or never answers; it is stopped then."""
    temp_dir = ray_temp_dir(environ)
    stale = read_address(temp_dir)
    if stale is not None and not reachable(stale):
        (temp_dir / ADDRESS_FILE).unlink(missing_ok=True)  # what `ray stop` would remove
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command or head_command(temp_dir, num_cpus),
            env=head_env(environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return Head(process.pid, _wait_ready(process, temp_dir, log_path, timeout_s), temp_dir)
    except BaseException:  # it failed, timed out, or the user pressed Ctrl-C: stop it
        stop_head(process.pid, temp_dir, None)
        raise


def _wait_ready(
    process: subprocess.Popen[bytes], temp_dir: Path, log_path: Path, timeout_s: float
) -> str:
    """The head's address once it answers there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LumaError(
                f"ray start failed (exit {process.returncode}): {_last_line(log_path)} "
                f"(full output: {log_path})"
            )
        address = read_address(temp_dir)
        if address is not None and reachable(address):
            return address
        time.sleep(0.5)  # polling for the head to come up
    raise LumaError(f"the Ray head did not start within {timeout_s:g} s; see {log_path}")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def is_head(pid: int, temp_dir: Path) -> bool:
    """Whether ``pid`` is a ``ray start --head --block`` with this temp folder, as ``up``
    starts it (not a process that took over the number since)."""
    args = _command_line(pid)
    wanted = {"start", "--head", "--block", f"--temp-dir={temp_dir}"}
    return args is not None and wanted <= set(args) and _alive(pid)


def stop_head(pid: int, temp_dir: Path, address: str | None, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the head ``pid`` and every process of its session; False if ``pid`` is not that
    head (gone, or another program now), which is then left alone.

    SIGTERM lets Ray stop its processes; SIGKILL follows after ``grace_s``. Ray's address file
    is removed if it still names ``address``, as ``ray stop`` does.
    """
    if not is_head(pid, temp_dir):
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_gone([pid], grace_s):
        _signal(pid, signal.SIGKILL)
        _wait_gone([pid], 5.0)
    _end_session(pid, grace_s=10.0)
    if address is not None and read_address(temp_dir) == address:
        (temp_dir / ADDRESS_FILE).unlink(missing_ok=True)
    return True


def _command_line(pid: int) -> list[str] | None:
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    shown = subprocess.run(["ps", "-p", str(pid), "-o", "args="], capture_output=True, text=True)
    return shown.stdout.split() if shown.returncode == 0 else None


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat(pid)
    return stat is None or stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) from ``/proc/<pid>/stat``; None where there is no such file."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command) "
    return fields[0], int(fields[3])


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)  # polling: these processes are not our children
    return True


def _end_session(session: int, grace_s: float) -> None:
    """End the processes left in ``session`` (Linux; elsewhere Ray's own shutdown must do)."""
    if not Path("/proc/self").exists():
        return
    members = [
        pid
        for pid in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
        if pid != os.getpid() and (_stat(pid) or ("", -1))[1] == session and _alive(pid)
    ]
    for pid in members:
        _signal(pid, signal.SIGTERM)
    if not _wait_gone(members, grace_s):
        for pid in members:
            _signal(pid, signal.SIGKILL)
        _wait_gone(members, 5.0)
