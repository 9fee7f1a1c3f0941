"""The ``--predictors recent-usage`` stand-in: node predictions from recent usage, no model.

It lets the extender, ``mlsched replay`` and their tests run before any model is trained or
served (the tests' stand-in v2 model server answers with it too); the real predictors are the
served models (``--predictors URL``, :mod:`scheduler_client.remote`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scheduler_client.predictions import NodePredictions
from scheduler_client.remote import DEFAULT_HORIZONS_SECONDS

Z_P90 = 1.2816


def _get(snapshot: pd.DataFrame, name: str, fallback: np.ndarray | None = None) -> np.ndarray:
    if name in snapshot.columns:
        values = snapshot[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if fallback is not None:
            values = np.where(np.isfinite(values), values, fallback)
        return values
    return np.full(len(snapshot), np.nan) if fallback is None else fallback


class RecentUsagePredictor:
    """Stand-in predictor from recent usage (no model).

    Per resource, ``P90(h) = ewma_5m + max(slope_1h, 0) x h + 1.2816 x std_1h`` (a normal P90
    around the recent level with its upward trend), clipped to [0, 1.5]; the anomaly score is
    ``max(|zscore_1h|) / z_alarm`` over CPU and memory, flagged at 1.
    """

    def __init__(
        self, horizons_seconds: Sequence[float] = DEFAULT_HORIZONS_SECONDS, z_alarm: float = 6.0
    ):
        self.horizons_seconds = tuple(float(h) for h in horizons_seconds)
        self.z_alarm = z_alarm

    def _p90(self, snapshot: pd.DataFrame, resource: str) -> np.ndarray:
        current = _get(snapshot, f"{resource}_utilization")
        level = _get(snapshot, f"{resource}_ewma_5m", current)
        spread = np.nan_to_num(_get(snapshot, f"{resource}_std_1h"), nan=0.0)
        slope = np.clip(np.nan_to_num(_get(snapshot, f"{resource}_slope_1h"), nan=0.0), 0, None)
        hours = np.asarray(self.horizons_seconds) / 3600.0
        p90 = level[:, None] + slope[:, None] * hours[None, :] + Z_P90 * spread[:, None]
        return np.clip(p90, 0.0, 1.5)

    def predict(self, snapshot: pd.DataFrame) -> NodePredictions:
        z = np.fmax(
            np.abs(_get(snapshot, "cpu_zscore_1h")), np.abs(_get(snapshot, "memory_zscore_1h"))
        )
        score = np.nan_to_num(z, nan=0.0) / self.z_alarm
        return NodePredictions(
            nodes=tuple(str(node) for node in snapshot.index),
            horizons_seconds=self.horizons_seconds,
            cpu_p90=self._p90(snapshot, "cpu"),
            memory_p90=self._p90(snapshot, "memory"),
            anomaly_score=score,
            anomalous=score >= 1.0,
        )
