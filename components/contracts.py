"""The data contracts: the one definition of every table and file that stages hand to each other.

Every stage reads and writes through these functions, so a file that one stage accepts is a file
every stage accepts. Readers validate and raise :class:`ContractError` naming the file, the column
and the first bad row (1-based data row; for CSV also the line number).

Contracts:
    node metrics: long table ``timestamp`` (UTC), ``node``, ``cpu_utilization``,
        ``memory_utilization`` (fractions of node capacity, within [0, 1.5]) and optional extra
        numeric columns. Unique per (node, timestamp); a missing scrape is a missing row.
        Parquet partitioned by day (``date=YYYY-MM-DD/part-0.parquet``), one parquet file, or CSV.
    workload trace: ``pod``, ``timestamp``, ``cpu_cores``, ``memory_bytes`` (actual use),
        ``cpu_request_cores``, ``memory_request_bytes`` (constant per pod), optional ``gpus``.
        A pod lives from its first row to its last.
    nodes table: ``node``, ``cpu_cores``, ``memory_bytes``, ``gpus``.
    anomaly labels: JSON ``{node: [[start_iso, end_iso], ...]}``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.atomic import replace_path, write_text
from components.errors import ContractError

TIMESTAMP = "timestamp"
NODE = "node"
POD = "pod"
CPU_UTILIZATION = "cpu_utilization"
MEMORY_UTILIZATION = "memory_utilization"
UTILIZATION_RANGE = (0.0, 1.5)

NODE_METRICS_COLUMNS = (TIMESTAMP, NODE, CPU_UTILIZATION, MEMORY_UTILIZATION)
WORKLOAD_TRACE_COLUMNS = (
    POD,
    TIMESTAMP,
    "cpu_cores",
    "memory_bytes",
    "cpu_request_cores",
    "memory_request_bytes",
)
WORKLOAD_TRACE_OPTIONAL = ("gpus",)
WORKLOAD_OWNER = "owner"  # optional: the pod's controller (ReplicaSet) name
WORKLOAD_REQUEST_COLUMNS = ("cpu_request_cores", "memory_request_bytes", "gpus")
NODES_TABLE_COLUMNS = (NODE, "cpu_cores", "memory_bytes")
NODES_TABLE_OPTIONAL = ("gpus",)

AnomalyLabels = dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]

_TZ_SUFFIX = r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class _Part:
    """One file's rows, with what is needed to point at a row in that file."""

    source: str
    frame: pd.DataFrame
    is_csv: bool


def _where(part: _Part, position: int) -> str:
    row = position + 1
    return f"row {row} (line {row + 1})" if part.is_csv else f"row {row}"


def _fail(part: _Part, message: str, column: str | None = None, position: int | None = None):
    location = [part.source]
    if column is not None:
        location.append(f"column '{column}'")
    if position is not None:
        location.append(_where(part, position))
    raise ContractError(", ".join(location) + f": {message}")


def table_files(path: Path) -> list[Path]:
    """The ``.parquet`` and ``.csv`` files of a table: the file itself, or those under a folder."""
    if not path.exists():
        raise ContractError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
        files += sorted(p for p in path.rglob("*.csv") if not p.name.startswith("."))
        if not files:
            raise ContractError(f"{path}: directory holds no .parquet or .csv files")
        return files
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise ContractError(f"{path}: unsupported file type '{path.suffix}'; use .parquet or .csv")
    return [path]


def _read_parts(path: str | os.PathLike) -> Iterator[_Part]:
    for file in table_files(Path(path)):
        try:
            if file.suffix.lower() == ".csv":
                frame = pd.read_csv(file, dtype={NODE: str, POD: str}, keep_default_na=True)
            else:
                frame = pq.read_table(file).to_pandas()
        except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as error:
            raise ContractError(f"{file}: cannot be read as a table: {error}") from None
        yield _Part(str(file), frame, file.suffix.lower() == ".csv")


def _require_columns(part: _Part, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in part.frame.columns]
    if missing:
        found = ", ".join(map(str, part.frame.columns)) or "none"
        _fail(part, f"missing column(s) {', '.join(missing)} (found: {found})")


def _timestamps(part: _Part, column: str = TIMESTAMP) -> pd.Series:
    values = part.frame[column]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        _fail(
            part, "naive timestamp (no time zone); write UTC, e.g. 2026-01-01T00:00:00Z", column, 0
        )
    missing = values.isna().to_numpy()
    if missing.any():
        _fail(part, "empty timestamp", column, int(np.argmax(missing)))
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        _fail(part, f"timestamps must be ISO 8601 strings with a time zone, got {values.dtype}")
    text = values.astype(str).str.strip()
    naive = ~text.str.contains(_TZ_SUFFIX, regex=True).to_numpy()
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    first_bad = int(np.argmax(bad)) if bad.any() else len(text)
    first_naive = int(np.argmax(naive)) if naive.any() else len(text)
    if first_bad < len(text) and first_bad <= first_naive:
        _fail(part, f"cannot parse timestamp {text.iloc[first_bad]!r}", column, first_bad)
    if first_naive < len(text):
        _fail(
            part,
            f"naive timestamp {text.iloc[first_naive]!r} (no time zone); add Z or an offset",
            column,
            first_naive,
        )
    return parsed


def _numeric(part: _Part, column: str, *, allow_missing: bool) -> pd.Series:
    values = part.frame[column]
    if pd.api.types.is_bool_dtype(values.dtype):
        _fail(part, "boolean values where numbers are expected", column)
    numbers = pd.to_numeric(values, errors="coerce")
    if not pd.api.types.is_numeric_dtype(values.dtype):
        non_numeric = (numbers.isna() & values.notna()).to_numpy()
        if non_numeric.any():
            position = int(np.argmax(non_numeric))
            _fail(part, f"non-numeric value {values.iloc[position]!r}", column, position)
    numbers = numbers.astype("float64")
    if not allow_missing:
        missing = numbers.isna().to_numpy()
        if missing.any():
            _fail(part, "missing value", column, int(np.argmax(missing)))
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        _fail(part, "infinite value", column, int(np.argmax(infinite)))
    return numbers


def _check_range(part: _Part, column: str, numbers: pd.Series, low: float, high: float) -> None:
    array = numbers.to_numpy()
    outside = (array < low) | (array > high)
    if outside.any():
        position = int(np.argmax(outside))
        _fail(part, f"value {array[position]:g} outside [{low:g}, {high:g}]", column, position)


def _names(part: _Part, column: str) -> pd.Series:
    codes, uniques = pd.factorize(part.frame[column], use_na_sentinel=True)
    text = np.array([str(u) for u in uniques], dtype=object)
    blank = np.array([not t.strip() for t in text], dtype=bool)
    empty = (codes < 0) | (blank[np.maximum(codes, 0)] if len(text) else True)
    if empty.any():
        _fail(part, "empty name", column, int(np.argmax(empty)))
    return pd.Series(text[codes] if len(text) else np.array([], dtype=object), dtype=object)


def _key_codes(column: pd.Series) -> np.ndarray:
    """Integers that order and compare like the column's values (timestamps without hashing)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or np.issubdtype(column.dtype, np.datetime64):
        return column.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return pd.factorize(column)[0]


def _key_order(columns: list[np.ndarray]) -> np.ndarray:
    """The rows in key order: as they are when already sorted (writers hand sorted frames)."""
    n = len(columns[0]) if columns else 0
    later = np.zeros(max(n - 1, 0), dtype=bool)
    decided = np.zeros_like(later)
    for codes in columns:
        step = np.sign(codes[1:] - codes[:-1])
        later |= ~decided & (step > 0)
        decided |= step != 0
    if not (decided & ~later).any():
        return np.arange(n)
    return np.lexsort(columns[::-1])


def _first_duplicate(part: _Part, keys: pd.DataFrame, what: str) -> None:
    columns = [_key_codes(keys[c]) for c in keys.columns]
    order = _key_order(columns)
    same = np.ones(len(order) - 1 if len(order) else 0, dtype=bool)
    for codes in columns:
        ordered = codes[order]
        same &= ordered[1:] == ordered[:-1]
    if same.any():
        position = int(order[1:][same].min())
        earlier = order[:-1][same][order[1:][same] == position]
        first = int(earlier.min())
        row = keys.iloc[position]
        values = ", ".join(f"{k}={_show(row[k])}" for k in keys.columns)
        _fail(
            part,
            f"duplicate {what} ({values}), first seen at {_where(part, first)}",
            None,
            position,
        )


def _show(value: object) -> str:
    return value.isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- node metrics


def validate_node_metrics(frame: pd.DataFrame, source: str = "node metrics") -> pd.DataFrame:
    """Check a node-metrics frame against the contract and return it normalised.

    Normalised means: UTC timestamps, string node names, float columns, sorted by (node,
    timestamp), a fresh index.

    Raises:
        ContractError: naming ``source``, the column and the first bad row.
    """
    return _validate_node_metrics_part(_Part(source, frame, is_csv=False))


def _validate_node_metrics_part(part: _Part) -> pd.DataFrame:
    _require_columns(part, NODE_METRICS_COLUMNS)
    frame = part.frame
    out = pd.DataFrame({TIMESTAMP: _timestamps(part).array, NODE: _names(part, NODE).array})
    for column in (CPU_UTILIZATION, MEMORY_UTILIZATION):
        numbers = _numeric(part, column, allow_missing=False)
        _check_range(part, column, numbers, *UTILIZATION_RANGE)
        out[column] = numbers.to_numpy()
    for column in frame.columns:
        if column in NODE_METRICS_COLUMNS or column == "date":
            continue
        out[column] = _numeric(part, column, allow_missing=True).to_numpy()
    _first_duplicate(part, out[[NODE, TIMESTAMP]], "(node, timestamp)")
    return out


def read_node_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read node metrics from a CSV file, a parquet file, or a day-partitioned parquet directory.

    Raises:
        ContractError: naming the file, column and first bad row.
    """
    frames: list[pd.DataFrame] = []
    sources: list[str] = []
    for part in _read_parts(path):
        frames.append(_validate_node_metrics_part(part))
        sources.append(part.source)
    if len(frames) > 1:
        _check_cross_file_duplicates(frames, sources)
    combined = _concat(frames)
    return combined.sort_values([NODE, TIMESTAMP], kind="stable").reset_index(drop=True)


def _check_cross_file_duplicates(frames: list[pd.DataFrame], sources: list[str]) -> None:
    keys = pd.concat(
        [f[[NODE, TIMESTAMP]].assign(_file=i) for i, f in enumerate(frames)], ignore_index=True
    )
    duplicated = keys.duplicated([NODE, TIMESTAMP], keep="first").to_numpy()
    if duplicated.any():
        clash = keys.iloc[int(np.argmax(duplicated))]
        node, stamp = clash[NODE], clash[TIMESTAMP]
        earlier = keys[(keys[NODE] == node) & (keys[TIMESTAMP] == stamp)].iloc[0]
        raise ContractError(
            f"{sources[int(clash['_file'])]}: duplicate (node, timestamp) (node={node}, "
            f"timestamp={stamp.isoformat()}), also in {sources[int(earlier['_file'])]}"
        )


def write_node_metrics(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write node metrics atomically: nothing is left half-written on failure.

    ``*.csv`` and ``*.parquet`` paths get one file; any other path becomes a directory partitioned
    by UTC day (``date=YYYY-MM-DD/part-0.parquet``).
    """
    frame = validate_node_metrics(frame)
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        return replace_path(target, lambda tmp: _write_csv(frame, tmp))
    if suffix == ".parquet":
        return replace_path(target, lambda tmp: pq.write_table(_to_arrow(frame), tmp))
    return replace_path(target, lambda tmp: _write_day_partitions(frame, tmp), folder=True)


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _write_csv(frame: pd.DataFrame, file: Path) -> None:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out.to_csv(file, index=False)


def _write_day_partitions(frame: pd.DataFrame, directory: Path) -> None:
    nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype("int64")
    days = nanos // (86_400 * 10**9)
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]
    boundaries = np.flatnonzero(np.diff(sorted_days)) + 1
    table = _to_arrow(frame)
    for chunk in np.split(order, boundaries):
        if len(chunk) == 0:
            continue
        day = pd.Timestamp(int(days[chunk[0]]) * 86_400, unit="s").strftime("%Y-%m-%d")
        partition = directory / f"date={day}"
        partition.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(pa.array(chunk)), partition / "part-0.parquet")


# --------------------------------------------------------------------------- workload and nodes


def validate_workload_trace(frame: pd.DataFrame, source: str = "workload trace") -> pd.DataFrame:
    """Check a workload trace; return it sorted by (pod, timestamp) with ``gpus`` filled."""
    return _validate_workload_part(_Part(source, frame, is_csv=False))


def _validate_workload_part(part: _Part) -> pd.DataFrame:
    _require_columns(part, WORKLOAD_TRACE_COLUMNS)
    out = pd.DataFrame({POD: _names(part, POD).array, TIMESTAMP: _timestamps(part).array})
    for column in WORKLOAD_TRACE_COLUMNS[2:] + WORKLOAD_TRACE_OPTIONAL:
        if column not in part.frame.columns:
            out[column] = 0.0
            continue
        numbers = _numeric(part, column, allow_missing=False)
        _check_range(part, column, numbers, 0.0, np.inf)
        out[column] = numbers.to_numpy()
    if WORKLOAD_OWNER in part.frame.columns:
        out[WORKLOAD_OWNER] = part.frame[WORKLOAD_OWNER].fillna("").astype(str).to_numpy()
    _first_duplicate(part, out[[POD, TIMESTAMP]], "(pod, timestamp)")
    codes = pd.factorize(out[POD])[0]
    _, first_rows = np.unique(codes, return_index=True)
    for column in WORKLOAD_REQUEST_COLUMNS:
        values = out[column].to_numpy()
        per_pod = values[first_rows][codes]
        changed = values != per_pod
        if changed.any():
            position = int(np.argmax(changed))
            _fail(
                part,
                f"request of pod {out[POD].iloc[position]!r} changes from {per_pod[position]:g} "
                f"to {values[position]:g}; requests must be constant per pod",
                column,
                position,
            )
    return out.sort_values([POD, TIMESTAMP], kind="stable").reset_index(drop=True)


def read_workload_trace(path: str | os.PathLike) -> pd.DataFrame:
    """Read a workload trace (CSV or parquet) and validate it."""
    parts = list(_read_parts(path))
    if len(parts) == 1:
        return _validate_workload_part(parts[0])
    combined = _Part(str(path), _concat([p.frame for p in parts]), is_csv=False)
    return _validate_workload_part(combined)


def validate_nodes_table(frame: pd.DataFrame, source: str = "nodes table") -> pd.DataFrame:
    """Check a nodes table (unique names, positive capacity, whole GPUs); return it normalised."""
    return _validate_nodes_part(_Part(source, frame, is_csv=False))


def _validate_nodes_part(part: _Part) -> pd.DataFrame:
    _require_columns(part, NODES_TABLE_COLUMNS)
    if part.frame.empty:
        _fail(part, "no nodes")
    out = pd.DataFrame({NODE: _names(part, NODE).to_numpy()})
    for column in ("cpu_cores", "memory_bytes"):
        numbers = _numeric(part, column, allow_missing=False)
        _check_range(part, column, numbers, np.finfo(float).tiny, np.inf)
        out[column] = numbers.to_numpy()
    if "gpus" in part.frame.columns:
        gpus = _numeric(part, "gpus", allow_missing=False)
        _check_range(part, "gpus", gpus, 0.0, np.inf)
        fractional = (gpus.to_numpy() % 1) != 0
        if fractional.any():
            position = int(np.argmax(fractional))
            _fail(part, f"GPUs must be whole, got {gpus.iloc[position]:g}", "gpus", position)
        out["gpus"] = gpus.astype("int64").to_numpy()
    else:
        out["gpus"] = 0
    _first_duplicate(part, out[[NODE]], "node")
    return out


def read_nodes_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a nodes table (CSV or parquet) and validate it."""
    parts = list(_read_parts(path))
    if len(parts) != 1:
        raise ContractError(f"{path}: a nodes table is one file, found {len(parts)}")
    return _validate_nodes_part(parts[0])


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a workload trace or nodes table atomically as ``.csv`` or ``.parquet``."""
    target = Path(path)
    if target.suffix.lower() == ".csv":
        return replace_path(target, lambda tmp: _write_csv(frame, tmp))
    if target.suffix.lower() == ".parquet":
        return replace_path(target, lambda tmp: pq.write_table(_to_arrow(frame), tmp))
    raise ContractError(f"{target}: unsupported file type '{target.suffix}'; use .parquet or .csv")


def write_workload_trace(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write a workload trace."""
    return write_table(validate_workload_trace(frame), path)


def write_nodes_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write a nodes table."""
    return write_table(validate_nodes_table(frame), path)


# --------------------------------------------------------------------------- anomaly labels


def validate_anomaly_labels(document: object, source: str = "anomaly labels") -> AnomalyLabels:
    """Check a decoded ``{node: [[start_iso, end_iso], ...]}`` document; return UTC windows."""
    if not isinstance(document, dict):
        raise ContractError(f"{source}: expected an object {{node: [[start, end], ...]}}")
    labels: AnomalyLabels = {}
    for node, windows in document.items():
        if not isinstance(node, str) or not node.strip():
            raise ContractError(f"{source}: node names must be non-empty strings, got {node!r}")
        if not isinstance(windows, list):
            raise ContractError(f"{source}: node {node!r}: expected a list of [start, end] windows")
        parsed = []
        for index, window in enumerate(windows):
            where = f"{source}: node {node!r}, window {index}"
            if not isinstance(window, list | tuple) or len(window) != 2:
                raise ContractError(f"{where}: expected [start_iso, end_iso], got {window!r}")
            start, end = (_label_time(value, where) for value in window)
            if end < start:
                raise ContractError(f"{where}: ends ({end.isoformat()}) before it starts")
            parsed.append((start, end))
        labels[node] = sorted(parsed)
    return labels


def _label_time(value: object, where: str) -> pd.Timestamp:
    if not isinstance(value, str):
        raise ContractError(f"{where}: timestamps must be ISO 8601 strings, got {value!r}")
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        raise ContractError(f"{where}: cannot parse timestamp {value!r}") from None
    if stamp.tzinfo is None or re.search(_TZ_SUFFIX, value.strip()) is None:
        raise ContractError(
            f"{where}: naive timestamp {value!r} (no time zone); add Z or an offset"
        )
    return stamp.tz_convert("UTC")


def read_json_file(path: str | os.PathLike) -> object:
    """The document of a JSON file; a missing file or bad JSON is an error naming the file."""
    file = Path(path)
    if not file.is_file():
        raise ContractError(f"{file}: no such file")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ContractError(f"{file}: not valid JSON: {error}") from None


def read_anomaly_labels(path: str | os.PathLike) -> AnomalyLabels:
    """Read and validate an anomaly-labels JSON file."""
    return validate_anomaly_labels(read_json_file(path), str(Path(path)))


def write_anomaly_labels(labels: AnomalyLabels, path: str | os.PathLike) -> Path:
    """Write anomaly labels as JSON with ISO 8601 UTC timestamps, atomically."""
    document = {
        node: [[_iso(start), _iso(end)] for start, end in windows]
        for node, windows in sorted(labels.items())
    }
    validate_anomaly_labels(document)
    return write_text(path, json.dumps(document, indent=1))


def _iso(stamp: pd.Timestamp) -> str:
    return pd.Timestamp(stamp).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
