"""Scenario days: a family of varied 24-hour overload days drawn from one distribution.

Called by ``luma-ray trace scenarios`` (and the policy sweep) to write, for each scenario,
``DIR/<name>/trace.csv`` + ``capacity.csv`` (the usual formats, via :class:`TraceWriter`) and
``DIR/<name>/scenario.json`` (the drawn :class:`ScenarioSpec` and what was written).
docs/traces.md, "scenarios", documents the distribution; its ranges are constants in
``scenario_spec.py``.

Scenario ``k`` of ``--seed S`` is drawn from seed ``S + k`` alone and named
``scenario-<S + k>``: ``--seed 1000 --count 10`` and ``--seed 1005 --count 5`` write the same
``scenario-1005``, and a policy tuned on seeds 1000-1009 is judged on seeds 2026 and up.

Each day: an inhomogeneous Poisson process (diurnal cycle times one plus 1-4 Gaussian surges),
a tier mix and a service-time mix drawn around the defaults, Zipf tenants, sometimes one
tenant flooding its tier at 2-20x the tier's volume for a while, and a capacity that ramps
(fast, slow, stepwise) or loses a cluster for hours. Full capacity is set from the day's mean
demand and a drawn load, so every day overloads at its peaks without being hopeless.
Pure numpy; randomness from one ``numpy.random.Generator(PCG64(seed))`` per scenario.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from luma_ray.config import default_tiers
from luma_ray.errors import TraceError
from luma_ray.sim.bounds import fluid_lower_bound
from luma_ray.sim.traces.scenario_spec import (
    BIN_S,
    CAPACITY_KINDS,
    DIURNAL_AMPLITUDE_RANGE,
    DURATION_S,
    FLOOD_DURATION_RANGE_H,
    FLOOD_FACTOR_RANGE,
    HOUR_S,
    JOBS_RANGE,
    LOAD_RANGE,
    MODELS,
    SURGE_CENTER_RANGE_H,
    SURGE_COUNT_RANGE,
    SURGE_HEIGHT_RANGE,
    SURGE_WIDTH_RANGE_H,
    ZIPF_RANGE,
    Flood,
    Model,
    ScenarioSpec,
    Surge,
    capacity_steps,
    check_scale,
    draw_spec,
    rate_shape,
    tenant_pool,
)
from luma_ray.sim.traces.writer import TIERS, TraceSummary, TraceWriter

__all__ = [
    "BOUND_RANGE",
    "CAPACITY_KINDS",
    "DIURNAL_AMPLITUDE_RANGE",
    "DURATION_S",
    "FLOOD_DURATION_RANGE_H",
    "FLOOD_FACTOR_RANGE",
    "JOBS_RANGE",
    "LOAD_RANGE",
    "MODELS",
    "SURGE_CENTER_RANGE_H",
    "SURGE_COUNT_RANGE",
    "SURGE_HEIGHT_RANGE",
    "SURGE_WIDTH_RANGE_H",
    "ZIPF_RANGE",
    "Flood",
    "Model",
    "ScenarioSpec",
    "Surge",
    "calibrate",
    "draw_spec",
    "write_scenario",
    "write_scenarios",
]

CHUNK_ROWS = 250_000
MAX_COUNT = 1000
SPEC_FILE = "scenario.json"
BOUND_RANGE = (1.0, 30.0)  # calibrated: the lower bound on max wait/SLO lands in here
CALIBRATION_STEP = 0.15  # full capacity moves by 15 % per calibration step
CALIBRATION_LIMIT = 20


def _arrivals(rng: np.random.Generator, rate: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    counts = rng.poisson(rate)
    starts = np.repeat(np.arange(len(rate), dtype=np.float64) * BIN_S, counts)
    return np.asarray(np.sort(starts + rng.random(len(starts)) * BIN_S), dtype=np.float64)


def _jobs(
    rng: np.random.Generator,
    spec: ScenarioSpec,
    arrival: npt.NDArray[np.float64],
    tier_idx: npt.NDArray[np.int64],
) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Tenant, model index and service time of each job."""
    n = len(arrival)
    model_cdf = np.cumsum([m.share for m in spec.models])
    model_cdf /= model_cdf[-1]
    model_idx = np.minimum(
        np.searchsorted(model_cdf, rng.random(n), side="right"), len(spec.models) - 1
    )
    log_median = np.log([m.median_s for m in spec.models])[model_idx]
    sigma = np.array([m.sigma for m in spec.models])[model_idx]
    service = np.maximum(np.exp(log_median + sigma * rng.standard_normal(n)), 0.001)
    tenant = np.empty(n, dtype=object)
    u = rng.random(n)
    for k, tier in enumerate(TIERS):
        mask = tier_idx == k
        pool = tenant_pool(tier, spec.scale)
        cdf = np.cumsum(np.arange(1, pool + 1, dtype=np.float64) ** -spec.zipf_exponent)
        rank = np.minimum(np.searchsorted(cdf / cdf[-1], u[mask], side="right"), pool - 1)
        names = np.array([f"{tier}-{r:05d}" for r in range(pool)], dtype=object)
        tenant[mask] = names[rank]
    return list(tenant), model_idx, np.asarray(service, dtype=np.float64)


def write_scenario(out_dir: str | Path, spec: ScenarioSpec) -> TraceSummary:
    """Write ``spec``'s trace, capacity and ``scenario.json`` into ``out_dir``."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([spec.seed, 1])))
    n_bins = int(DURATION_S / BIN_S)
    mids = (np.arange(n_bins, dtype=np.float64) + 0.5) * BIN_S
    shape = rate_shape(spec, mids)
    rate = shape * (spec.jobs / shape.sum())
    arrival = _arrivals(rng, rate)
    tier_cdf = np.cumsum(spec.tier_shares) / sum(spec.tier_shares)
    tier_idx = np.minimum(
        np.searchsorted(tier_cdf, rng.random(len(arrival)), side="right"), len(TIERS) - 1
    )
    tenant, model_idx, service = _jobs(rng, spec, arrival, tier_idx)
    flooded = 0
    if spec.flood is not None:
        f = spec.flood
        k = TIERS.index(f.tier)
        inside = (mids >= f.start_h * HOUR_S) & (mids < (f.start_h + f.duration_h) * HOUR_S)
        extra = _arrivals(rng, np.where(inside, rate * spec.tier_shares[k] * f.factor, 0.0))
        flooded = len(extra)
        extra_tier = np.full(flooded, k, dtype=np.int64)
        _, extra_model, extra_service = _jobs(rng, spec, extra, extra_tier)
        arrival = np.concatenate([arrival, extra])
        tier_idx = np.concatenate([tier_idx, extra_tier])
        model_idx = np.concatenate([model_idx, extra_model])
        service = np.concatenate([service, extra_service])
        tenant = tenant + [f.tenant] * flooded
    order = np.argsort(arrival, kind="stable")
    arrival, service = np.round(arrival[order], 3), np.round(service[order], 3)
    tier_idx, model_idx = tier_idx[order], model_idx[order]
    slo = np.array([t.max_wait_s for t in default_tiers()])[tier_idx]
    full, bound, steps = calibrate(spec, arrival, service, slo)
    capacity = capacity_steps(spec.capacity_shape, full)
    names = [m.name for m in spec.models]
    with TraceWriter(out_dir) as writer:
        for lo in range(0, len(order), CHUNK_ROWS):
            rows = slice(lo, lo + CHUNK_ROWS)
            writer.write_rows(
                arrival[rows],
                [tenant[i] for i in order[rows].tolist()],
                [TIERS[i] for i in tier_idx[rows].tolist()],
                [names[i] for i in model_idx[rows].tolist()],
                service[rows],
            )
        summary = writer.finish(capacity)
    record = {
        "spec": dataclasses.asdict(spec),
        "written": {
            "jobs": summary.jobs,
            "flood_jobs": flooded,
            "duration_s": summary.duration_s,
            "offered_load": round(summary.offered_load, 4),
            "mean_service_s": round(spec.mean_service_s, 3),
            "full_slots": full,
            "calibration_steps": steps,
            "capacity": capacity,
            "lower_bound_ratio_max": bound,
        },
    }
    path = Path(out_dir) / SPEC_FILE
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return summary


def calibrate(
    spec: ScenarioSpec,
    arrival: npt.NDArray[np.float64],
    service: npt.NDArray[np.float64],
    slo: npt.NDArray[np.float64],
) -> tuple[int, float, int]:
    """Full slots that put the lower bound on max wait/SLO inside ``BOUND_RANGE``.

    Starts from ``spec.full_slots``; while the bound is below the range, full capacity drops
    by ``CALIBRATION_STEP`` (15 %), while above it, rises by as much, at most
    ``CALIBRATION_LIMIT`` times. Returns (full slots, the bound, steps taken)."""
    full = spec.full_slots
    bound = fluid_lower_bound(arrival, service, slo, capacity_steps(spec.capacity_shape, full))
    steps = 0
    while steps < CALIBRATION_LIMIT:
        if bound < BOUND_RANGE[0] and full > 1:
            full = max(1, math.floor(full * (1 - CALIBRATION_STEP)))
        elif bound > BOUND_RANGE[1]:
            full = math.ceil(full * (1 + CALIBRATION_STEP))
        else:
            break
        steps += 1
        capacity = capacity_steps(spec.capacity_shape, full)
        bound = fluid_lower_bound(arrival, service, slo, capacity)
    return full, bound, steps


def write_scenarios(
    out_dir: str | Path, count: int, seed: int, scale: float = 1.0
) -> list[tuple[ScenarioSpec, TraceSummary]]:
    """Write scenarios ``seed .. seed + count - 1`` into ``out_dir/scenario-<seed + k>/``."""
    check_arguments(count, seed, scale)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TraceError(f"output path {out} is a file; pass a folder")
    written = []
    for k in range(count):
        spec = draw_spec(seed + k, scale)
        written.append((spec, write_scenario(out / spec.name, spec)))
    return written


def check_arguments(count: Any, seed: Any, scale: Any) -> None:
    """One-line TraceErrors for arguments outside their ranges."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise TraceError(f"count must be a whole number from 1 to {MAX_COUNT}, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TraceError(f"seed must be a whole number >= 0, got {seed!r}")
    check_scale(scale)
