"""The NAB ``ec2_cpu_utilization_*`` series (real AWS CloudWatch CPU) as node metrics + labels.

Each CSV (``timestamp,value``; value = CPU percent; 5-minute steps; naive timestamps, UTC) becomes
one node named after the file's suffix (``ec2_cpu_utilization_24ae8d.csv`` -> ``24ae8d``), with
``cpu_utilization = value / 100``. CloudWatch reports no memory, so ``memory_utilization`` is NaN:
the frame satisfies every node-metrics rule but that one, and consumers must run CPU-only (the
anomaly detector's ``cpu_only`` option). ``anomaly_windows.json`` (file name -> NAB's labelled
windows) becomes anomaly labels in the contract, per node.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from components.atomic import replace_path
from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    UTILIZATION_RANGE,
    AnomalyLabels,
    read_json_file,
    validate_anomaly_labels,
    write_anomaly_labels,
)
from components.errors import ContractError

PREFIX = "ec2_cpu_utilization_"
WINDOWS_FILE = "anomaly_windows.json"


def node_name(file_name: str) -> str:
    """``ec2_cpu_utilization_24ae8d.csv`` -> ``24ae8d``."""
    return Path(file_name).stem.removeprefix(PREFIX)


def _utc_iso(text: object, where: str) -> str:
    try:
        stamp = pd.Timestamp(str(text))
    except ValueError:
        raise ContractError(f"{where}: cannot parse timestamp {text!r}") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_nab_series(file: str | os.PathLike) -> pd.DataFrame:
    """One NAB CSV as node-metrics rows (memory NaN).

    Raises:
        ContractError: naming the file, column and row of a bad value.
    """
    path = Path(file)
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ContractError(f"{path}: cannot be read as CSV: {error}") from None
    missing = [c for c in ("timestamp", "value") if c not in raw.columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {', '.join(missing)}")
    stamps = pd.to_datetime(raw["timestamp"], errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ContractError(
            f"{path}, column 'timestamp', row {row + 1}: "
            f"cannot parse {raw['timestamp'].iloc[row]!r}"
        )
    values = pd.to_numeric(raw["value"], errors="coerce") / 100.0
    low, high = UTILIZATION_RANGE
    bad = (values.isna() | (values < low) | (values > high)).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ContractError(
            f"{path}, column 'value', row {row + 1}: {raw['value'].iloc[row]!r} is not a CPU "
            f"percent within [{low * 100:g}, {high * 100:g}]"
        )
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    frame = pd.DataFrame(
        {
            TIMESTAMP: stamps.dt.tz_convert("UTC"),
            NODE: node_name(path.name),
            CPU_UTILIZATION: values.to_numpy(dtype=np.float64),
            MEMORY_UTILIZATION: np.nan,
        }
    )
    duplicated = frame[TIMESTAMP].duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise ContractError(
            f"{path}, row {row + 1}: duplicate timestamp {raw['timestamp'].iloc[row]}"
        )
    return frame


def read_nab_labels(folder: str | os.PathLike) -> AnomalyLabels:
    """``anomaly_windows.json`` as anomaly labels keyed by node name."""
    file = Path(folder) / WINDOWS_FILE
    document = read_json_file(file)
    if not isinstance(document, dict):
        raise ContractError(f"{file}: expected an object {{file name: [[start, end], ...]}}")
    converted = {}
    for name, windows in document.items():
        where = f"{file}: {name}"
        if not isinstance(windows, list):
            raise ContractError(f"{where}: expected a list of [start, end] windows")
        converted[node_name(name)] = [
            [_utc_iso(value, where) for value in window]
            if isinstance(window, list | tuple)
            else window
            for window in windows
        ]
    return validate_anomaly_labels(converted, str(file))


def read_nab(folder: str | os.PathLike) -> tuple[pd.DataFrame, AnomalyLabels]:
    """Every ``ec2_cpu_utilization_*.csv`` of ``folder`` as node metrics, and their labels.

    Returns:
        (metrics sorted by node and timestamp, memory NaN; labels keyed by node, every node
        present, an empty list for a clean series).
    """
    path = Path(folder)
    files = sorted(path.glob(f"{PREFIX}*.csv")) if path.is_dir() else []
    if not files:
        raise ContractError(f"{path}: no {PREFIX}*.csv files (see ../shared/data/README.md)")
    metrics = pd.concat([read_nab_series(f) for f in files], ignore_index=True)
    metrics = metrics.sort_values([NODE, TIMESTAMP], kind="stable").reset_index(drop=True)
    labels = read_nab_labels(path)
    for node in metrics[NODE].unique():
        labels.setdefault(str(node), [])
    return metrics, labels


def write_nab_as_node_metrics(folder: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write ``node_metrics.csv`` (no memory column) and ``anomaly_labels.json`` to ``output``,
    ready for ``mlsched evaluate anomaly --cpu-only``; returns the output folder."""
    metrics, labels = read_nab(folder)
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    csv = metrics.drop(columns=[MEMORY_UTILIZATION]).assign(
        **{TIMESTAMP: metrics[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )
    replace_path(target / "node_metrics.csv", lambda tmp: csv.to_csv(tmp, index=False))
    write_anomaly_labels(labels, target / "anomaly_labels.json")
    return target
