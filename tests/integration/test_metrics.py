"""The Prometheus series Ray exports for luma_ray (on the head node's metrics port) match a
known workload: three light-tier jobs, measured as deltas around them."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from .conftest import wait_for

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(system: dict[str, Any]) -> list[tuple[str, dict[str, str], float]]:
    body = urllib.request.urlopen(system["metrics_url"], timeout=10).read().decode()
    samples = []
    for line in body.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"].startswith("ray_luma_"):
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def total(samples, name: str, **labels: str) -> float:
    """Sum over the series of ``name`` whose labels include ``labels`` (processes differ)."""
    return sum(
        v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())
    )


def test_metrics_match_a_known_workload(system) -> None:
    client = system["client"]
    wait_for(lambda: scrape(system), what="luma series on the metrics port")
    before = scrape(system)
    ids = [
        client.submit(f"metrics {i}", tier="light", frames=4, size="32x32", steps=2, seed=i)
        for i in range(3)
    ]
    assert [client.wait(i, timeout=300).state for i in ids] == ["succeeded"] * 3
    series = {
        "ray_luma_jobs_finished_total": {"tier": "light", "state": "succeeded"},
        "ray_luma_jobs_started_total": {"tier": "light", "model": "luma-tiny"},
        "ray_luma_wait_seconds_count": {"tier": "light"},
    }

    pool = {"pool": "luma-tiny-workers"}

    def busy(samples) -> float:
        return total(samples, "ray_luma_worker_busy_seconds_total", **pool)

    def caught_up() -> list | None:
        # Each process reports to the node's metrics agent on its own period: the worker's
        # busy seconds may reach the port later than the scheduler's counters.
        now = scrape(system)
        done = all(
            total(now, name, **labels) - total(before, name, **labels) == 3
            for name, labels in series.items()
        )
        return now if done and busy(now) > busy(before) else None

    now = wait_for(
        caught_up, timeout_s=120, what="the three jobs and their busy time in the metrics"
    )
    # Light's SLO is 30 min: every light lease so far started within it.
    assert total(now, "ray_luma_slo_attainment", tier="light") == 1.0
    assert total(now, "ray_luma_queue_depth", tier="light", model="luma-tiny") == 0
    loads = {"model": "tiny-roll", "version": "v1", "outcome": "ok"}
    assert total(now, "ray_luma_model_loads_total", **loads) >= 2  # both replicas loaded v1
    assert total(now, "ray_luma_rollout_workers", model="tiny-roll") == 2
