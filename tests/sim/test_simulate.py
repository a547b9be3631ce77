"""The simulator: hand-checked cases, and a cross-check against a naive reference replay."""

from __future__ import annotations

import math
import random

import pytest

from luma_ray.config import TierConfig, default_tiers
from luma_ray.scheduler.policies import make_policy
from luma_ray.scheduler.queues import band_of
from luma_ray.scheduler.tiers import tier_specs
from luma_ray.sim.simulate import _replay, fluid_lower_bound, simulate
from luma_ray.sim.traces.reader import Trace
from tests.sim.fair_definition import Definition, FairEntry

TIERS = default_tiers()
SPECS = tier_specs(TIERS)


def make_trace(rows: list[tuple[float, str, float]]) -> Trace:
    return Trace(
        [r[0] for r in rows],
        [f"t{i % 3}" for i in range(len(rows))],
        [r[1] for r in rows],
        ["m"] * len(rows),
        [r[2] for r in rows],
    )


def reference_replay(trace: Trace, capacity, policy, specs, fair: bool = False) -> list[float]:
    """Slow and obvious: at each event time, rank every queued job, start the best. With
    ``fair``, the best by the written-out fair-share definition (test_pick_equivalence)."""
    definition = Definition(policy, {}, {}, tiers=specs)
    n = len(trace)
    start = [math.nan] * n
    running: list[float] = []  # finish times
    queued: list[int] = []
    shed = {k: s.shed_ratio * s.max_wait_s for k, s in specs.items() if s.shed_ratio}
    i, last = 0, -1.0
    while i < n or queued:
        upcoming = running + [t for t, _ in capacity if t > last]
        if i < n:
            upcoming.append(trace.arrival_s[i])
        if not upcoming:
            break
        now = last = min(upcoming)
        running = [f for f in running if f > now]
        slots = [s for t, s in capacity if t <= now][-1]
        while i < n and trace.arrival_s[i] <= now:
            tier = trace.tier[i]
            heads = [j for j in queued if trace.tier[j] == tier]
            if len(running) < slots and not queued:
                policy.on_arrival(specs[tier], now)
                start[i] = now
                running.append(now + trace.service_s[i])
                policy.on_dispatch(specs[tier], 0, 0.0, now)
            elif (
                tier in shed and heads and now - min(trace.arrival_s[j] for j in heads) > shed[tier]
            ):
                pass
            else:
                policy.on_arrival(specs[tier], now)
                queued.append(i)
                definition.push(
                    FairEntry(tier, "*", trace.tenant[i], trace.arrival_s[i], i, trace.service_s[i])
                )
            i += 1
        while len(running) < slots and queued:

            def key(j: int, now: float = now) -> tuple[float, float, int]:
                spec = specs[trace.tier[j]]
                band = band_of(policy.bands(spec), trace.arrival_s[j], now)
                return (policy.rank(spec, band, now - trace.arrival_s[j]), -trace.arrival_s[j], -j)

            j = max(queued, key=key)
            if fair:
                picked = definition.pick({"*"}, now)
                assert picked is not None
                j = picked[0]
            definition.dispatch(definition.queued[j])
            spec = specs[trace.tier[j]]
            policy.on_dispatch(
                spec,
                band_of(policy.bands(spec), trace.arrival_s[j], now),
                now - trace.arrival_s[j],
                now,
            )
            queued.remove(j)
            start[j] = now
            running.append(now + trace.service_s[j])
    return start


@pytest.mark.parametrize(
    "name,params",
    [
        ("fifo", {}),
        ("strict", {}),
        ("pct_slo", {}),
        ("edf", {}),
        ("slo_guard", {}),
        ("slo_guard", {"r_cap": 2.0, "guard_share": 0.3, "tier_bias": 0.5}),
        ("slo_ratchet", {}),
        ("slo_ratchet", {"ratchet": 0.7, "floor": 1.2, "guard_share": 0.3, "memory_s": 300.0}),
        ("slo_shadow", {}),
        ("slo_shadow", {"tail_target": 1.0, "step": 0.05, "attainment_scale": 1.0}),
    ],
)
@pytest.mark.parametrize("seed", range(6))
def test_replay_matches_reference(name, params, seed) -> None:
    rng = random.Random(seed)
    rows, t = [], 0.0
    for _ in range(150):
        t += rng.choice([0.0, rng.expovariate(1 / 40.0)])
        rows.append((round(t, 1), rng.choice(list(SPECS)), round(rng.uniform(20, 400), 1)))
    trace = make_trace(rows)
    capacity = [(0.0, 2), (rows[50][0] + 0.5, 4), (rows[100][0] + 0.5, 1)]
    tiers = [
        TierConfig(
            name=c.name,
            max_wait_s=c.max_wait_s / 20,
            weight=c.weight,
            shed_ratio=None if c.name == "api" or seed % 2 else 3.0,
        )
        for c in TIERS
    ]
    specs = tier_specs(tiers)
    for fair in (False, True):
        got = _replay(trace, capacity, make_policy(name, params), specs, fair_share=fair)
        want = reference_replay(trace, capacity, make_policy(name, params), specs, fair)
        assert got == pytest.approx(want, nan_ok=True), fair


def test_hand_checked_waits_and_metrics() -> None:
    # One slot. A free job arrives first and runs 100 s; then a free and an api job queue.
    trace = make_trace([(0.0, "free", 100.0), (10.0, "free", 50.0), (20.0, "api", 50.0)])
    strict = simulate(trace, [(0.0, 1)], make_policy("strict"))
    fifo = simulate(trace, [(0.0, 1)], make_policy("fifo"))
    # strict: api starts at 100 (wait 80), then free at 150 (wait 140).
    assert strict["tiers"]["api"]["wait_max_s"] == 80.0
    assert strict["tiers"]["free"]["wait_max_s"] == 140.0
    # fifo: free#2 at 100 (wait 90), api at 150 (wait 130 > 120 s SLO: a miss).
    assert fifo["tiers"]["api"]["wait_max_s"] == 130.0
    assert fifo["tiers"]["api"]["attainment"] == 0.0
    assert strict["tiers"]["api"]["attainment"] == 1.0
    # Utilisation over [0, last arrival = 20]: the one slot is busy the whole time.
    assert strict["overall"]["utilization"] == 1.0
    assert strict["jobs"] == 3 and strict["overall"]["served"] == 3
    for key in (
        "n",
        "served",
        "rejected",
        "wait_p50_s",
        "wait_p99_s",
        "wait_max_s",
        "attainment",
        "ratio_max",
        "ratio_p999",
        "weighted_attainment",
        "utilization",
    ):
        assert key in strict["overall"]


def test_capacity_drop_lets_running_jobs_finish() -> None:
    # Two slots, then one from t=5: both jobs started at 0 run on; the third waits for a
    # slot under the new capacity: at t=100 one finishes, leaving one running (= capacity 1),
    # so the third starts only when the second finishes at t=200.
    trace = make_trace([(0.0, "free", 100.0), (0.0, "free", 200.0), (1.0, "free", 10.0)])
    result = simulate(trace, [(0.0, 2), (5.0, 1)], make_policy("fifo"))
    assert result["tiers"]["free"]["wait_max_s"] == 199.0


def test_weighted_attainment_uses_tier_weights() -> None:
    # api (weight 5) met, free (weight 1) missed: 5 / 6.
    trace = make_trace([(0.0, "api", 8000.0), (0.0, "free", 1.0)])
    result = simulate(trace, [(0.0, 1)], make_policy("strict"))
    assert result["overall"]["weighted_attainment"] == pytest.approx(5 / 6)
    assert result["overall"]["attainment"] == 0.5


def test_lower_bound_is_below_every_policy() -> None:
    rng = random.Random(7)
    rows, t = [], 0.0
    for _ in range(3000):
        t += rng.expovariate(1 / 3.0)
        rows.append((t, rng.choice(list(SPECS)), rng.lognormvariate(3.5, 0.5)))
    trace = make_trace(rows)
    capacity = [(0.0, 6), (t / 2, 12)]
    bounds = []
    for name in ("fifo", "strict", "pct_slo", "edf", "slo_guard"):
        result = simulate(trace, capacity, make_policy(name))
        bounds.append(result["lower_bound_ratio_max"])
        assert result["lower_bound_ratio_max"] <= result["overall"]["ratio_max"] + 1e-9, name
    assert len(set(bounds)) == 1 and bounds[0] > 0


def test_lower_bound_zero_when_capacity_is_ample() -> None:
    import numpy as np

    arrival = np.array([0.0, 10.0, 20.0])
    assert fluid_lower_bound(arrival, np.ones(3), np.full(3, 60.0), [(0.0, 100)]) == 0.0
