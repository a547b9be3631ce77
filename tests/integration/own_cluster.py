"""A Ray cluster of a test's own, beside the session's: a head on ports chosen free here (none
of Ray's defaults, so it never meets another cluster on this machine), and a hard kill of all
its processes. Used by the head-loss and the ``serve deploy`` tests."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from luma_ray.workers.tcp_ports import free_ports

if TYPE_CHECKING:
    from luma_ray.serving_cli.head import Head


def own_head(env: dict[str, str], log: Path) -> tuple[Head, str]:
    """A Ray head of this test's own, every port free (not Ray's defaults; none that
    ``free_port`` gave the test, e.g. its HTTP API's); the head and its dashboard's address
    (for ``serve deploy -a``)."""
    from luma_ray.serving_cli.head import head_command, ray_temp_dir, start_head

    names = (
        "port",
        "dashboard-port",
        "ray-client-server-port",
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    )
    ports = dict(zip(names, free_ports(len(names)), strict=True))  # never one given before
    command = head_command(ray_temp_dir(env), num_cpus=4)
    command += [f"--{name}={port}" for name, port in ports.items()]
    head = start_head(env, 4, log, timeout_s=240.0, command=command)
    return head, f"http://127.0.0.1:{ports['dashboard-port']}"


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[3]), fields[0])
    return found


def _cluster(head_pid: int) -> set[int]:
    """The head's processes: its session (GCS, raylet, agents, workers) and, in case one left
    the session, every descendant of the head process."""
    table = _processes()
    members = {pid for pid, (_, sid, state) in table.items() if sid == head_pid and state != "Z"}
    members.add(head_pid)
    grew = True
    while grew:
        more = {p for p, (ppid, _, state) in table.items() if ppid in members and state != "Z"}
        grew = not more <= members
        members |= more
    return {pid for pid in members if pid in table and table[pid][2] != "Z"} - {os.getpid()}


def kill_hard(head_pid: int) -> None:
    """A lost machine: freeze every process of the cluster at once (SIGSTOP, so none finishes
    a job while the others die), then SIGKILL them all, until none is left."""
    deadline = time.monotonic() + 30
    frozen: set[int] = set()
    while members := _cluster(head_pid) - frozen:
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= members
    while True:
        table = _processes()
        alive = {p for p in _cluster(head_pid) | frozen if p in table and table[p][2] != "Z"}
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes {alive} outlived SIGKILL"
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)  # polling: they are not our children


def strays(root: Path) -> list[int]:
    """Processes started with the test's environment (``RAY_TMPDIR`` under ``root``; Ray's
    workers rename themselves ``ray::...``, so their command lines do not say): none may
    outlive the kill."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if str(root).encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
