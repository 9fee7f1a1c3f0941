"""Honest evaluation: train on the first part of each node's history, score the rest.

The model and both baselines are scored on the same rows: test rows (at or after the node's
train/test boundary) whose target, current value and same-time-yesterday value were observed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import NODE
from components.durations import format_duration
from components.errors import MlschedError
from components.features.definitions import RESOURCES
from components.forecast import metrics as m
from components.forecast.baselines import BASELINES, baseline_forecasts
from components.forecast.dataset import (
    DEFAULT_HORIZONS,
    ForecastDataset,
    Split,
    build_forecast_dataset,
    time_split,
)
from components.forecast.model import (
    ForecastParams,
    LoadForecaster,
    boosting_threads,
    column_name,
    train_forecaster,
)
from components.forecast.reference import ReferenceForecaster, train_reference

METHODS = ("model", *BASELINES)


@dataclass
class ForecastExperiment:
    """Everything one train-and-evaluate run produced."""

    dataset: ForecastDataset
    split: Split
    forecaster: LoadForecaster
    report: dict
    predictions: dict[str, np.ndarray]  # column -> predicted level per dataset row (test rows)
    reference: ReferenceForecaster | None = None


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def evaluation_rows(dataset: ForecastDataset, split: Split, resource: str, horizon: str):
    """Test rows on which the model and both baselines are scored for one resource/horizon."""
    observed = np.isfinite(dataset.targets[resource, horizon]) & np.isfinite(
        dataset.current[resource]
    )
    rows = split.test(dataset) & observed
    if not rows.any():
        raise MlschedError(
            f"horizon {horizon}: no test rows with an observed {resource} target; the history is "
            "too short for this horizon and train fraction"
        )
    seasonal = rows & np.isfinite(dataset.seasonal[resource, horizon])
    if not seasonal.any():
        raise MlschedError(
            f"horizon {horizon}: no test row has a {resource} value one day earlier, so the "
            "seasonal-naive baseline cannot be scored; the history must cover more than one day "
            "before its test part (use a longer file or a smaller train fraction)"
        )
    return np.flatnonzero(seasonal)


def predict_levels(
    forecaster: LoadForecaster, dataset: ForecastDataset, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The forecaster's predictions by output column, for every dataset row (NaN outside
    ``rows``, a boolean mask, when given)."""
    selected = np.ones(len(dataset.features), dtype=bool) if rows is None else rows
    features = dataset.features.loc[selected, [NODE, *forecaster.feature_names]]
    frame = forecaster.predict(features.reset_index(drop=True))
    out = {}
    for column in forecaster.output_columns:
        values = np.full(len(selected), np.nan)
        values[selected] = frame[column].to_numpy()
        out[column] = values
    return out


def score_pair(
    dataset: ForecastDataset,
    rows: np.ndarray,
    resource: str,
    horizon: str,
    predictions: dict[str, np.ndarray],
) -> dict:
    """The report entry of one resource and horizon."""
    actual = dataset.targets[resource, horizon][rows]
    forecasts = {"model": predictions[column_name(resource, horizon)]}
    forecasts.update(baseline_forecasts(dataset, resource, horizon))
    scored = {name: m.point_metrics(actual, forecast[rows]) for name, forecast in forecasts.items()}
    persistence_mae = scored["persistence"]["mae"]
    entry: dict = {"rows": int(len(rows))}
    for name in METHODS:
        values = {k: _clean(v) for k, v in scored[name].items()}
        values["skill"] = _clean(m.skill(scored[name]["mae"], persistence_mae))
        entry[name] = values
    entry["skill"] = entry["model"]["skill"]
    upper = predictions[column_name(resource, horizon, upper=True)][rows]
    entry["p90_coverage"] = _clean(m.coverage(actual, upper))
    return entry


def build_report(
    dataset: ForecastDataset,
    split: Split,
    forecaster: LoadForecaster,
    predictions: dict[str, np.ndarray],
    train_fraction: float,
) -> dict:
    """The evaluation report (see the module docstring of :mod:`components.forecast.cli`)."""
    test = split.test(dataset)
    nodes = dataset.features[NODE]
    report: dict = {
        "data": {
            "step_seconds": dataset.step_seconds,
            "step": format_duration(dataset.step_seconds),
            "nodes": int(nodes.nunique()),
            "rows": int(len(nodes)),
            "train_rows": int((~test).sum()),
            "test_rows": int(test.sum()),
            "train_fraction": train_fraction,
            "horizons": [h.name for h in dataset.horizons],
            "resources": list(forecaster.resources),
        }
    }
    for resource in forecaster.resources:
        report[resource] = {}
        for horizon in dataset.horizons:
            rows = evaluation_rows(dataset, split, resource, horizon.name)
            report[resource][horizon.name] = score_pair(
                dataset, rows, resource, horizon.name, predictions
            )
    report["summary"] = summary(report, forecaster.resources, [h.name for h in dataset.horizons])
    return report


def summary(report: dict, resources: Sequence[str], horizons: Sequence[str]) -> dict:
    """Mean MAE per method over every resource and horizon, and the model's mean skill."""
    out = {}
    for name in METHODS:
        values = [report[r][h][name]["mae"] for r in resources for h in horizons]
        out[f"{name}_mean_mae"] = _clean(float(np.mean(values)))
    skills = [report[r][h]["skill"] for r in resources for h in horizons]
    skills = [s for s in skills if s is not None]
    out["model_mean_skill"] = _clean(float(np.mean(skills))) if skills else None
    return out


def run_forecast_experiment(
    metrics_frame: pd.DataFrame,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    train_fraction: float = 0.7,
    *,
    params: ForecastParams | None = None,
    resources: Sequence[str] | None = None,
    step_seconds: int | None = None,
    features: pd.DataFrame | None = None,
    progress: bool = False,
    reference: bool = False,
    reference_rows: int | None = None,
) -> ForecastExperiment:
    """Build the dataset (from ``features``, the feature table of ``metrics_frame``, when
    given), split it by time, train, predict and score (see the module doc).

    With ``reference``, the fixed reference model (:mod:`components.forecast.reference`) is
    trained on the same split (on at most ``reference_rows`` rows, a seeded sample, when given)
    and scored on the same rows: each report entry gains ``reference`` (its metrics and skill)
    and ``skill_ratio`` (the model's skill over the reference's)."""
    params = params or ForecastParams()
    resources = tuple(resources or RESOURCES)
    unknown = [r for r in resources if r not in RESOURCES]
    if unknown:
        raise MlschedError(f"unknown resource(s) {', '.join(unknown)}; use {', '.join(RESOURCES)}")
    dataset = build_forecast_dataset(
        metrics_frame, horizons, step_seconds=step_seconds, features=features
    )
    split = time_split(dataset, train_fraction, params.validation_fraction)
    for resource in resources:  # fail on a too-short history before spending time on training
        for horizon in dataset.horizons:
            evaluation_rows(dataset, split, resource, horizon.name)
    forecaster = train_forecaster(dataset, split, params, resources=resources, progress=progress)
    predictions = predict_levels(forecaster, dataset, split.test(dataset))
    report = build_report(dataset, split, forecaster, predictions, train_fraction)
    trained_reference = None
    if reference:
        trained_reference = train_reference(
            dataset,
            split,
            resources,
            seed=params.seed,
            threads=boosting_threads(params.n_jobs),
            max_train_rows=reference_rows,
        )
        add_reference(report, dataset, split, trained_reference)
    return ForecastExperiment(dataset, split, forecaster, report, predictions, trained_reference)


def add_reference(
    report: dict, dataset: ForecastDataset, split: Split, reference: ReferenceForecaster
) -> None:
    """Score the reference on each entry's rows; add ``reference`` and ``skill_ratio``."""
    report["data"]["reference_rows"] = reference.train_rows
    for resource in report["data"]["resources"]:
        for horizon in report["data"]["horizons"]:
            rows = evaluation_rows(dataset, split, resource, horizon)
            actual = dataset.targets[resource, horizon][rows]
            forecast = reference.predict(resource, horizon, dataset.current[resource], rows)
            values = {k: _clean(v) for k, v in m.point_metrics(actual, forecast).items()}
            entry = report[resource][horizon]
            values["skill"] = _clean(m.skill(values["mae"], entry["persistence"]["mae"]))
            entry["reference"] = values
            ratio = None
            if entry["skill"] is not None and values["skill"] not in (None, 0.0):
                ratio = _clean(entry["skill"] / values["skill"])
            entry["skill_ratio"] = ratio


def evaluate_forecast(
    metrics_frame: pd.DataFrame,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    train_fraction: float = 0.7,
    *,
    params: ForecastParams | None = None,
    resources: Sequence[str] | None = None,
    progress: bool = False,
    reference: bool = False,
    reference_rows: int | None = None,
) -> dict:
    """Train on the first ``train_fraction`` of each node's history and report on the rest.

    Returns:
        ``{"data": {...}, "<resource>": {"<horizon>": {"model": {...}, "persistence": {...},
        "seasonal_naive": {...}, "skill": float, "rows": int, "p90_coverage": float}}, "summary":
        {...}}``; every method holds ``mae``, ``rmse``, ``accuracy``, ``p90_abs_error`` and
        ``skill`` (1 - MAE / MAE of persistence). Undefined values are ``None``.

    Raises:
        MlschedError: a history too short for a horizon, a bad fraction or horizon.
    """
    experiment = run_forecast_experiment(
        metrics_frame,
        horizons,
        train_fraction,
        params=params,
        resources=resources,
        progress=progress,
        reference=reference,
        reference_rows=reference_rows,
    )
    return experiment.report
