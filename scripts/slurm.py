"""Start and stop a one-node Slurm (munged, slurmctld, slurmd) on loopback, in a folder.

Who calls this: ``tests/integration/slurm_burst_cases.py`` (imports this file by path and calls
:func:`start_slurm` for its test module) and developers (``python scripts/slurm.py start --dir
D`` prints the ``SLURM_CONF`` to export; ``stop --dir D`` ends it). Debian's ``slurmctld``,
``slurmd``, ``slurm-client`` and ``munge`` packages are installed with ``apt-get`` when missing
(needs root; CI runs as root on a fresh machine).

The configuration fits a container without systemd or cgroups: ``proctrack/linuxproc``,
``task/none``, no accounting and no job accounting gather, all state, logs, pid files and the
munge key and socket under the folder, every daemon bound to 127.0.0.1 on ports picked free
at start. One node, named ``NODE`` with this machine's CPUs (2 by default), in one partition
``burst``; ``KillWait`` (the seconds between the TERM and the KILL of a cancelled job) is set,
30 s by default as in Slurm. Client commands need ``SLURM_CONF`` from :attr:`Slurm.env`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NODE = "lumaburst1"
PARTITION = "burst"
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = {name: f"/usr/sbin/{name}" for name in ("munged", "slurmctld", "slurmd")}
STATE_FILE = "slurm.json"
_PORT_MIN, _PORT_MAX = 10000, 65000


class SlurmError(RuntimeError):
    """Slurm could not be installed, started or stopped; the message says what to do."""


@dataclass
class Slurm:
    """A running Slurm started by :func:`start_slurm`; ``stop()`` ends it."""

    dir: Path
    pids: dict[str, int]
    node: str = NODE
    kill_wait_s: int = 30
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return self.dir / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """This environment with ``SLURM_CONF`` pointing at this Slurm."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, timeout_s: float = 30.0) -> str:
        """Run a Slurm client command against this Slurm; its stdout (raises on failure)."""
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def stop(self, grace_s: float = 5.0) -> None:
        """Cancel every job and wait (up to KillWait and a bit) until Slurm has ended them, stop
        slurmd, slurmctld and munged (TERM, then KILL), then KILL any process a job left
        (those with this Slurm's ``SLURM_CONF``: a step that blocks TERM outlives a slurmd
        stopped before its KillWait ran out)."""
        with contextlib.suppress(SlurmError, OSError, subprocess.TimeoutExpired):
            self.run("scancel", "--partition", PARTITION, timeout_s=10.0)
            deadline = time.monotonic() + self.kill_wait_s + 15
            while self.run("squeue", "-h", timeout_s=10.0).strip():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)  # poll interval, bounded by the deadline
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.get(name)
            if pid is not None:
                _terminate(pid, grace_s, self.processes.get(name))
        for pid in _processes_with_env(f"SLURM_CONF={self.conf}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / STATE_FILE).unlink()


def ensure_installed() -> None:
    """Install Debian's Slurm and munge packages if a daemon or ``sbatch`` is missing."""
    if all(Path(p).exists() for p in DAEMONS.values()) and shutil.which("sbatch"):
        return
    if os.geteuid() != 0:
        packages = " ".join(PACKAGES)
        raise SlurmError(f"Slurm is not installed: run `sudo apt-get install -y {packages}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 and "install" in command:
            raise SlurmError(f"installing Slurm failed: {done.stderr.strip()[-500:]}")
    missing = [p for p in DAEMONS.values() if not Path(p).exists()]
    if missing:
        raise SlurmError(f"Slurm was installed but {missing} are missing")


def slurm_conf(root: Path, ports: dict[str, int], cpus: int, kill_wait_s: int) -> str:
    """The slurm.conf of a one-node Slurm under ``root`` on loopback."""
    host = socket.gethostname()
    return "\n".join(
        [
            "ClusterName=luma",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ports['slurmctld']}",
            f"SlurmdPort={ports['slurmd']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root / 'munge' / 'munge.sock'}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",  # no cgroups in a container
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            f"KillWait={kill_wait_s}",
            "InactiveLimit=0",
            "MinJobAge=300",
            "CommunicationParameters=NoInAddrAny",  # bind to 127.0.0.1, not every address
            f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def start_slurm(
    dir: str | Path, *, cpus: int = 2, kill_wait_s: int = 30, timeout_s: float = 60.0
) -> Slurm:
    """Start munged, slurmctld and slurmd with everything under ``dir``; wait until the node
    is idle. Raises :class:`SlurmError` (the daemons' log tails quoted) if it is not."""
    ensure_installed()
    root = Path(dir).resolve()
    for sub in ("state", "spool", "run", "log", "munge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    ports = dict(zip(("slurmctld", "slurmd"), free_ports(2), strict=True))
    (root / "slurm.conf").write_text(slurm_conf(root, ports, cpus, kill_wait_s), encoding="utf-8")
    conf = str(root / "slurm.conf")
    commands = {
        "munged": [
            DAEMONS["munged"], "-F", "--force",
            f"--socket={root / 'munge' / 'munge.sock'}", f"--key-file={key}",
            f"--log-file={root / 'log' / 'munged.log'}",
            f"--pid-file={root / 'munge' / 'munged.pid'}",
            f"--seed-file={root / 'munge' / 'seed'}",
        ],
        "slurmctld": [DAEMONS["slurmctld"], "-D", "-i", "-f", conf],
        "slurmd": [DAEMONS["slurmd"], "-D", "-N", NODE, "-f", conf],
    }  # fmt: skip
    slurm = Slurm(dir=root, pids={}, kill_wait_s=kill_wait_s)
    deadline = time.monotonic() + timeout_s
    try:
        for name, argv in commands.items():
            with open(root / "log" / f"{name}.out", "wb") as out:
                process = subprocess.Popen(
                    argv,
                    env={**os.environ, "SLURM_CONF": conf},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            slurm.pids[name] = process.pid
            slurm.processes[name] = process
            (root / STATE_FILE).write_text(json.dumps({"pids": slurm.pids}), encoding="utf-8")
            if name == "munged":
                _wait(lambda: (root / "munge" / "munge.sock").exists(), slurm, deadline, name)
        _wait(lambda: _node_state(slurm) == "idle", slurm, deadline, f"node {NODE} idle")
    except BaseException:
        slurm.stop(grace_s=1.0)
        raise
    return slurm


def stop_slurm(dir: str | Path) -> bool:
    """Stop the Slurm whose pids are stored in ``dir``; False if none was recorded there."""
    root = Path(dir).resolve()
    try:
        pids = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))["pids"]
    except (FileNotFoundError, ValueError, KeyError):
        return False
    Slurm(dir=root, pids={k: int(v) for k, v in pids.items()}).stop()
    return True


def free_ports(count: int) -> list[int]:
    """``count`` free TCP ports on 127.0.0.1, outside the kernel's ephemeral range."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    candidates = [p for p in range(_PORT_MIN, _PORT_MAX) if not low <= p <= high]
    random.Random().shuffle(candidates)
    chosen: list[int] = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise SlurmError(f"found only {len(chosen)} free ports on 127.0.0.1; {count} needed")


def _node_state(slurm: Slurm) -> str:
    try:
        return slurm.run("sinfo", "-h", "-n", slurm.node, "-o", "%T", timeout_s=10.0).strip()
    except (SlurmError, subprocess.TimeoutExpired):
        return ""


def _wait(ready: Callable[[], bool], slurm: Slurm, deadline: float, what: str) -> None:
    while not ready():
        for name, process in slurm.processes.items():
            if process.poll() is not None:
                raise SlurmError(f"{name} exited with {process.returncode}:\n{_logs(slurm.dir)}")
        if time.monotonic() > deadline:
            raise SlurmError(f"Slurm was not ready ({what}) in time:\n{_logs(slurm.dir)}")
        time.sleep(0.2)  # poll interval, bounded by the deadline


def _logs(root: Path, lines: int = 15) -> str:
    parts = []
    for path in sorted((root / "log").glob("*")):
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(parts)


def _processes_with_env(entry: str) -> list[int]:
    """Pids of this user's processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    wanted = entry.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
    return found


def _terminate(pid: int, grace_s: float, process: subprocess.Popen[bytes] | None) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            if process is not None and process.poll() is not None:
                return
            if process is None and not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start Slurm and wait until its node is idle")
    start.add_argument("--dir", required=True, help="config, state, log and pid directory")
    start.add_argument("--cpus", type=int, default=2)
    start.add_argument("--kill-wait", type=int, default=30, help="Slurm's KillWait (30)")
    stop = commands.add_parser("stop", help="stop the Slurm started with --dir")
    stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            slurm = start_slurm(args.dir, cpus=args.cpus, kill_wait_s=args.kill_wait)
            print(f"export SLURM_CONF={slurm.conf}")
        elif not stop_slurm(args.dir):
            print(f"no Slurm recorded in {args.dir}", file=sys.stderr)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
