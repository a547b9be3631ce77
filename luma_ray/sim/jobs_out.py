"""Per-job output of a replay: ``luma-ray simulate --jobs-out FILE`` (README, "Simulate").

One row per job of the trace, in trace order, header
``arrival_s,tenant,tier,model,service_s,start_s,end_s,preemptions``: ``start_s`` is when the job
first started, ``end_s`` when it finished (``start_s + service_s`` without preemption), and
``preemptions`` how many times it was parked. A rejected job (admission control) has empty
``start_s`` and ``end_s``. Times have 3 decimals, like the trace. Any replay (the plain one, the
preemptive one) hands its own per-job arrays to :func:`write_jobs`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from luma_ray.errors import TraceError
from luma_ray.sim.traces.reader import Trace

JOBS_HEADER = "arrival_s,tenant,tier,model,service_s,start_s,end_s,preemptions"
_CHUNK_ROWS = 100_000


def _field(text: str) -> str:
    """A CSV field: quoted only when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _time(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def write_jobs(
    path: str | Path,
    trace: Trace,
    start_s: Sequence[float],
    end_s: Sequence[float] | None = None,
    preemptions: Sequence[int] | None = None,
) -> int:
    """Write one row per job of ``trace`` to ``path``; return the number of rows.

    ``start_s[i]`` is NaN for a rejected job. ``end_s`` None: ``start_s + service_s``;
    ``preemptions`` None: zeros. The file is written under a temporary name and renamed.
    """
    n = len(trace)
    if len(start_s) != n or (end_s is not None and len(end_s) != n):
        raise TraceError(f"jobs output: need {n} start and end times, one per job of the trace")
    if preemptions is not None and len(preemptions) != n:
        raise TraceError(f"jobs output: need {n} preemption counts, one per job of the trace")
    ends = (
        [s + p for s, p in zip(start_s, trace.service_s, strict=True)] if end_s is None else end_s
    )
    counts: Sequence[int] = [0] * n if preemptions is None else preemptions
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    rows = zip(
        trace.arrival_s,
        trace.tenant,
        trace.tier,
        trace.model,
        trace.service_s,
        start_s,
        ends,
        counts,
        strict=True,
    )
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(JOBS_HEADER + "\n")
            chunk: list[str] = []
            for a, tenant, tier, model, service, start, end, k in rows:
                started = not math.isnan(start)
                chunk.append(
                    f"{a:.3f},{_field(tenant)},{tier},{_field(model)},{service:.3f},"
                    f"{_time(start)},{_time(end) if started else ''},{int(k)}\n"
                )
                if len(chunk) >= _CHUNK_ROWS:
                    f.write("".join(chunk))
                    chunk.clear()
            f.write("".join(chunk))
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise TraceError(f"{path}: cannot write the jobs file ({err.strerror})") from None
    return n
