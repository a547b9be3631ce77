"""One model served by two pools on two kinds of nodes (Ray nodes on this machine with
distinct labels): jobs run on both, each pool only on its kind of node, and the cluster at
its dispatch limit (east: 1) never holds more leases than that."""

from __future__ import annotations

from typing import Any

from luma_ray.scheduler.protocol import Stats

from .conftest import ACCEL, CLUSTER
from .versions import MIXED_MODEL


def pool_stats(app: str) -> dict[str, Any]:
    from ray import serve

    handle = serve.get_deployment_handle(app, app_name=app)
    stats: dict[str, Any] = handle.stats.remote().result(timeout_s=30)
    return stats


def test_pools_on_two_kinds_of_nodes_and_a_dispatch_limit(system) -> None:

    client = system["client"]
    ids = [
        client.submit(f"mixed {i}", model=MIXED_MODEL, frames=2, size="16x16", steps=2, seed=i)
        for i in range(12)
    ]
    views = [client.wait(i, timeout=300) for i in ids]
    assert [v.state for v in views] == ["succeeded"] * len(ids)

    a, b = pool_stats("mixed-a"), pool_stats("mixed-b")
    # Each pool's worker and every rank of its gang sit on its own kind of node, and the worker
    # counts against the cluster its node names.
    assert (a["node_labels"][ACCEL], a["cluster"]) == ("cpu-a", "east")
    assert (b["node_labels"][ACCEL], b["cluster"]) == ("cpu-b", "west")
    assert [n[ACCEL] for n in a["rank_nodes"]] == ["cpu-a"]
    assert [n[CLUSTER] for n in b["rank_nodes"]] == ["west"]
    # Other tests may run jobs of this model too (the gang test's one-rank reference).
    ran_a, ran_b = set(a["generated"]) & set(ids), set(b["generated"]) & set(ids)
    assert ran_a and ran_b, (ran_a, ran_b)  # both kinds of nodes ran jobs
    assert ran_a | ran_b == set(ids) and not ran_a & ran_b

    stats = system["scheduler"].call(Stats())
    assert stats["peak_in_flight"]["east"] == 1  # its limit, though its worker prefetches
    assert stats["refused_pulls"]["east"] > 0  # the prefetch pulls it was refused
    # No limit on west: its one worker held several (uploading, running, prefetched).
    assert stats["peak_in_flight"]["west"] > 1
