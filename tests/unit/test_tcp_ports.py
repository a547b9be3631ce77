"""Ports chosen for a listener to bind later: never from the kernel's ephemeral range or Ray's
worker ports (where another process can be handed them meanwhile), never twice."""

from __future__ import annotations

import socket

from luma_ray.workers.tcp_ports import RAY_WORKER_PORTS, ephemeral_range, free_port, free_ports


def test_ports_are_free_outside_the_ephemeral_range_and_rays_worker_ports() -> None:
    low, high = ephemeral_range()
    ports = free_ports(50)
    assert len(set(ports)) == 50
    for port in ports:
        assert not low <= port <= high, (port, low, high)
        assert not RAY_WORKER_PORTS[0] <= port <= RAY_WORKER_PORTS[1], port
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: binds


def test_a_port_is_never_given_twice_even_while_still_unbound() -> None:
    given = set(free_ports(200))
    given.update(free_port() for _ in range(200))
    assert len(given) == 400
