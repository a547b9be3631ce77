"""The distribution of scenario days, and one day's drawn parameters (:class:`ScenarioSpec`).

``scenarios.py`` writes a spec's trace; docs/traces.md, "scenarios", documents every range
below. Scenario ``scenario-<seed>`` is drawn from ``numpy.random.Generator(PCG64(seed))``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from luma_ray.errors import TraceError
from luma_ray.sim.traces.writer import TIER_SHARES, TIERS

HOUR_S = 3600.0
DURATION_S = 24 * HOUR_S
BIN_S = 1.0  # Poisson counts per 1-second bin; arrivals uniform inside a bin
MAX_SCALE = 10.0

# The distribution (docs/traces.md has the same table). U[a, b]: uniform.
JOBS_RANGE = (60_000, 160_000)  # expected jobs without the flood, at scale 1
DIURNAL_AMPLITUDE_RANGE = (0.2, 0.5)
SURGE_COUNT_RANGE = (1, 4)  # surges per day, uniform over the integers
SURGE_CENTER_RANGE_H = (0.5, 22.0)
SURGE_HEIGHT_RANGE = (1.0, 4.0)  # adds this many times the base rate at the surge's peak
SURGE_WIDTH_RANGE_H = (0.3, 2.5)  # Gaussian standard deviation
LOAD_RANGE = (0.7, 0.95)  # mean demand (without the flood) over full capacity
CAPACITY_KINDS = ("fast", "slow", "stepwise", "cluster_lost")
TIER_CONCENTRATION = 40.0  # Dirichlet(40 x default shares): each share varies about +-30 %
# name -> (Dirichlet weight of its share, median service_s range, log-normal sigma)
MODELS: dict[str, tuple[float, tuple[float, float], float]] = {
    "image": (2.0, (3.0, 12.0), 0.4),
    "video-std": (4.0, (40.0, 60.0), 0.5),
    "video-hd": (2.5, (120.0, 180.0), 0.5),
    "video-4k": (1.0, (400.0, 900.0), 0.4),
}
TENANT_POOL: dict[str, int] = {  # tenants per tier at scale 1 (scaled, at least 1)
    "api": 20,
    "enterprise": 20,
    "unlimited": 400,
    "light": 2_000,
    "free": 10_000,
}
ZIPF_RANGE = (0.6, 1.2)
FLOOD_PROBABILITY = 0.5
FLOOD_TIER_WEIGHTS = (0.1, 0.1, 0.2, 0.25, 0.35)  # per tier, in TIERS order
FLOOD_FACTOR_RANGE = (2.0, 20.0)  # log-uniform: the flooder sends this x its tier's volume
FLOOD_DURATION_RANGE_H = (0.5, 2.0)
FLOOD_START_RANGE_H = (0.0, 20.0)
FLOOD_TOP_RANKS = 20  # the flooder is one of its tier's 20 heaviest tenants


@dataclass(frozen=True)
class Surge:
    center_h: float
    height: float
    width_h: float


@dataclass(frozen=True)
class Model:
    name: str
    share: float
    median_s: float
    sigma: float


@dataclass(frozen=True)
class Flood:
    tier: str
    tenant: str
    factor: float  # the flooder's rate over its tier's normal rate, inside the window
    start_h: float
    duration_h: float


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything drawn for one scenario; ``scenario.json`` holds it."""

    name: str
    seed: int
    scale: float
    jobs: int  # expected jobs without the flood
    diurnal_amplitude: float
    diurnal_peak_h: float
    surges: tuple[Surge, ...]
    load: float
    capacity_kind: str
    full_slots: int  # from the mean demand and the load, before calibration
    capacity_shape: tuple[tuple[float, float], ...]  # (hour, fraction of full slots) steps
    tier_shares: tuple[float, ...]
    models: tuple[Model, ...]
    zipf_exponent: float
    flood: Flood | None

    @property
    def mean_service_s(self) -> float:
        return sum(m.share * m.median_s * math.exp(m.sigma**2 / 2) for m in self.models)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return round(float(rng.uniform(*bounds)), 4)


def _capacity_shape(rng: np.random.Generator, kind: str) -> tuple[tuple[float, float], ...]:
    """Capacity steps ``(hour, fraction of full)`` for a ramp ``kind``."""
    if kind == "fast":  # clusters come up within 0.5-2 h
        steps = [(0.0, rng.uniform(0.25, 0.5)), (rng.uniform(0.5, 2.0), 1.0)]
    elif kind == "slow":  # six equal steps over 6-12 h
        f0, end = rng.uniform(0.1, 0.3), rng.uniform(6.0, 12.0)
        steps = [(end * k / 6, f0 + (1 - f0) * k / 6) for k in range(7)]
    elif kind == "stepwise":  # 2-4 steps up at random times in 1-12 h
        m = int(rng.integers(2, 5))
        f0 = rng.uniform(0.1, 0.3)
        times = np.sort(rng.uniform(1.0, 12.0, m))
        levels = np.sort(rng.uniform(f0, 1.0, m))
        levels[-1] = 1.0
        steps = [(0.0, f0)] + [(float(t), float(v)) for t, v in zip(times, levels, strict=True)]
    else:  # cluster_lost: a fast ramp, then 30-60 % of the fleet lost for 2-6 h
        up = rng.uniform(0.5, 2.0)
        lost_at, lost_for = rng.uniform(4.0, 18.0), rng.uniform(2.0, 6.0)
        kept = 1.0 - rng.uniform(0.3, 0.6)
        steps = [
            (0.0, rng.uniform(0.25, 0.5)),
            (up, 1.0),
            (lost_at, kept),
            (lost_at + lost_for, 1.0),
        ]
    return tuple((round(float(h), 4), round(float(f), 4)) for h, f in steps)


def capacity_steps(shape: tuple[tuple[float, float], ...], full: int) -> list[tuple[float, int]]:
    """``(time_s, slots)`` steps: each fraction of ``full`` rounded, at least 1 slot."""
    out: list[tuple[float, int]] = []
    for hour, fraction in shape:
        slots = max(1, round(fraction * full))
        if not out or slots != out[-1][1]:
            out.append((round(hour * HOUR_S, 3) if out else 0.0, slots))
    return out


def draw_spec(seed: int, scale: float = 1.0) -> ScenarioSpec:
    """Draw scenario ``scenario-<seed>`` from the documented distribution."""
    check_scale(scale)
    rng = np.random.Generator(np.random.PCG64(seed))
    jobs = round(float(rng.uniform(*JOBS_RANGE)) * scale)
    amplitude = _uniform(rng, DIURNAL_AMPLITUDE_RANGE)
    peak = _uniform(rng, (0.0, 24.0))
    n_surges = int(rng.integers(SURGE_COUNT_RANGE[0], SURGE_COUNT_RANGE[1] + 1))
    surges = tuple(
        sorted(
            (
                Surge(
                    _uniform(rng, SURGE_CENTER_RANGE_H),
                    _uniform(rng, SURGE_HEIGHT_RANGE),
                    _uniform(rng, SURGE_WIDTH_RANGE_H),
                )
                for _ in range(n_surges)
            ),
            key=lambda s: s.center_h,
        )
    )
    shares = rng.dirichlet(TIER_CONCENTRATION * np.array(TIER_SHARES))
    weights = np.array([w for w, _, _ in MODELS.values()])
    model_shares = rng.dirichlet(2.0 * weights / weights.mean())
    models = tuple(
        Model(name, round(float(share), 4), _uniform(rng, median), sigma)
        for (name, (_, median, sigma)), share in zip(MODELS.items(), model_shares, strict=True)
    )
    zipf = _uniform(rng, ZIPF_RANGE)
    load = _uniform(rng, LOAD_RANGE)
    kind = CAPACITY_KINDS[int(rng.integers(len(CAPACITY_KINDS)))]
    flood = None
    if rng.random() < FLOOD_PROBABILITY:
        tier_k = int(rng.choice(len(TIERS), p=np.array(FLOOD_TIER_WEIGHTS)))
        pool = tenant_pool(TIERS[tier_k], scale)
        rank = int(rng.integers(min(pool, FLOOD_TOP_RANKS)))
        lo, hi = FLOOD_FACTOR_RANGE
        flood = Flood(
            tier=TIERS[tier_k],
            tenant=f"{TIERS[tier_k]}-{rank:05d}",
            factor=round(float(math.exp(rng.uniform(math.log(lo), math.log(hi)))), 3),
            start_h=_uniform(rng, FLOOD_START_RANGE_H),
            duration_h=_uniform(rng, FLOOD_DURATION_RANGE_H),
        )
    spec = ScenarioSpec(
        name=f"scenario-{seed}",
        seed=seed,
        scale=scale,
        jobs=jobs,
        diurnal_amplitude=amplitude,
        diurnal_peak_h=peak,
        surges=surges,
        load=load,
        capacity_kind=kind,
        full_slots=0,
        capacity_shape=_capacity_shape(rng, kind),
        tier_shares=tuple(round(float(s), 4) for s in shares),
        models=models,
        zipf_exponent=zipf,
        flood=flood,
    )
    full = max(1, round(jobs * spec.mean_service_s / DURATION_S / load))
    return dataclasses.replace(spec, full_slots=full)


def tenant_pool(tier: str, scale: float) -> int:
    return max(1, round(TENANT_POOL[tier] * scale))


def rate_shape(spec: ScenarioSpec, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The arrival rate over its base at times ``t_s``: diurnal x (1 + surges)."""
    t_h = t_s / HOUR_S
    shape = 1.0 + spec.diurnal_amplitude * np.cos(2 * np.pi * (t_h - spec.diurnal_peak_h) / 24)
    bump = np.zeros_like(t_h)
    for s in spec.surges:
        bump += s.height * np.exp(-0.5 * ((t_h - s.center_h) / s.width_h) ** 2)
    return np.asarray(shape * (1.0 + bump), dtype=np.float64)


def check_scale(scale: float) -> None:
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise TraceError(f"scale must be a number in (0, {MAX_SCALE:g}], got {scale!r}")
    if not 0 < scale <= MAX_SCALE:
        raise TraceError(f"scale must be in (0, {MAX_SCALE:g}], got {scale:g}; try 1 or 0.1")
