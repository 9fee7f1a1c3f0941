"""What time spans an output already holds: coverage intervals and the small state file beside it.

Coverage is a list of closed intervals of epoch seconds. A run fetches only the grid points of its
range outside them, then records its whole range as covered, up to the latest timestamp the output
holds (so a range Prometheus had no data for yet is asked again next time). The state file also
records the rows and the time span of the output it describes; when it does not match the output
(e.g. the run was cut off between writing the data and the state), the output's own span is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.atomic import write_text
from components.contracts import TIMESTAMP

STATE_VERSION = 1
STATE_NAME = "_collect_state.json"

Interval = tuple[int, int]


@dataclass(frozen=True)
class OutputState:
    """Coverage of an output and the fingerprint of the data it was recorded with."""

    covered: tuple[Interval, ...]
    rows: int
    first: int | None
    last: int | None

    def matches(self, rows: int, first: int | None, last: int | None) -> bool:
        """Whether the state describes data with this row count and span."""
        return (self.rows, self.first, self.last) == (rows, first, last)


def state_path(output: Path) -> Path:
    """Where the state of ``output`` lives: inside a folder, beside a single file.

    The name starts with ``_`` or ``.``, so table readers (this project's and pyarrow's
    datasets) skip it.
    """
    if output.suffix.lower() in (".parquet", ".csv"):
        return output.with_name(f".{output.name}.collect.json")
    return output / STATE_NAME


def read_state(output: Path) -> OutputState | None:
    """The recorded state of ``output``, or None when missing or unreadable."""
    try:
        document = json.loads(state_path(output).read_text())
        if document.get("version") != STATE_VERSION:
            return None
        covered = tuple((int(lo), int(hi)) for lo, hi in document["covered"])
        first, last = document["first"], document["last"]
        return OutputState(
            covered=covered,
            rows=int(document["rows"]),
            first=None if first is None else int(first),
            last=None if last is None else int(last),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(output: Path, state: OutputState) -> None:
    """Write the state file atomically (a temporary file renamed over it)."""
    target = state_path(output)
    document = {
        "version": STATE_VERSION,
        "covered": [list(interval) for interval in state.covered],
        "rows": state.rows,
        "first": state.first,
        "last": state.last,
    }
    write_text(target, json.dumps(document, indent=1) + "\n")


def merge_intervals(intervals: list[Interval], join_gap: int = 1) -> tuple[Interval, ...]:
    """Sorted union of closed intervals; two are joined when the gap between is <= ``join_gap``."""
    merged: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo - merged[-1][1] <= join_gap:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def missing_ranges(
    covered: tuple[Interval, ...] | list[Interval], first: int, last: int, step: int
) -> list[Interval]:
    """The grid points of ``[first, last]`` outside ``covered``, as closed ranges on the grid.

    Args:
        covered: closed intervals of epoch seconds already collected.
        first: first grid point wanted (a multiple of ``step``).
        last: last grid point wanted (a multiple of ``step``).
        step: grid step in seconds.
    """
    pieces = [(first, last)] if first <= last else []
    for lo, hi in merge_intervals(list(covered)):
        kept = []
        for a, b in pieces:
            if hi < a or lo > b:
                kept.append((a, b))
                continue
            before = (lo - 1) // step * step
            if a <= before:
                kept.append((a, min(b, before)))
            after = -(-(hi + 1) // step) * step
            if after <= b:
                kept.append((max(a, after), b))
        pieces = kept
    return pieces


def parquet_fingerprint(output: Path) -> tuple[int, int | None, int | None] | None:
    """Rows and first/last epoch second of a parquet output, from file metadata alone.

    Lets a run that has nothing to fetch skip reading the data. None when that cannot be told
    cheaply (CSV files, no statistics, unreadable files).
    """
    if output.is_dir():
        files = [p for p in output.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    elif output.suffix.lower() == ".parquet" and output.is_file():
        files = [output]
    else:
        return None
    rows, first, last = 0, None, None
    try:
        for file in files:
            if file.suffix.lower() != ".parquet":
                return None
            metadata = pq.read_metadata(file)
            rows += metadata.num_rows
            column = metadata.schema.to_arrow_schema().get_field_index(TIMESTAMP)
            if column < 0:
                return None
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(column).statistics
                if metadata.row_group(group).num_rows == 0:
                    continue
                if stats is None or not stats.has_min_max:
                    return None
                low = int(pd.Timestamp(stats.min).timestamp())
                high = int(pd.Timestamp(stats.max).timestamp())
                first = low if first is None else min(first, low)
                last = high if last is None else max(last, high)
    except (OSError, ValueError, pa.ArrowException):
        return None
    return rows, first, last
