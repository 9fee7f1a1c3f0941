"""The fixed reference forecaster of issue 16: the yardstick our forecaster is held against.

One XGBoost model per resource and horizon, across all nodes, on the change target
``level(t + h) - level(t)``; features at the trace's own step (lags and windows in grid steps):

* ``level``: the current value;
* ``diff_lag_<k>``: ``level(t) - level(t - k steps)`` for k in 1, 2, 3, 6, 12, 24, 48;
* ``mean_<w>_minus_now`` and ``std_<w>``: rolling mean minus now and rolling std over the last
  w in 3, 6, 12, 36, 72, 288 steps (the samples present; population std);
* ``yesterday_minus_now``: the value one day earlier minus now;
* ``hour_sin``, ``hour_cos``: the UTC hour of day.

Training: ``reg:absoluteerror``, 300 trees, depth 5, learning rate 0.05, subsample and column
sample 0.8, no early stopping. It is kept exactly as specified, so never tune it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from components.contracts import NODE, TIMESTAMP
from components.forecast.dataset import NS, ForecastDataset, Split

REFERENCE_LAGS = (1, 2, 3, 6, 12, 24, 48)
REFERENCE_WINDOWS = (3, 6, 12, 36, 72, 288)
DAY_SECONDS = 86_400
REFERENCE_PARAMS = {
    "objective": "reg:absoluteerror",
    "max_depth": 5,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
}
REFERENCE_TREES = 300


def reference_feature_names() -> list[str]:
    """The reference's feature columns, in order."""
    names = ["level"]
    names += [f"diff_lag_{k}" for k in REFERENCE_LAGS]
    for w in REFERENCE_WINDOWS:
        names += [f"mean_{w}_minus_now", f"std_{w}"]
    return [*names, "yesterday_minus_now", "hour_sin", "hour_cos"]


def grid_positions(nanos: np.ndarray, nodes: np.ndarray, step_seconds: int) -> np.ndarray:
    """Each row's step index on its node's grid (epoch-aligned, 0 at the node's first step)."""
    steps = nanos // (step_seconds * NS)
    first = pd.Series(steps).groupby(pd.factorize(nodes)[0]).transform("min").to_numpy()
    return (steps - first).astype(np.int64)


def reference_features(
    nanos: np.ndarray, nodes: np.ndarray, level: np.ndarray, step_seconds: int
) -> np.ndarray:
    """The reference feature matrix (float32, rows as given; rows sorted by node then time).

    Missing scrapes stay missing: each node's series is laid on its full grid, lags read NaN
    where the step was not scraped, and windows cover the samples present in them.
    """
    codes = pd.factorize(nodes)[0]
    position = grid_positions(nanos, nodes, step_seconds)
    columns = []
    lags: dict[int, np.ndarray] = {}
    day = max(1, round(DAY_SECONDS / step_seconds))
    wanted_lags = sorted({*REFERENCE_LAGS, day})
    rolling: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for rows in pd.Series(np.arange(len(codes))).groupby(codes).indices.values():
        grid = np.full(int(position[rows].max()) + 1, np.nan)
        grid[position[rows]] = level[rows]
        series = pd.Series(grid)
        for k in wanted_lags:
            lags.setdefault(k, np.full(len(level), np.nan))[rows] = series.shift(k).to_numpy()[
                position[rows]
            ]
        for w in REFERENCE_WINDOWS:
            window = series.rolling(w, min_periods=1)
            mean, std = rolling.setdefault(
                w, (np.full(len(level), np.nan), np.full(len(level), np.nan))
            )
            mean[rows] = window.mean().to_numpy()[position[rows]]
            std[rows] = window.std(ddof=0).to_numpy()[position[rows]]
    columns.append(level)
    columns += [level - lags[k] for k in REFERENCE_LAGS]
    for w in REFERENCE_WINDOWS:
        mean, std = rolling[w]
        columns += [mean - level, std]
    columns.append(lags[day] - level)
    seconds_of_day = (nanos // NS) % DAY_SECONDS
    angle = 2 * np.pi * seconds_of_day / DAY_SECONDS
    columns += [np.sin(angle), np.cos(angle)]
    return np.column_stack(columns).astype(np.float32)


@dataclass
class ReferenceForecaster:
    """The trained reference boosters: ``(resource, horizon name) -> booster``."""

    boosters: dict[tuple[str, str], xgb.Booster]
    matrices: dict[str, np.ndarray]
    train_rows: dict[str, int]  # "<resource>_<horizon>" -> rows it was trained on

    def predict(self, resource: str, horizon: str, level: np.ndarray, rows: np.ndarray):
        """Predicted level at ``t + h`` for the dataset ``rows`` (a boolean mask or indices)."""
        data = xgb.DMatrix(self.matrices[resource][rows], feature_names=reference_feature_names())
        return level[rows] + self.boosters[resource, horizon].predict(data)


def train_reference(
    dataset: ForecastDataset,
    split: Split,
    resources: Sequence[str],
    *,
    seed: int = 0,
    threads: int = 2,
    max_train_rows: int | None = None,
) -> ReferenceForecaster:
    """Train the reference on every row whose target lies before the node's train/test cut.

    ``max_train_rows`` (default: all rows, as specified) caps the rows with a seeded sample, for
    quick tests only.
    """
    frame = dataset.features
    nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    nodes = frame[NODE].to_numpy()
    boosters, matrices, counts = {}, {}, {}
    rng = np.random.default_rng(seed)
    for resource in resources:
        level = dataset.current[resource]
        matrix = reference_features(nanos, nodes, level, dataset.step_seconds)
        matrices[resource] = matrix
        for horizon in dataset.horizons:
            target = dataset.targets[resource, horizon.name]
            usable = split.train(dataset, horizon) & np.isfinite(target) & np.isfinite(level)
            rows = np.flatnonzero(usable)
            if max_train_rows is not None and len(rows) > max_train_rows:
                rows = np.sort(rng.choice(rows, max_train_rows, replace=False))
            data = xgb.DMatrix(
                matrix[rows], target[rows] - level[rows], feature_names=reference_feature_names()
            )
            params = {**REFERENCE_PARAMS, "seed": seed, "nthread": threads}
            boosters[resource, horizon.name] = xgb.train(params, data, REFERENCE_TREES)
            counts[f"{resource}_{horizon.name}"] = len(rows)
    return ReferenceForecaster(boosters, matrices, counts)
