"""Reader of the Bitbrains GWA-T-12 fastStorage trace as a node-metrics table.

The trace (``trace.parquet``: ``id``, ``timestamp`` = end of the interval, ``duration`` in ms,
run-length encoded over 5-minute steps, ``cpu_usage`` in MHz; ``meta.parquet``: ``cpu_capacity``)
becomes one row per VM and 5-minute step: ``node`` = ``vm-<id>``, ``cpu_utilization`` =
``cpu_usage / cpu_capacity``. The subset carries no memory use, so ``memory_utilization`` is 0 and
only CPU is meaningful (evaluate with ``resources=("cpu",)``).

:func:`read_bitbrains_cores` reads the same files as a wide grid of used cores per VM (the
placement families replay stretches of it as pods).
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


def _read_tables(root: Path, meta_columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trace.parquet`` and ``meta.parquet``, checked for the files and the columns needed."""
    for name in (TRACE, META):
        if not (root / name).is_file():
            raise MlschedError(f"{root / name}: missing; expected the Bitbrains fastStorage folder")
    trace = pd.read_parquet(root / TRACE)
    meta = pd.read_parquet(root / META)
    for source, frame, needed in (
        (TRACE, trace, ("id", "timestamp", "duration", "cpu_usage")),
        (META, meta, meta_columns),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise MlschedError(f"{root / source}: missing column(s) {', '.join(missing)}")
    return trace, meta


def read_bitbrains(folder: str | os.PathLike, *, max_vms: int | None = None) -> pd.DataFrame:
    """The trace in ``folder`` as node metrics (see the module docstring).

    Args:
        folder: the ``bitbrains-faststorage-50vm`` folder.
        max_vms: keep the first ``max_vms`` VMs by id (all by default).

    Raises:
        MlschedError: missing files or columns.
    """
    root = Path(folder)
    trace, meta = _read_tables(root, meta_columns=("id", "cpu_capacity"))
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


def read_bitbrains_cores(folder: str | os.PathLike) -> pd.DataFrame:
    """Used cores per VM on the 5-minute grid: index = step start (UTC), one column per VM id.

    Cores are ``cpu_usage`` MHz over the VM's MHz per core (``cpu_capacity / cpu_count``).
    Run-length rows (``duration`` > 5 min) fill every step they cover; steps with no row are NaN.

    Raises:
        MlschedError: missing files or columns.
    """
    trace, meta = _read_tables(Path(folder), meta_columns=("id", "cpu_count", "cpu_capacity"))
    meta = meta.set_index("id")
    mhz_per_core = (meta["cpu_capacity"] / meta["cpu_count"]).reindex(trace["id"]).to_numpy()
    cores = trace["cpu_usage"].to_numpy(dtype=np.float64) / mhz_per_core
    seconds = trace["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // 10**9
    t0 = int(seconds.min()) - STEP_SECONDS
    end_step = (seconds - t0) // STEP_SECONDS - 1
    covered = np.maximum(1, np.rint(trace["duration"].to_numpy() / 1000 / STEP_SECONDS))
    covered = covered.astype(np.int64)
    vms, vm_codes = np.unique(trace["id"].astype(str).to_numpy(), return_inverse=True)
    n_steps = int(end_step.max()) + 1
    grid = np.full((n_steps, len(vms)), np.nan)
    repeat = np.repeat(np.arange(len(trace)), covered)
    within = np.arange(len(repeat)) - np.repeat(np.cumsum(covered) - covered, covered)
    steps = end_step[repeat] - within
    ok = steps >= 0
    grid[steps[ok], vm_codes[repeat][ok]] = cores[repeat][ok]
    index = pd.to_datetime(t0 + np.arange(n_steps) * STEP_SECONDS, unit="s", utc=True)
    return pd.DataFrame(grid, index=index, columns=vms)
