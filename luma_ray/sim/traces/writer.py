"""The trace file format, written fast: ``trace.csv`` and ``capacity.csv`` in one folder.

Both generators (``launch_day``, ``gentd26``) hand their rows to :class:`TraceWriter` in
chunks of numpy arrays; the writer formats each chunk in one pass, writes it with one
``f.write``, checks the format's invariants on the way (sorted, non-negative arrivals, positive
service times) and returns a :class:`TraceSummary`. The simulator (``luma-ray simulate``) reads
what this writes; docs/traces.md is the contract.

Files are written under a temporary name and renamed when complete, so a folder never holds
half a trace next to a whole capacity file. Floats are written with exactly 3 decimals
(``%.3f``), which is deterministic across platforms: the same arrays give the same bytes.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from luma_ray.config import default_tiers
from luma_ray.errors import TraceError

TRACE_FILE = "trace.csv"
CAPACITY_FILE = "capacity.csv"
TRACE_HEADER = "arrival_s,tenant,tier,model,service_s"
CAPACITY_HEADER = "time_s,slots"

# Tier names in priority order, and the share of demand each gets (4/4/12/25/55 %). Both
# generators use this mix: launch-day per job, gentd26 per tenant.
TIERS: tuple[str, ...] = tuple(tier.name for tier in default_tiers())
TIER_SHARES: tuple[float, ...] = (0.04, 0.04, 0.12, 0.25, 0.55)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TraceSummary:
    """What a generator wrote; the CLI prints it after ``luma-ray trace ...``."""

    jobs: int  # data rows in trace.csv
    duration_s: float  # last arrival_s (the trace spans [0, duration_s])
    trace_path: Path  # DIR/trace.csv
    capacity_path: Path  # DIR/capacity.csv
    offered_load: float  # total service_s / available slot-seconds over [0, duration_s]
    skipped_rows: int = 0  # source rows left out (gentd26: unparsable gmt_create)


def format_decimal(value: float) -> str:
    """``value`` with at most 3 decimals and no trailing zeros: 0 → "0", 1.5 → "1.5"."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def slot_seconds(capacity: Sequence[tuple[float, int]], end_s: float) -> float:
    """Integral of the capacity step function over [0, end_s] (slot-seconds available)."""
    total = 0.0
    for i, (start_s, slots) in enumerate(capacity):
        stop_s = capacity[i + 1][0] if i + 1 < len(capacity) else math.inf
        span_s = min(stop_s, end_s) - start_s
        if span_s > 0:
            total += span_s * slots
    return total


def check_capacity(capacity: Sequence[tuple[float, int]]) -> None:
    """Raise TraceError unless ``capacity`` is a valid step function (see capacity.csv)."""
    if not capacity or capacity[0][0] != 0:
        raise TraceError("capacity: the first step must start at time_s = 0")
    for (t0, _), (t1, _) in zip(capacity, capacity[1:], strict=False):
        if not t1 > t0:
            raise TraceError(f"capacity: time_s must increase, got {t0} then {t1}")
    for t, slots in capacity:
        if not isinstance(slots, int) or slots < 0:
            raise TraceError(f"capacity: slots at time_s {t} must be an integer >= 0")


class TraceWriter(contextlib.AbstractContextManager["TraceWriter"]):
    """Streams a trace into ``out_dir``; use as a context manager, then call :meth:`finish`.

    Rows arrive in chunks (:meth:`write_rows`), each already sorted by arrival and not earlier
    than the previous chunk. Leaving the ``with`` block without :meth:`finish` (an error)
    removes the temporary files and keeps whatever the folder held before.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise TraceError(f"output path {self.out_dir} is a file; pass a folder")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.trace_path = self.out_dir / TRACE_FILE
        self.capacity_path = self.out_dir / CAPACITY_FILE
        self._tmp_trace = self.out_dir / (TRACE_FILE + ".tmp")
        self._tmp_capacity = self.out_dir / (CAPACITY_FILE + ".tmp")
        self._file = self._tmp_trace.open("w", encoding="utf-8", newline="")
        self._file.write(TRACE_HEADER + "\n")
        self._jobs = 0
        self._last_arrival_s = 0.0
        self._service_total_s = 0.0
        self._done = False

    def __exit__(self, *exc: object) -> None:
        if not self._file.closed:
            self._file.close()
        if not self._done:
            for path in (self._tmp_trace, self._tmp_capacity):
                path.unlink(missing_ok=True)

    def write_rows(
        self,
        arrival_s: FloatArray,
        tenant: Sequence[str],
        tier: Sequence[str],
        model: Sequence[str],
        service_s: FloatArray,
    ) -> None:
        """Append one chunk. Values are rounded to milliseconds before checks and writing."""
        arrival = np.round(np.asarray(arrival_s, dtype=np.float64), 3)
        service = np.round(np.asarray(service_s, dtype=np.float64), 3)
        n = len(arrival)
        if not len(tenant) == len(tier) == len(model) == len(service) == n:
            raise TraceError("trace chunk: all five columns must have the same length")
        if n == 0:
            return
        if not np.all(np.isfinite(arrival)) or arrival[0] < self._last_arrival_s:
            raise TraceError("trace chunk: arrival_s must be finite and not before earlier rows")
        if np.any(np.diff(arrival) < 0):
            raise TraceError("trace chunk: rows must be sorted by arrival_s")
        if not np.all(service > 0) or not np.all(np.isfinite(service)):
            raise TraceError("trace chunk: service_s must be finite and > 0 (at 3 decimals)")
        rows = zip(arrival.tolist(), tenant, tier, model, service.tolist(), strict=True)
        self._file.write("".join([f"{a:.3f},{t},{r},{m},{s:.3f}\n" for a, t, r, m, s in rows]))
        self._jobs += n
        self._last_arrival_s = float(arrival[-1])
        self._service_total_s += float(service.sum())

    def finish(self, capacity: Sequence[tuple[float, int]]) -> TraceSummary:
        """Write ``capacity.csv`` (``(time_s, slots)`` steps), publish both files, summarise."""
        check_capacity(capacity)
        self._file.close()
        lines = [CAPACITY_HEADER] + [f"{format_decimal(t)},{slots}" for t, slots in capacity]
        with self._tmp_capacity.open("w", encoding="utf-8", newline="") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(self._tmp_trace, self.trace_path)
        os.replace(self._tmp_capacity, self.capacity_path)
        self._done = True
        available = slot_seconds(capacity, self._last_arrival_s)
        if available > 0:
            load = self._service_total_s / available
        else:
            load = math.inf if self._service_total_s > 0 else 0.0
        return TraceSummary(
            jobs=self._jobs,
            duration_s=self._last_arrival_s,
            trace_path=self.trace_path,
            capacity_path=self.capacity_path,
            offered_load=load,
        )
