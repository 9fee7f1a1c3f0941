"""A forecast experiment's figures, plots and pyfunc model for its MLflow run; its gate metric."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import NODE
from components.features.definitions import FEATURE_NAMES
from components.forecast import plots
from components.forecast.dataset import ForecastDataset, Split
from components.forecast.evaluate import METHODS, ForecastExperiment, evaluation_rows
from components.forecast.model import column_name
from components.forecast.pyfunc import ARTIFACT_KEY, ForecasterModel
from components.model_contracts import FORECASTER
from components.tracking.entrypoint import TrackedRun

GATE_METRIC = FORECASTER.gate_metric
EXAMPLE_ROWS = 5


def report_metrics(report: dict) -> dict[str, float]:
    """Flat ``name -> value`` metrics of a report (the ``metric=value`` lines and MLflow)."""
    out: dict[str, float] = {}
    summary = report["summary"]
    out[GATE_METRIC] = summary["model_mean_mae"]
    out["persistence_mae"] = summary["persistence_mean_mae"]
    out["seasonal_naive_mae"] = summary["seasonal_naive_mean_mae"]
    if summary["model_mean_skill"] is not None:
        out["validation_skill"] = summary["model_mean_skill"]
    for resource in report["data"]["resources"]:
        for horizon in report["data"]["horizons"]:
            entry = report[resource][horizon]
            for method in METHODS:
                prefix = f"{resource}_{horizon}" + ("" if method == "model" else f"_{method}")
                for name, value in entry[method].items():
                    if value is not None and not (method == "persistence" and name == "skill"):
                        out[f"{prefix}_{name}"] = value
            if entry["p90_coverage"] is not None:
                out[f"{resource}_{horizon}_p90_coverage"] = entry["p90_coverage"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def mean_test_mae(
    dataset: ForecastDataset,
    split: Split,
    resources: Sequence[str],
    predictions: dict[str, np.ndarray],
) -> float:
    """The gate metric of some predictions: mean MAE over resources and horizons, test rows."""
    values = []
    for resource in resources:
        for horizon in dataset.horizons:
            rows = evaluation_rows(dataset, split, resource, horizon.name)
            actual = dataset.targets[resource, horizon.name][rows]
            forecast = predictions[column_name(resource, horizon.name)][rows]
            values.append(float(np.mean(np.abs(forecast - actual))))
    return float(np.mean(values))


def input_example(experiment: ForecastExperiment) -> pd.DataFrame:
    """A few feature rows (each node's latest, complete where possible) for the signature."""
    features = experiment.dataset.features
    latest = features.groupby(NODE, sort=True).tail(1)
    complete = latest[latest[list(FEATURE_NAMES)].notna().all(axis=1)]
    rows = (complete if len(complete) else latest).head(EXAMPLE_ROWS)
    example = rows[[NODE]].reset_index(drop=True)
    values = rows[list(FEATURE_NAMES)].astype(np.float64).reset_index(drop=True)
    return pd.concat([example, values], axis=1)


def log_experiment(run: TrackedRun, experiment: ForecastExperiment, sample_nodes: int = 3):
    """Log the metrics (model and baselines), the report and the plots to ``run``."""
    run.log_metrics(report_metrics(experiment.report))
    run.log_dict(experiment.report, "report.json")
    nodes = sorted(experiment.dataset.features[NODE].unique())[:sample_nodes]
    dataset = experiment.dataset
    middle = dataset.horizons[len(dataset.horizons) // 2].name
    for resource in experiment.forecaster.resources:
        figure = plots.forecast_vs_actual(experiment, resource, middle, nodes)
        run.log_figure(figure, f"plots/forecast_vs_actual_{resource}_{middle}.png")
        run.log_figure(plots.residuals(experiment, resource), f"plots/residuals_{resource}.png")
        key = column_name(resource, middle)
        figure = plots.feature_importance(experiment.forecaster, key)
        run.log_figure(figure, f"plots/feature_importance_{key}.png")


def pip_requirements() -> list[str]:
    """The serving requirements, pinned to what trained the model (skips MLflow's inference)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "xgboost", "pandas", "numpy")]


def log_model(run: TrackedRun, experiment: ForecastExperiment) -> str:
    """Log the forecaster as an MLflow pyfunc model (signature, input example) to ``run``;
    returns the model URI."""
    from mlflow.models import infer_signature

    example = input_example(experiment)
    signature = infer_signature(example, experiment.forecaster.predict(example))
    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        folder = experiment.forecaster.save(Path(tmp) / "forecaster")
        return run.log_pyfunc_model(
            ForecasterModel(),
            {ARTIFACT_KEY: str(folder)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )


def trace_metrics(label: str, report: dict) -> dict[str, float]:
    """A real-trace evaluation's flat metrics, each prefixed ``<label>_``, with the reference's
    skill and the skill ratio when the report carries them."""
    out = {f"{label}_{name}": value for name, value in report_metrics(report).items()}
    for resource in report["data"]["resources"]:
        for horizon in report["data"]["horizons"]:
            entry = report[resource][horizon]
            if "reference" not in entry:
                continue
            for name, value in (
                ("reference_skill", entry["reference"]["skill"]),
                ("reference_accuracy", entry["reference"]["accuracy"]),
                ("skill_ratio", entry["skill_ratio"]),
            ):
                if value is not None and np.isfinite(value):
                    out[f"{label}_{resource}_{horizon}_{name}"] = float(value)
    return out


def log_trace_evaluation(
    run: TrackedRun, label: str, experiment: ForecastExperiment, sample_nodes: int = 3
) -> None:
    """Log one real trace's figures (:func:`trace_metrics`), its report and, per resource, the
    forecast against the actual with its P90 band at the middle horizon (``traces/<label>/``)."""
    run.log_metrics(trace_metrics(label, experiment.report))
    run.log_dict(experiment.report, f"traces/{label}/report.json")
    dataset = experiment.dataset
    nodes = sorted(dataset.features[NODE].unique())[:sample_nodes]
    middle = dataset.horizons[len(dataset.horizons) // 2].name
    for resource in experiment.forecaster.resources:
        figure = plots.forecast_vs_actual(experiment, resource, middle, nodes)
        run.log_figure(figure, f"traces/{label}/forecast_vs_actual_{resource}_{middle}.png")
