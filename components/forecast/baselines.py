"""The baselines every forecast is compared with, on the same rows."""

from __future__ import annotations

import numpy as np

from components.forecast.dataset import ForecastDataset

BASELINES = ("persistence", "seasonal_naive")


def persistence(dataset: ForecastDataset, resource: str) -> np.ndarray:
    """The last observed value: the level at ``t`` for every horizon."""
    return dataset.current[resource]


def seasonal_naive(dataset: ForecastDataset, resource: str, horizon: str) -> np.ndarray:
    """The same time yesterday: the level at ``t + h - 1 day`` (NaN when not observed)."""
    return dataset.seasonal[resource, horizon]


def baseline_forecasts(
    dataset: ForecastDataset, resource: str, horizon: str
) -> dict[str, np.ndarray]:
    """Every baseline's forecast of ``resource`` at ``horizon``, by name."""
    return {
        "persistence": persistence(dataset, resource),
        "seasonal_naive": seasonal_naive(dataset, resource, horizon),
    }
