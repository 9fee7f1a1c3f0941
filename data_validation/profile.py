"""Node metrics as the gate sees them: the raw table, and the per-node summary it validates.

The gate must see data that :func:`components.contracts.read_node_metrics` would reject (NaN,
out-of-range values, duplicates, clock jumps), so :func:`load_raw_node_metrics` reads the files
with pandas and pyarrow directly, keeping the rows in file order. :func:`summarize_nodes` then
reduces the table to one row per node (row counts, null ratios, value ranges, duplicates, steps,
gaps, backward jumps, freshness) with numpy, so that the per-node expectation suite runs on a
table of one row per node: a failing row there is a failing node, whatever the size of the data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    table_files,
)
from components.errors import MlschedError
from data_validation.thresholds import Thresholds

UTILIZATION_COLUMNS = (CPU_UTILIZATION, MEMORY_UTILIZATION)
PARTITION_COLUMN = "date"  # the day-partition key of partitioned parquet, not a metric
_NS = 1_000_000_000
_ZONE_SUFFIX = re.compile(r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True)
class NodeProfile:
    """What the two suites validate.

    Attributes:
        table: the raw table with ``timestamp`` as UTC (``NaT`` where a timestamp is missing,
            unparseable or has no time zone) and ``node`` as text (``None`` where empty).
        per_node: one row per node; its columns are named in :data:`PER_NODE_COLUMNS`.
        step_seconds: the expected scrape interval: configured, or inferred from the data.
        step_inferred: whether ``step_seconds`` was inferred (median step over all nodes).
    """

    table: pd.DataFrame
    per_node: pd.DataFrame
    step_seconds: float | None
    step_inferred: bool

    @property
    def start(self) -> pd.Timestamp | None:
        return _edge(self.table, "min")

    @property
    def end(self) -> pd.Timestamp | None:
        return _edge(self.table, "max")


# Per-node summary columns, with what each measures (shown in Data Docs and the JSON result).
PER_NODE_COLUMNS = {
    "rows": "rows of the node",
    "invalid_timestamp_rows": "rows whose timestamp is missing, unparseable or has no time zone",
    "duplicate_rows": "rows repeating an earlier (node, timestamp)",
    "cpu_utilization_null_ratio": "share of the node's rows with no cpu_utilization value",
    "memory_utilization_null_ratio": "share of the node's rows with no memory_utilization value",
    "cpu_utilization_min": "smallest cpu_utilization of the node",
    "cpu_utilization_max": "largest cpu_utilization of the node",
    "memory_utilization_min": "smallest memory_utilization of the node",
    "memory_utilization_max": "largest memory_utilization of the node",
    "first_timestamp": "oldest sample of the node",
    "last_timestamp": "newest sample of the node",
    "median_step_seconds": "median interval between consecutive samples of the node",
    "off_grid_step_ratio": "share of the node's intervals that are not whole multiples of the step",
    "missing_scrape_ratio": "share of the node's expected scrapes (first to last sample) absent",
    "max_gap_seconds": "longest interval between consecutive samples of the node",
    "backward_jumps": "samples older than the sample before them, in file order",
    "future_rows": "samples later than the reference time (plus the allowed clock skew)",
    "age_seconds": "age of the node's newest sample at the reference time",
}


def _edge(table: pd.DataFrame, how: str) -> pd.Timestamp | None:
    if TIMESTAMP not in table.columns or table[TIMESTAMP].isna().all():
        return None
    return getattr(table[TIMESTAMP], how)()


# --------------------------------------------------------------------------- reading


def load_raw_node_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read node metrics (CSV, parquet, or a day-partitioned parquet folder) without judging them.

    Rows keep their file order (files in name order, which is day order for partitions), so that
    a clock going backwards stays visible. Only unreadable files raise.

    Raises:
        MlschedError: naming the path when it is missing or a file cannot be read as a table.
    """
    frames = []
    for file in table_files(Path(path)):
        try:
            if file.suffix.lower() == ".csv":
                frame = pd.read_csv(file, dtype={NODE: str, TIMESTAMP: str})
            else:
                frame = pq.read_table(file).to_pandas()
        except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as error:
            raise MlschedError(f"{file}: cannot be read as a table: {error}") from None
        frames.append(frame.drop(columns=[PARTITION_COLUMN], errors="ignore"))
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def normalize_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw table with UTC timestamps (``NaT`` when invalid) and node names as text.

    Text columns of numbers (as CSV gives when one value is not a number) become numbers except
    for the values that are not, which stay as they were: the suites judge them.
    """
    out = frame.reset_index(drop=True).copy(deep=False)
    for column in out.columns:
        if column == TIMESTAMP:
            out[column] = _utc_timestamps(out[column])
        elif column == NODE:
            out[column] = _node_names(out[column])
        elif pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = _numbers_where_possible(out[column])
    return out


def _numbers_where_possible(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    text = numbers.isna() & values.notna()
    if not text.any():
        return numbers.astype("float64")
    mixed = numbers.astype(object)
    mixed[text] = values[text]
    return mixed


def _utc_timestamps(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):  # naive: the contract wants a zone
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    text = values.astype("string").str.strip()
    zoned = text.str.contains(_ZONE_SUFFIX, regex=True).fillna(False).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(zoned), format="ISO8601", utc=True, errors="coerce")
    return pd.Series(parsed, index=values.index).astype("datetime64[ns, UTC]")


def _node_names(values: pd.Series) -> pd.Series:
    """Node names as a categorical of stripped text; missing or blank names become missing."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = pd.Series([str(u).strip() or None for u in uniques], dtype=object)
    remap, categories = pd.factorize(cleaned, use_na_sentinel=True)
    remap = np.append(remap, -1)  # code -1 (missing) stays missing
    names = pd.Categorical.from_codes(remap[codes], categories=pd.Index(categories, dtype=object))
    return pd.Series(names, index=values.index)


# --------------------------------------------------------------------------- per-node summary


def summarize_nodes(
    table: pd.DataFrame,
    thresholds: Thresholds,
    reference_time: pd.Timestamp | None = None,
) -> NodeProfile:
    """Reduce a normalised table (see :func:`normalize_table`) to one row per node.

    Rows without a node are left out here (the table suite counts them). Columns that the table
    lacks give no summary columns. ``age_seconds`` and ``future_rows`` need ``reference_time``.
    """
    if NODE not in table.columns:
        return NodeProfile(table, pd.DataFrame({NODE: []}, dtype=object), None, False)
    nodes = table[NODE]
    if isinstance(nodes.dtype, pd.CategoricalDtype):
        codes, names = nodes.cat.codes.to_numpy(dtype=np.int64), nodes.cat.categories
    else:
        codes, names = pd.factorize(nodes, use_na_sentinel=True)
    keep = codes >= 0
    codes = codes[keep]
    count = len(names)
    summary: dict[str, np.ndarray] = {
        NODE: np.asarray(names, dtype=object),
        "rows": np.bincount(codes, minlength=count),
    }
    file_order = np.argsort(codes, kind="stable")
    sorted_codes = codes[file_order]
    starts = np.searchsorted(sorted_codes, np.arange(count)) if count else np.array([], int)

    for column in UTILIZATION_COLUMNS:
        if column not in table.columns:
            continue
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype="float64")[keep]
        missing = np.isnan(values)
        summary[f"{column}_null_ratio"] = np.bincount(codes, missing, count) / np.maximum(
            summary["rows"], 1
        )
        ordered = values[file_order]
        with np.errstate(invalid="ignore"):
            lows = np.fmin.reduceat(ordered, starts) if count else np.array([])
            highs = np.fmax.reduceat(ordered, starts) if count else np.array([])
        summary[f"{column}_min"] = lows
        summary[f"{column}_max"] = highs

    step_seconds, inferred = thresholds.expected_step_seconds, False
    if TIMESTAMP in table.columns:
        stamps = table[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view("int64")[keep]
        valid = ~np.isnat(stamps.view("datetime64[ns]"))
        summary["invalid_timestamp_rows"] = np.bincount(codes[~valid], minlength=count)
        step_seconds, inferred = _time_checks(
            summary, codes, stamps, valid, file_order, count, thresholds, reference_time
        )
    per_node = pd.DataFrame({k: summary[k] for k in _ordered(summary)})
    return NodeProfile(table, per_node, step_seconds, inferred)


def _ordered(summary: dict) -> list[str]:
    return [NODE] + [c for c in PER_NODE_COLUMNS if c in summary]


def _time_checks(
    summary: dict[str, np.ndarray],
    codes: np.ndarray,
    stamps: np.ndarray,
    valid: np.ndarray,
    file_order: np.ndarray,
    count: int,
    thresholds: Thresholds,
    reference_time: pd.Timestamp | None,
) -> tuple[float | None, bool]:
    # Backward jumps: within a node, in file order.
    in_file = file_order[valid[file_order]]
    node_seq, time_seq = codes[in_file], stamps[in_file]
    same = node_seq[1:] == node_seq[:-1]
    backward = same & (time_seq[1:] < time_seq[:-1])
    summary["backward_jumps"] = np.bincount(node_seq[1:][backward], minlength=count)

    # Everything else on samples sorted by (node, time): file order already is, unless a clock
    # went backwards.
    if backward.any():
        order = np.lexsort((stamps[valid], codes[valid]))
        node_seq, time_seq = codes[valid][order], stamps[valid][order]
        same = node_seq[1:] == node_seq[:-1]
    delta = np.diff(time_seq)
    duplicate = same & (delta == 0)
    summary["duplicate_rows"] = np.bincount(node_seq[1:][duplicate], minlength=count)

    nodes = np.arange(count)
    begin = np.searchsorted(node_seq, nodes, side="left")
    end = np.searchsorted(node_seq, nodes, side="right")
    present = end > begin
    first = np.full(count, np.iinfo(np.int64).min)  # NaT where a node has no valid timestamp
    last = first.copy()
    first[present] = time_seq[begin[present]]
    last[present] = time_seq[end[present] - 1]
    summary["first_timestamp"] = _as_utc(first)
    summary["last_timestamp"] = _as_utc(last)

    stepping = same & (delta > 0)
    step_nodes, steps = node_seq[1:][stepping], delta[stepping] / _NS
    per_node_steps = pd.Series(steps).groupby(step_nodes)
    summary["median_step_seconds"] = _per_node(per_node_steps.median(), count)
    summary["max_gap_seconds"] = _per_node(per_node_steps.max(), count)

    step = thresholds.expected_step_seconds
    inferred = step is None
    if step is None and len(steps):
        step = float(np.median(steps))
    if step:
        remainder = np.mod(steps, step)
        off_grid = np.minimum(remainder, step - remainder) > thresholds.step_tolerance * step
        intervals = np.bincount(step_nodes, minlength=count)
        summary["off_grid_step_ratio"] = np.where(
            intervals > 0,
            np.bincount(step_nodes, off_grid, count) / np.maximum(intervals, 1),
            np.nan,
        )
        unique = np.bincount(node_seq, minlength=count) - summary["duplicate_rows"]
        span = (last - first).astype("float64") / _NS
        expected = np.floor(span / step + 0.5) + 1
        summary["missing_scrape_ratio"] = np.where(
            present, np.clip(1 - unique / np.maximum(expected, 1), 0.0, 1.0), np.nan
        )

    if reference_time is not None:
        reference = int(reference_time.value)
        skew = thresholds.max_future_seconds or 0.0
        future = time_seq > reference + int(skew * _NS)
        summary["future_rows"] = np.bincount(node_seq[future], minlength=count)
        summary["age_seconds"] = np.where(present, (reference - last) / _NS, np.nan)
    return step, inferred and step is not None


def _as_utc(nanos: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(nanos.view("datetime64[ns]"), utc=True)


def _per_node(series: pd.Series, count: int) -> np.ndarray:
    return series.reindex(range(count)).to_numpy(dtype="float64")
