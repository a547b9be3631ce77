"""Replay of GenTD26, a real production diffusion-serving request log, as a luma_ray trace.

Called by ``luma-ray trace gentd26`` (and tests) to turn the packaged request log
(``data/gentd26_requests.csv``, provenance in ``data/SOURCE.md``) into ``trace.csv`` +
``capacity.csv`` for ``luma-ray simulate``. docs/traces.md has the mapping and a suggested
overload setting.

Mapping, per source row:

- ``arrival_s = (gmt_create - earliest gmt_create) / speedup`` (``gmt_create`` is
  ``YYYY-MM-DD HH:MM:SS``); rows whose ``gmt_create`` does not parse are skipped and counted
  (``TraceSummary.skipped_rows``, and a warning in the log).
- ``service_s = exec_time_seconds``, or ``MISSING_SERVICE_S`` (1 s) when it is empty,
  unparsable, not finite or <= 0. Service times are not compressed: ``speedup`` squeezes the
  gaps between requests, which raises the load.
- ``tenant = groupId`` and ``model = checkpoint_model_version_id`` (empty → ``unknown``).
- ``tier``: fixed per tenant, from the SHA-256 of the tenant id mapped onto the 4/4/12/25/55 %
  mix, so the same tenant gets the same tier in every run, on every machine.

Capacity is constant: one row ``0,slots``. Rows are sorted by arrival (stable: source order
breaks ties).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import math
import numbers
from bisect import bisect_right
from datetime import datetime
from itertools import accumulate
from pathlib import Path

import numpy as np

from luma_ray.errors import TraceError
from luma_ray.sim.traces.reader import ENCODING, not_utf8
from luma_ray.sim.traces.writer import TIER_SHARES, TIERS, TraceSummary, TraceWriter

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = Path(__file__).parent / "data" / "gentd26_requests.csv"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
COLUMNS = ("gmt_create", "exec_time_seconds", "groupId", "checkpoint_model_version_id")
MISSING_SERVICE_S = 1.0  # service time for rows with no usable exec_time_seconds
UNKNOWN = "unknown"  # tenant or model for rows where the id is empty
_TIER_BUCKETS = 10_000  # tier hash resolution: shares are exact to 0.01 %
_TIER_EDGES = [round(c * _TIER_BUCKETS) for c in accumulate(TIER_SHARES)]


def tier_for_tenant(tenant: str) -> str:
    """The tier of ``tenant``: stable across runs and machines (SHA-256, not ``hash()``)."""
    digest = hashlib.sha256(tenant.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % _TIER_BUCKETS
    return TIERS[min(bisect_right(_TIER_EDGES, bucket), len(TIERS) - 1)]


def _clean_id(value: str | None) -> str:
    """An id safe inside an unquoted CSV field; empty → ``unknown``."""
    text = (value or "").strip()
    for ch in ',"\r\n':
        text = text.replace(ch, "_")
    return text or UNKNOWN


def _service_s(value: str | None) -> float:
    try:
        service = float(value or "")
    except ValueError:
        return MISSING_SERVICE_S
    return service if math.isfinite(service) and service > 0 else MISSING_SERVICE_S


Rows = tuple[list[datetime], list[float], list[str], list[str], int]


def _read_rows(source: Path) -> Rows:
    """Parse the source CSV: (created, service_s, tenant, model, skipped row count)."""
    try:
        return _parse_rows(source)
    except UnicodeDecodeError:
        raise not_utf8(source) from None


def _parse_rows(source: Path) -> Rows:
    created: list[datetime] = []
    service: list[float] = []
    tenants: list[str] = []
    models: list[str] = []
    skipped = 0
    with source.open(newline="", encoding=ENCODING) as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(
                f"{source}: missing column(s) {', '.join(missing)}; "
                f"a GenTD26 CSV needs {', '.join(COLUMNS)}"
            )
        for row in reader:
            try:
                when = datetime.strptime((row["gmt_create"] or "").strip(), TIME_FORMAT)
            except ValueError:
                skipped += 1
                continue
            created.append(when)
            service.append(_service_s(row["exec_time_seconds"]))
            tenants.append(_clean_id(row["groupId"]))
            models.append(_clean_id(row["checkpoint_model_version_id"]))
    return created, service, tenants, models, skipped


def write_gentd26(
    out_dir: str | Path,
    speedup: float = 50.0,
    slots: int = 30,
    source: str | Path | None = None,
    seed: int = 0,
) -> TraceSummary:
    """Write the GenTD26 replay into ``out_dir`` (created if missing).

    ``speedup`` divides the gaps between requests (23 days / 50 ≈ 11 h), ``slots`` is the
    constant capacity. ``seed`` is accepted for a uniform CLI; the replay is deterministic.
    """
    del seed  # nothing random: the source fixes every value
    if not isinstance(speedup, (int, float)) or not math.isfinite(speedup) or speedup <= 0:
        raise TraceError(f"speedup must be a number > 0, got {speedup!r}; try 50")
    if isinstance(slots, bool) or not isinstance(slots, numbers.Integral) or slots < 1:
        raise TraceError(f"slots must be an integer >= 1, got {slots!r}; try 30")
    path = DEFAULT_SOURCE if source is None else Path(source)
    if not path.is_file():
        raise TraceError(f"source file {path} not found; pass the path to a GenTD26 CSV")
    created, service, tenants, models, skipped = _read_rows(path)
    if skipped:
        logger.warning("gentd26: skipped %d row(s) of %s: gmt_create unparsable", skipped, path)
    if not created:
        raise TraceError(f"{path}: no row has a gmt_create like 2024-11-15 16:57:50")
    first = min(created)
    offsets_s = np.array([(c - first).total_seconds() for c in created], dtype=np.float64)
    arrival = offsets_s / float(speedup)
    order = np.argsort(arrival, kind="stable")
    tier_of = {t: tier_for_tenant(t) for t in set(tenants)}
    idx = order.tolist()
    with TraceWriter(out_dir) as writer:
        writer.write_rows(
            arrival[order],
            [tenants[i] for i in idx],
            [tier_of[tenants[i]] for i in idx],
            [models[i] for i in idx],
            np.array(service, dtype=np.float64)[order],
        )
        summary = writer.finish([(0.0, int(slots))])
    return dataclasses.replace(summary, skipped_rows=skipped)
