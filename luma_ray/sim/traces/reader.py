"""Read and check trace and capacity CSV files (formats in docs/traces.md).

Every problem raises :class:`~luma_ray.errors.TraceError` with one line naming the file, the
row (1-based, the header is row 1) and the column, and saying what to fix. Files are UTF-8; a
byte order mark (spreadsheets write one) is skipped.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from luma_ray.errors import TraceError

TRACE_COLUMNS = ("arrival_s", "tenant", "tier", "model", "service_s")
STEPS_COLUMN = "steps"
"""Optional trace column: sampler steps per job (whole number >= 1), for preemption."""
CAPACITY_COLUMNS = ("time_s", "slots")
ENCODING = "utf-8-sig"
"""UTF-8, with or without a byte order mark."""


@dataclass
class Trace:
    """A trace as columns (fast to build and to replay); row i is job i."""

    arrival_s: list[float]
    tenant: list[str]
    tier: list[str]
    model: list[str]
    service_s: list[float]
    steps: list[int] | None = None
    """Sampler steps per job, if the trace has a ``steps`` column."""

    def __len__(self) -> int:
        return len(self.arrival_s)


def not_utf8(path: Path) -> TraceError:
    """The error for a file that does not decode as UTF-8: where its first bad byte is.

    Python decodes a text file a block at a time, so the line being read when decoding fails
    is not where the bad byte is; this reads the bytes again to find it."""
    found = _first_bad_byte(path)
    where = f" row {found[0]}: byte {found[1]}:" if found else ""
    return TraceError(
        f"{path}:{where} not UTF-8 text; save the file as UTF-8 (a spreadsheet's 'CSV UTF-8')"
    )


def _first_bad_byte(path: Path) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte that is not UTF-8; None if every byte is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes read before this block
    lines = 1
    try:
        with path.open("rb") as f:
            while True:
                block = f.read(1 << 20)
                pending = len(decoder.getstate()[0])  # an unfinished character's bytes
                try:
                    decoder.decode(block, final=not block)
                except UnicodeDecodeError as err:
                    data = err.object
                    return lines + data[: err.start].count(b"\n"), offset - pending + err.start
                if not block:
                    return None
                offset += len(block)
                lines += block.count(b"\n")
    except OSError:
        return None


def _open_rows(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> tuple[Iterator[list[str]], list[int], TextIO]:
    """The rows after the header, the index of each column (then of each ``optional`` one,
    -1 where absent) and the open file."""
    try:
        f = path.open(newline="", encoding=ENCODING)
    except OSError as err:
        raise TraceError(f"{path}: cannot open ({err.strerror}); check the path") from None
    reader = csv.reader(f)
    try:
        header = next(reader, None)
    except UnicodeDecodeError:
        f.close()
        raise not_utf8(path) from None
    if header is None:
        f.close()
        raise TraceError(f"{path}: file is empty; it needs the header {','.join(columns)}")
    header = [h.strip() for h in header]
    missing = [c for c in columns if c not in header]
    if missing:
        f.close()
        raise TraceError(
            f"{path}: row 1: missing column(s) {', '.join(missing)}; "
            f"the header must name {','.join(columns)}"
        )
    found = [header.index(c) for c in columns]
    return reader, found + [header.index(c) if c in header else -1 for c in optional], f


def _number(text: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}: row {row}: column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"{path}: row {row}: column {column}: {text!r} must be finite")
    return value


def read_trace(path: str | Path, tiers: Collection[str]) -> Trace:
    """Read a trace; arrivals must be >= 0 and sorted, services > 0, tiers known."""
    path = Path(path)
    reader, idx, f = _open_rows(path, TRACE_COLUMNS, (STEPS_COLUMN,))
    ia, it, itr, im, isv, ist = idx
    width = max(idx) + 1
    steps: list[int] | None = [] if ist >= 0 else None
    arrival: list[float] = []
    tenant: list[str] = []
    tier: list[str] = []
    model: list[str] = []
    service: list[float] = []
    known = frozenset(tiers)
    last = 0.0
    try:
        for row_no, row in enumerate(reader, start=2):
            if len(row) < width:
                if not row:
                    continue
                raise TraceError(
                    f"{path}: row {row_no}: has {len(row)} fields, expected {len(TRACE_COLUMNS)}"
                )
            try:
                a = float(row[ia])
                s = float(row[isv])
            except ValueError:
                a = _number(row[ia], path, row_no, "arrival_s")
                s = _number(row[isv], path, row_no, "service_s")
            if not (a >= last and s > 0 and a < math.inf and s < math.inf):
                _explain_bad_times(path, row_no, row[ia], row[isv], a, s, last)
            t = row[itr]
            if t not in known:
                raise TraceError(
                    f"{path}: row {row_no}: column tier: unknown tier {t!r}; "
                    f"use one of {', '.join(sorted(known))} or add it to --tiers"
                )
            if steps is not None:
                steps.append(_steps(row[ist], path, row_no))
            last = a
            arrival.append(a)
            service.append(s)
            tenant.append(row[it])
            tier.append(t)
            model.append(row[im])
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    finally:
        f.close()
    return Trace(arrival, tenant, tier, model, service, steps)


def _steps(text: str, path: Path, row: int) -> int:
    value = _number(text, path, row, STEPS_COLUMN)
    if value < 1 or value != int(value):
        raise TraceError(
            f"{path}: row {row}: column {STEPS_COLUMN}: {text!r} must be a whole number >= 1"
        )
    return int(value)


def _explain_bad_times(
    path: Path, row: int, a_text: str, s_text: str, a: float, s: float, last: float
) -> None:
    a = _number(a_text, path, row, "arrival_s")
    _number(s_text, path, row, "service_s")
    if a < 0:
        raise TraceError(
            f"{path}: row {row}: column arrival_s: {a_text} is negative; times start at 0"
        )
    if a < last:
        raise TraceError(
            f"{path}: row {row}: column arrival_s: {a_text} is before the previous row ({last:g}); "
            "sort the trace by arrival_s"
        )
    raise TraceError(f"{path}: row {row}: column service_s: {s_text} must be greater than 0")


def read_capacity(path: str | Path) -> list[tuple[float, int]]:
    """Read a capacity step function: rows ``(time_s, slots)``, times strictly increasing."""
    path = Path(path)
    reader, (it, isl), f = _open_rows(path, CAPACITY_COLUMNS)
    steps: list[tuple[float, int]] = []
    try:
        for row_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(it, isl):
                raise TraceError(f"{path}: row {row_no}: has {len(row)} fields, expected 2")
            t = _number(row[it], path, row_no, "time_s")
            n = _number(row[isl], path, row_no, "slots")
            if t < 0:
                raise TraceError(f"{path}: row {row_no}: column time_s: {row[it]} is negative")
            if steps and t <= steps[-1][0]:
                raise TraceError(
                    f"{path}: row {row_no}: column time_s: {row[it]} must be later than the "
                    "previous row; sort the file and drop duplicate times"
                )
            if n < 0 or n != int(n):
                raise TraceError(
                    f"{path}: row {row_no}: column slots: {row[isl]} must be a whole number >= 0"
                )
            steps.append((t, int(n)))
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    finally:
        f.close()
    if not steps:
        raise TraceError(f"{path}: no rows; add at least one 'time_s,slots' row such as '0,8'")
    if steps[0][0] > 0:
        steps.insert(0, (0.0, 0))
    return steps
