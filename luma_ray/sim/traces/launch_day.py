"""Synthetic launch-day trace: 48 hours of a video model launch, demand far over capacity.

Called by ``luma-ray trace launch-day`` (and by tests and benchmarks) to produce a
``trace.csv`` + ``capacity.csv`` pair for ``luma-ray simulate``. docs/traces.md has the story,
every knob below and the load curve they give.

Capacity: GPUs grow 500 → 5,000 → 9,000 (at 0 h, 4 h, 10 h), served as 8-GPU gangs, so
``slots = max(1, round(GPUs / 8 * scale))`` (Python's ``round``, half to even).

Arrivals: an inhomogeneous Poisson process with rate, t in hours::

    lambda(t) = base * diurnal(t) * (1 + spike(t) + surge(t))
    diurnal(t) = 1 + DIURNAL_AMPLITUDE * cos(2 pi (t - DIURNAL_PEAK_H) / 24)
    spike(t)   = SPIKE_AMPLITUDE * exp(-t / SPIKE_DECAY_H)
    surge(t)   = SURGE_AMPLITUDE * exp(-((t - SURGE_CENTER_H) / SURGE_WIDTH_H)^2 / 2)

``base`` is set so the expected number of jobs is exactly ``JOBS_AT_SCALE_1 * scale``.
Counts per ``BIN_S`` bin are Poisson; arrivals are uniform inside their bin. Each job draws a
tier (``TIER_SHARES``), a model (``MODELS``: share, log-normal service time) and a tenant of
its tier (Zipf popularity ``rank ** -TENANT_ZIPF_EXPONENT`` over a pool of
``max(1, round(TENANT_POOL[tier] * scale))`` tenants named ``<tier>-<rank:05d>``, rank 0 the
heaviest). Randomness is one ``numpy.random.Generator(PCG64(seed))``; no clock is read.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from luma_ray.errors import TraceError
from luma_ray.sim.traces.writer import TIER_SHARES, TIERS, TraceSummary, TraceWriter

HOUR_S = 3600.0

DURATION_S = 48 * HOUR_S  # the trace covers two days
JOBS_AT_SCALE_1 = 1_700_000  # expected jobs at scale 1.0 (scale 0.1 → ~170k; 1.2 → ~2M)
MAX_SCALE = 100.0  # larger scales would not fit in memory or time
BIN_S = 1.0  # Poisson counts per bin of this width; arrivals uniform inside a bin
CHUNK_ROWS = 250_000  # rows generated and written per chunk (bounds memory)

# (start hour, GPUs): the fleet grows as clusters are added; a slot is one gang.
GPU_SCHEDULE: tuple[tuple[float, int], ...] = ((0.0, 500), (4.0, 5_000), (10.0, 9_000))
GPUS_PER_SLOT = 8  # one job runs on an 8-GPU gang

# Shape of the arrival rate (hours). Launch at t = 0 (say 09:00 in the main market).
DIURNAL_AMPLITUDE = 0.4  # daily swing: rate x1.4 at the peak, x0.6 at the trough
DIURNAL_PEAK_H = 9.0  # daily peak 9 h after launch (evening); trough at 21 h and 45 h
SPIKE_AMPLITUDE = 1.2  # launch spike adds 120 % of base at t = 0 (≈ 17x the 0 h capacity)
SPIKE_DECAY_H = 3.0  # e-folding time of the launch spike
SURGE_AMPLITUDE = 1.5  # second surge (a viral moment) adds up to 150 % of base
SURGE_CENTER_H = 26.0  # ... centred 26 h after launch (mid-morning of day 2)
SURGE_WIDTH_H = 2.5  # ... Gaussian standard deviation

# name → (share of jobs, median service_s, log-normal sigma). Mean service ≈ 85 s.
MODELS: dict[str, tuple[float, float, float]] = {
    "video-std": (0.75, 50.0, 0.5),
    "video-hd": (0.25, 150.0, 0.5),
}
MIN_SERVICE_S = 0.001  # floor so every written service_s is > 0

# Tenants per tier at scale 1.0 (scaled, at least 1). Zipf exponent 0.8 puts ~30 % of a
# large tier's jobs on its top 1 % of tenants (GenTD26 measures 27.7 %).
TENANT_POOL: dict[str, int] = {
    "api": 200,
    "enterprise": 200,
    "unlimited": 4_000,
    "light": 20_000,
    "free": 100_000,
}
TENANT_ZIPF_EXPONENT = 0.8


def gpu_capacity(scale: float) -> list[tuple[float, int]]:
    """Capacity steps ``(time_s, slots)`` at ``scale``: GPUs / 8 * scale, rounded, >= 1."""
    return [
        (hour * HOUR_S, max(1, round(gpus / GPUS_PER_SLOT * scale))) for hour, gpus in GPU_SCHEDULE
    ]


def rate_shape(t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``lambda(t) / base`` at times ``t_s`` (seconds); see the module docstring."""
    t_h = t_s / HOUR_S
    diurnal = 1.0 + DIURNAL_AMPLITUDE * np.cos(2.0 * np.pi * (t_h - DIURNAL_PEAK_H) / 24.0)
    spike = SPIKE_AMPLITUDE * np.exp(-t_h / SPIKE_DECAY_H)
    surge = SURGE_AMPLITUDE * np.exp(-0.5 * ((t_h - SURGE_CENTER_H) / SURGE_WIDTH_H) ** 2)
    return np.asarray(diurnal * (1.0 + spike + surge), dtype=np.float64)


def arrival_rate(scale: float) -> npt.NDArray[np.float64]:
    """Expected arrivals per bin (bin i covers [i * BIN_S, (i + 1) * BIN_S))."""
    n_bins = int(round(DURATION_S / BIN_S))
    mids = (np.arange(n_bins, dtype=np.float64) + 0.5) * BIN_S
    shape = rate_shape(mids)
    return np.asarray(shape * (JOBS_AT_SCALE_1 * scale / shape.sum()), dtype=np.float64)


def _tenant_tables(scale: float) -> tuple[list[str], list[int], list[npt.NDArray[np.float64]]]:
    """All tenant names, each tier's offset into them, and each tier's popularity CDF."""
    names: list[str] = []
    offsets: list[int] = []
    cdfs: list[npt.NDArray[np.float64]] = []
    for tier in TIERS:
        pool = max(1, round(TENANT_POOL[tier] * scale))
        offsets.append(len(names))
        names.extend(f"{tier}-{rank:05d}" for rank in range(pool))
        weights = np.arange(1, pool + 1, dtype=np.float64) ** -TENANT_ZIPF_EXPONENT
        cdf = np.cumsum(weights)
        cdfs.append(cdf / cdf[-1])
    return names, offsets, cdfs


def _chunk_bounds(counts: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """Split bins into consecutive ranges of about CHUNK_ROWS arrivals each."""
    cum = np.cumsum(counts)
    cuts = np.searchsorted(cum, np.arange(CHUNK_ROWS, int(cum[-1]), CHUNK_ROWS), side="left")
    edges = [0, *sorted({int(c) + 1 for c in cuts}), len(counts)]
    return [(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False) if hi > lo]


def write_launch_day(out_dir: str | Path, scale: float = 1.0, seed: int = 0) -> TraceSummary:
    """Write the launch-day trace and capacity into ``out_dir`` (created if missing).

    ``scale`` multiplies demand and capacity together (1.0: ~1.7M jobs, up to 1,125 slots), so
    the load curve is the same at every scale. Same ``scale`` and ``seed``: identical bytes.
    """
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise TraceError(f"scale must be a number in (0, {MAX_SCALE:g}], got {scale!r}")
    if not 0 < scale <= MAX_SCALE:
        raise TraceError(f"scale must be in (0, {MAX_SCALE:g}], got {scale}; try 1.0 or 0.1")
    rng = np.random.Generator(np.random.PCG64(seed))
    counts = rng.poisson(arrival_rate(scale)).astype(np.int64)
    names, offsets, cdfs = _tenant_tables(scale)
    tier_cdf = np.cumsum(TIER_SHARES) / sum(TIER_SHARES)
    model_names = list(MODELS)
    model_cdf = np.cumsum([share for share, _, _ in MODELS.values()])
    model_cdf /= model_cdf[-1]
    log_medians = np.log([median for _, median, _ in MODELS.values()])
    sigmas = np.array([sigma for _, _, sigma in MODELS.values()])
    with TraceWriter(out_dir) as writer:
        for lo, hi in _chunk_bounds(counts) if counts.sum() > 0 else []:
            chunk = counts[lo:hi]
            n = int(chunk.sum())
            starts = np.repeat(np.arange(lo, hi, dtype=np.float64) * BIN_S, chunk)
            arrival = np.sort(starts + rng.random(n) * BIN_S)
            tier_idx = np.searchsorted(tier_cdf, rng.random(n), side="right")
            tier_idx = np.minimum(tier_idx, len(TIERS) - 1)
            model_idx = np.minimum(
                np.searchsorted(model_cdf, rng.random(n), side="right"), len(model_names) - 1
            )
            service = np.exp(log_medians[model_idx] + sigmas[model_idx] * rng.standard_normal(n))
            service = np.maximum(service, MIN_SERVICE_S)
            tenant_code = np.empty(n, dtype=np.int64)
            u = rng.random(n)
            for k, cdf in enumerate(cdfs):
                mask = tier_idx == k
                rank = np.minimum(np.searchsorted(cdf, u[mask], side="right"), len(cdf) - 1)
                tenant_code[mask] = offsets[k] + rank
            writer.write_rows(
                arrival,
                [names[i] for i in tenant_code.tolist()],
                [TIERS[i] for i in tier_idx.tolist()],
                [model_names[i] for i in model_idx.tolist()],
                service,
            )
        return writer.finish(gpu_capacity(scale))
