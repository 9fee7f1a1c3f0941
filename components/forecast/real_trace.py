"""A trained forecaster scored on a real trace, as the promotion gate compares candidates.

The model is used as it was trained (nothing is refitted on the trace): each node's first
``train_fraction`` of history only feeds the features, the rest is scored against persistence
and seasonal naive on the same rows, as ``mlsched evaluate forecast`` scores its own model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from components.errors import MlschedError
from components.forecast.dataset import build_forecast_dataset, time_split
from components.forecast.evaluate import ForecastExperiment, build_report, predict_levels
from components.forecast.model import LoadForecaster
from components.model_contracts import FORECASTER

DEFAULT_TRAIN_FRACTION = 0.7


def restricted(
    forecaster: LoadForecaster, resources: Sequence[str], horizons: Sequence[str] | None = None
) -> LoadForecaster:
    """The same boosters, predicting only ``resources`` (and ``horizons``) of the model's own.

    Raises:
        MlschedError: the model predicts none of ``resources`` or lacks a horizon.
    """
    kept = tuple(r for r in forecaster.resources if r in resources)
    if not kept:
        raise MlschedError(
            f"the forecaster predicts {', '.join(forecaster.resources)}, "
            f"the trace has {', '.join(resources)}: nothing to score"
        )
    steps = forecaster.horizons
    if horizons is not None:
        known = {h.name: h for h in forecaster.horizons}
        missing = [h for h in horizons if h not in known]
        if missing:
            raise MlschedError(f"the forecaster has no horizon {', '.join(missing)}")
        steps = tuple(known[h] for h in horizons)
    return dataclasses.replace(forecaster, resources=kept, horizons=steps)


def score_on_trace(
    forecaster: LoadForecaster,
    metrics: pd.DataFrame,
    resources: Sequence[str],
    *,
    horizons: Sequence[str] | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> ForecastExperiment:
    """Score ``forecaster`` on the last ``1 - train_fraction`` of each node of ``metrics``.

    Args:
        forecaster: a trained model (:func:`components.forecast.model.load_forecaster`).
        metrics: the trace as node metrics, at its own step.
        resources: the trace's meaningful resources (CPU alone for a CPU-only trace).
        horizons: score these of the model's horizons (all by default).

    Returns:
        The experiment (report as :func:`components.forecast.evaluate.build_report`, whose
        ``summary.model_mean_mae`` is the gate metric on the trace).
    """
    model = restricted(forecaster, resources, horizons)
    names = [h.name for h in model.horizons]
    dataset = build_forecast_dataset(metrics, names)
    split = time_split(dataset, train_fraction)
    predictions = predict_levels(model, dataset, split.test(dataset))
    report = build_report(dataset, split, model, predictions, train_fraction)
    return ForecastExperiment(dataset, split, model, report, predictions)


def gate_figures(experiment: ForecastExperiment) -> tuple[float, dict[str, float]]:
    """The gate metric (mean MAE over resources and horizons) of a scored trace and its
    baselines' on the same rows."""
    summary = experiment.report["summary"]
    baselines = {name: summary[f"{name}_mean_mae"] for name in FORECASTER.baselines}
    return summary["model_mean_mae"], baselines
