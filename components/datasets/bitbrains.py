"""Reader of the Bitbrains GWA-T-12 fastStorage trace as a node-metrics table.

The trace (``trace.parquet``: ``id``, ``timestamp`` = end of the interval, ``duration`` in ms,
run-length encoded over 5-minute steps, ``cpu_usage`` in MHz; ``meta.parquet``: ``cpu_capacity``)
becomes one row per VM and 5-minute step: ``node`` = ``vm-<id>``, ``cpu_utilization`` =
``cpu_usage / cpu_capacity``. The subset carries no memory use, so ``memory_utilization`` is 0 and
only CPU is meaningful (evaluate with ``resources=("cpu",)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    UTILIZATION_RANGE,
    validate_node_metrics,
)
from components.errors import MlschedError

STEP_SECONDS = 300
TRACE = "trace.parquet"
META = "meta.parquet"


def read_bitbrains(folder: str | os.PathLike, *, max_vms: int | None = None) -> pd.DataFrame:
    """The trace in ``folder`` as node metrics (see the module docstring).

    Args:
        folder: the ``bitbrains-faststorage-50vm`` folder.
        max_vms: keep the first ``max_vms`` VMs by id (all by default).

    Raises:
        MlschedError: missing files or columns.
    """
    root = Path(folder)
    for name in (TRACE, META):
        if not (root / name).is_file():
            raise MlschedError(f"{root / name}: missing; expected the Bitbrains fastStorage folder")
    trace = pd.read_parquet(root / TRACE)
    meta = pd.read_parquet(root / META)
    for source, frame, needed in (
        (TRACE, trace, ("id", "timestamp", "duration", "cpu_usage")),
        (META, meta, ("id", "cpu_capacity")),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise MlschedError(f"{root / source}: missing column(s) {', '.join(missing)}")
    ids = sorted(trace["id"].astype(str).unique())
    if max_vms is not None:
        ids = ids[:max_vms]
        trace = trace[trace["id"].astype(str).isin(ids)]
    capacity = meta.assign(id=meta["id"].astype(str)).set_index("id")["cpu_capacity"]
    repeats = np.maximum(1, np.round(trace["duration"].to_numpy() / (STEP_SECONDS * 1000)))
    repeats = repeats.astype(np.int64)
    end = trace["timestamp"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").view(np.int64)
    row = np.repeat(np.arange(len(trace)), repeats)
    back = np.arange(len(row)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    nanos = end[row] - back * STEP_SECONDS * 1_000_000_000
    vm = trace["id"].astype(str).to_numpy()[row]
    usage = trace["cpu_usage"].to_numpy(dtype=np.float64)[row]
    cpu = usage / pd.Series(vm).map(capacity).to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(nanos, unit="ns", utc=True),
            NODE: np.char.add("vm-", vm.astype(str)),
            CPU_UTILIZATION: np.clip(cpu, *UTILIZATION_RANGE),
            MEMORY_UTILIZATION: 0.0,
        }
    )
    frame = frame[np.isfinite(frame[CPU_UTILIZATION])]
    frame = frame.drop_duplicates([NODE, TIMESTAMP], keep="last")
    frame = frame.sort_values([NODE, TIMESTAMP]).reset_index(drop=True)
    return validate_node_metrics(frame, source=str(root))
