"""Free TCP ports that the kernel will not hand to anyone else meanwhile.

``bind(("", 0))`` returns a port from the kernel's ephemeral range: the range from which every
outgoing connection takes its local port, and Ray its own components' ports. Between choosing
such a port and listening on it, another process can be given the same one. A port outside
that range, and outside Ray's worker ports (10002-19999), is only ever taken by a process that
names it, so a port chosen here stays free until its user binds it (the gang's rendezvous in
``host.py``; the test clusters' dashboard, agent and service ports).
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

RAY_WORKER_PORTS = (10002, 19999)
"""Ray's default ``--min-worker-port`` and ``--max-worker-port``."""
_LOWEST, _HIGHEST = RAY_WORKER_PORTS[1] + 1, 65535
_given: set[int] = set()  # chosen by this process: not handed out twice before it binds them
_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now, outside the ephemeral range and Ray's
    worker ports, none of them returned before by this process."""
    low, high = ephemeral_range()
    candidates = [p for p in range(_LOWEST, _HIGHEST + 1) if not low <= p <= high]
    random.shuffle(candidates)
    chosen: list[int] = []
    with _lock:
        for port in candidates:
            if port in _given:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            chosen.append(port)
            if len(chosen) == count:
                _given.update(chosen)
                return chosen
    raise OSError(f"found only {len(chosen)} free ports on {host or 'any address'}; {count} needed")


def free_port(host: str = "127.0.0.1") -> int:
    """One port as :func:`free_ports` chooses them."""
    return free_ports(1, host)[0]
