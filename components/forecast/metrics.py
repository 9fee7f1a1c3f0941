"""Point-forecast error metrics: MAE, RMSE, accuracy (1 - WAPE), P90 absolute error, skill."""

from __future__ import annotations

import math

import numpy as np

METRIC_NAMES = ("mae", "rmse", "accuracy", "p90_abs_error")


def _errors(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if actual.shape != predicted.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {predicted.shape}")
    return predicted - actual


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error (NaN for no rows)."""
    errors = _errors(actual, predicted)
    return float(np.mean(np.abs(errors))) if errors.size else math.nan


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error (NaN for no rows)."""
    errors = _errors(actual, predicted)
    return float(np.sqrt(np.mean(errors**2))) if errors.size else math.nan


def accuracy(actual: np.ndarray, predicted: np.ndarray) -> float:
    """1 - WAPE = 1 - sum|error| / sum|actual| (NaN when the actuals sum to zero)."""
    errors = _errors(actual, predicted)
    total = float(np.sum(np.abs(actual)))
    return 1.0 - float(np.sum(np.abs(errors))) / total if total > 0 else math.nan


def p90_abs_error(actual: np.ndarray, predicted: np.ndarray) -> float:
    """The 90th percentile of the absolute errors (NaN for no rows)."""
    errors = _errors(actual, predicted)
    return float(np.quantile(np.abs(errors), 0.9)) if errors.size else math.nan


def skill(model_mae: float, persistence_mae: float) -> float:
    """1 - MAE_model / MAE_persistence (NaN when persistence is perfect)."""
    return 1.0 - model_mae / persistence_mae if persistence_mae > 0 else math.nan


def point_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` for one forecast."""
    return {
        "mae": mae(actual, predicted),
        "rmse": rmse(actual, predicted),
        "accuracy": accuracy(actual, predicted),
        "p90_abs_error": p90_abs_error(actual, predicted),
    }


def coverage(actual: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals at or below an upper forecast (about 0.9 for a good P90)."""
    actual = np.asarray(actual, dtype=np.float64)
    return (
        float(np.mean(actual <= np.asarray(upper, dtype=np.float64))) if actual.size else math.nan
    )
