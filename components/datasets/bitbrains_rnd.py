"""Reader of the Bitbrains GWA-T-12 Rnd trace (500 VMs, CPU and memory) as node metrics.

``usage.parquet`` is already on a 5-minute grid with ``timestamp`` (UTC), ``node``,
``cpu_utilization`` and ``memory_utilization`` (fractions of the VM's provisioned capacity). Most
VMs are nearly idle, so a workload is built from the most active ones: :func:`read_bitbrains_rnd`
keeps the ``top`` VMs by mean CPU over the first ``days`` days.
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
    validate_node_metrics,
)
from components.errors import MlschedError

USAGE = "usage.parquet"
COLUMNS = (TIMESTAMP, NODE, CPU_UTILIZATION, MEMORY_UTILIZATION)


def usage_file(folder: str | os.PathLike) -> Path:
    """The trace's ``usage.parquet`` in ``folder``.

    Raises:
        MlschedError: it is missing.
    """
    file = Path(folder) / USAGE
    if not file.is_file():
        raise MlschedError(f"{file}: missing; expected the Bitbrains Rnd folder")
    return file


def most_active(frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """The rows of the ``top`` nodes by mean CPU utilisation."""
    activity = frame.groupby(NODE)[CPU_UTILIZATION].mean().sort_values(ascending=False)
    return frame[frame[NODE].isin(activity.index[:top])]


def read_bitbrains_rnd(
    folder: str | os.PathLike, *, top: int | None = 60, days: float | None = 30.0
) -> pd.DataFrame:
    """The trace in ``folder`` as node metrics, sorted by node and timestamp.

    Args:
        folder: the ``bitbrains-rnd-500vm`` folder.
        top: keep the ``top`` VMs by mean CPU utilisation over the kept span (all when None).
        days: keep the first ``days`` days of the trace (all when None).

    Raises:
        MlschedError: a missing file or column.
    """
    file = usage_file(folder)
    try:
        frame = pd.read_parquet(file, columns=list(COLUMNS))
    except (KeyError, ValueError) as error:
        raise MlschedError(f"{file}: cannot read columns {', '.join(COLUMNS)}: {error}") from None
    frame[TIMESTAMP] = frame[TIMESTAMP].astype("datetime64[ns, UTC]")
    if days is not None:
        end = frame[TIMESTAMP].min() + pd.Timedelta(days=days)
        frame = frame[frame[TIMESTAMP] < end]
    frame[NODE] = frame[NODE].astype(str)  # after the cut: 11.9 M names take seconds
    if top is not None:
        frame = most_active(frame, top)
    for column in (CPU_UTILIZATION, MEMORY_UTILIZATION):
        frame[column] = frame[column].astype(np.float64)
    frame = frame.sort_values([NODE, TIMESTAMP]).reset_index(drop=True)
    return validate_node_metrics(frame, source=str(file))
