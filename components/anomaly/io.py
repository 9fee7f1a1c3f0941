"""Reading the detector's inputs: node metrics (optionally CPU-only) and anomaly labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.contracts import MEMORY_UTILIZATION, read_node_metrics, validate_node_metrics
from components.errors import ContractError


def read_anomaly_metrics(path: str | os.PathLike, *, cpu_only: bool = False) -> pd.DataFrame:
    """Node metrics for the detector.

    Without ``cpu_only`` this is :func:`components.contracts.read_node_metrics`. With it, the
    ``memory_utilization`` column may be absent or empty (a CPU-only source such as NAB's
    CloudWatch series): every other rule of the contract is checked as usual, and the memory
    column comes back as NaN, to be ignored.
    """
    if not cpu_only:
        return read_node_metrics(path)
    file = Path(path)
    if not file.exists():
        raise ContractError(f"{file}: no such file or directory")
    try:
        if file.is_file() and file.suffix.lower() == ".csv":
            frame = pd.read_csv(file, dtype={"node": str})
        elif file.is_dir() or file.suffix.lower() == ".parquet":
            frame = pq.read_table(file).to_pandas()
        else:
            raise ContractError(
                f"{file}: unsupported file type '{file.suffix}'; use .parquet or .csv"
            )
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as error:
        raise ContractError(f"{file}: cannot be read as a table: {error}") from None
    frame = frame.drop(columns=[c for c in ("date",) if c in frame.columns])
    frame[MEMORY_UTILIZATION] = 0.0  # placeholder for the contract check, dropped below
    checked = validate_node_metrics(frame, str(file))
    checked[MEMORY_UTILIZATION] = np.nan
    return checked.sort_values(["node", "timestamp"], kind="stable").reset_index(drop=True)
