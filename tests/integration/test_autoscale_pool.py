"""Queue-driven autoscaling on a live pool (tiny-auto: 1 to 2 replicas, idle window 4 s):
a backlog raises the replicas to the maximum, and once idle the pool shrinks to its minimum."""

from __future__ import annotations

from .conftest import wait_for
from .versions import AUTO_MODEL

APP = f"{AUTO_MODEL}-workers"
BACKLOG = 8
"""Jobs kept waiting until the pool has scaled up. The jobs take a fraction of a second and a
new replica takes seconds to start, so a fixed batch could drain first on a fast machine, and
the policy would rightly cancel the scale-up."""


def running_replicas() -> int:
    from ray import serve

    deployment = serve.status().applications[APP].deployments[APP]
    return int(deployment.replica_states.get("RUNNING", 0))


def test_backlog_scales_up_to_max_and_idle_scales_down_to_min(system) -> None:
    client = system["client"]
    wait_for(lambda: running_replicas() == 1, what="the warm pool of 1")
    ids: list[str] = []
    waiting: list[str] = []
    most = 0

    def scaled_up() -> bool:
        nonlocal most
        waiting[:] = [i for i in waiting if client.get(i).state == "queued"]
        while len(waiting) < BACKLOG:
            n = len(ids)
            job = client.submit(
                f"scale {n}", model=AUTO_MODEL, frames=8, size="32x32", steps=6, seed=n
            )
            ids.append(job)
            waiting.append(job)
        most = max(most, running_replicas())
        return most == 2

    wait_for(scaled_up, timeout_s=180, what="a scale-up to the max of 2")
    views = [client.wait(i, timeout=300) for i in ids]
    assert [v.state for v in views] == ["succeeded"] * len(ids)
    assert running_replicas() <= 2  # never past the max
    wait_for(lambda: running_replicas() == 1, timeout_s=180, what="a scale-down to the min")
