"""Rolling version swaps on a live pool (two ``tiny-roll`` replicas, max_unavailable 25%):
swap and rollback under a stream of jobs, and a version whose code fails to load.

The tests run in file order and each starts from the state the previous one left, but each
first waits for the pool to be in the state it needs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from luma_ray.errors import InvalidRequest
from luma_ray.scheduler.protocol import RolloutStatus

from .conftest import wait_for
from .versions import MODEL, publish_version

SMALL: dict[str, Any] = {"frames": 4, "size": "32x32", "steps": 2}
POOL_SIZE = 2


def rollout(system) -> dict[str, Any]:

    status: dict[str, Any] = system["scheduler"].call(RolloutStatus(MODEL))
    return status


def wait_pool_on(system, version: str) -> dict[str, Any]:
    """Both replicas serve ``version`` and none is swapping; returns the rollout status."""

    def settled() -> dict[str, Any] | None:
        status = rollout(system)
        workers = status["workers"]
        on_version = len(workers) == POOL_SIZE and set(workers.values()) == {version}
        return status if on_version and not status["swapping"] else None

    return wait_for(settled, timeout_s=240, what=f"the pool to serve {version}")


class Stream:
    """Submits a small job every ``period_s`` on a thread until stopped: load during a swap."""

    def __init__(self, client, period_s: float = 0.4) -> None:
        self.client = client
        self.period_s = period_s
        self.ids: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self.ids.append(self.client.submit(f"stream {n}", model=MODEL, seed=n, **SMALL))
            except BaseException as err:  # recorded and asserted on by the test
                self.errors.append(err)
            n += 1
            self._stop.wait(self.period_s)  # the pace of the load, not synchronisation

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def published(system) -> None:
    repo = system["repository"]
    for version in ("v2", "v3"):
        publish_version(repo, system["versions_dir"], version)


def swapped_at(status: dict[str, Any], version: str) -> float:
    """When the last replica finished its swap to ``version`` (scheduler clock)."""
    done = [
        e["finished_s"]
        for e in status["events"]
        if e["to_version"] == version and e["error"] is None and e["finished_s"] is not None
    ]
    assert len(done) >= POOL_SIZE, status
    return max(done)


def assert_one_at_a_time(status: dict[str, Any], version: str) -> None:
    """max_unavailable 25% of 2 replicas is 1: swaps to ``version`` never overlapped."""
    spans = sorted(
        (e["started_s"], e["finished_s"])
        for e in status["events"]
        if e["to_version"] == version and e["finished_s"] is not None
    )[-POOL_SIZE:]
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans


def run_swap_under_load(system, action, old: str, new: str) -> None:
    client = system["client"]
    wait_pool_on(system, old)
    with Stream(client) as stream:
        wait_for(lambda: len(stream.ids) >= 4, what="load before the swap")
        action()
        status = wait_pool_on(system, new)
        done_at = swapped_at(status, new)
        count = len(stream.ids)
        wait_for(lambda: len(stream.ids) >= count + 4, what="load after the swap")
    assert not stream.errors, stream.errors
    views = [client.wait(i, timeout=300) for i in stream.ids]
    assert [v.state for v in views] == ["succeeded"] * len(views), views
    after = [v for v in views if v.started_at_s > done_at]
    assert after and {v.model_version for v in after} == {new}
    assert old in {v.model_version for v in views}  # the stream did run across the swap
    assert_one_at_a_time(status, new)


def test_swap_under_load(system, published) -> None:
    repo = system["repository"]
    run_swap_under_load(system, lambda: repo.promote(MODEL, "v2"), "v1", "v2")
    # Each version's own code ran, in its own process: the module name is the same.
    sources = {s["version"]: s["model_source"] for s in worker_stats()}
    assert set(sources) == {"v2"}
    assert sources["v2"].endswith("tiny-roll/v2/code/rollmodel/__init__.py")
    # Pins: the running version is accepted and runs there; one nobody runs is refused.
    client = system["client"]
    pinned = client.wait(client.submit("pinned", model=f"{MODEL}@v2", **SMALL), timeout=300)
    assert (pinned.state, pinned.model_version) == ("succeeded", "v2")
    with pytest.raises(InvalidRequest, match="no worker runs version 'v1'"):
        client.submit("pinned", model=f"{MODEL}@v1", **SMALL)


def test_rollback_under_load(system, published) -> None:
    repo = system["repository"]
    if repo.active(MODEL).active != "v2":
        repo.promote(MODEL, "v2")
    run_swap_under_load(system, lambda: repo.rollback(MODEL), "v2", "v1")
    assert repo.active(MODEL).active == "v1"


def test_a_version_that_fails_to_load_halts_and_the_pool_stays(system, published) -> None:
    repo, client = system["repository"], system["client"]
    repo.promote(MODEL, "v2")
    wait_pool_on(system, "v2")
    with Stream(client) as stream:
        wait_for(lambda: len(stream.ids) >= 3, what="load before the bad promote")
        repo.promote(MODEL, "v3")
        status = wait_for(
            lambda: (s := rollout(system)) and "v3" in s["halted"] and s,
            timeout_s=240,
            what="the rollout of v3 to halt",
        )
        count = len(stream.ids)
        wait_for(lambda: len(stream.ids) >= count + 3, what="load after the halt")
    assert not stream.errors, stream.errors
    views = [client.wait(i, timeout=300) for i in stream.ids]
    assert [v.state for v in views] == ["succeeded"] * len(views), views
    assert {v.model_version for v in views} == {"v2"}
    assert "tiny-roll v3 cannot read this checkpoint format" in status["halted"]["v3"]["error"]
    assert set(wait_pool_on(system, "v2")["workers"].values()) == {"v2"}
    # Only one replica paid for trying v3; the other never left v2.
    assert [e["worker"] for e in status["events"] if e["to_version"] == "v3"][:1] == [
        status["halted"]["v3"]["worker"]
    ]
    # The operator sees why without Ray: models status reads what the scheduler stored.
    stored = wait_for(
        lambda: (r := repo.rollout(MODEL)) and "v3" in r["halted"] and r, what="rollout.yaml"
    )
    assert "cannot read this checkpoint format" in stored["halted"]["v3"]["error"]
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "luma_ray.cli",
            "models",
            "status",
            MODEL,
            "--repo",
            system["runtime"].repository,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "active: v3" in shown and "cannot read this checkpoint format" in shown
    repo.rollback(MODEL)  # leave the pool on a good version
    assert repo.active(MODEL).active == "v2"


def worker_stats() -> list[dict[str, Any]]:
    """Stats of every tiny-roll replica (each call reaches one replica; ask until both)."""
    from ray import serve

    handle = serve.get_deployment_handle(f"{MODEL}-workers", app_name=f"{MODEL}-workers")
    seen: dict[str, dict[str, Any]] = {}

    def both() -> bool:
        stats = handle.stats.remote().result(timeout_s=30)
        seen[stats["worker"]] = stats
        return len(seen) == POOL_SIZE

    wait_for(both, what="stats from both replicas")
    return list(seen.values())
