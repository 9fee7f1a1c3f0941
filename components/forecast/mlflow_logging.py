"""Logging a forecast experiment to MLflow, registering the model and running the gate."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from components.contracts import NODE
from components.features.definitions import FEATURE_NAMES
from components.forecast import plots
from components.forecast.evaluate import (
    METHODS,
    ForecastExperiment,
    evaluation_rows,
    predict_levels,
)
from components.forecast.model import column_name, load_forecaster
from components.forecast.pyfunc import ARTIFACT_KEY, ForecasterModel
from components.tracking.gate import FORECASTER_MODEL, PromotionDecision, promote_if_better
from components.tracking.runs import log_figure

GATE_METRIC = "validation_mae"
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


def mean_test_mae(experiment: ForecastExperiment, predictions: dict[str, np.ndarray]) -> float:
    """The gate metric of some predictions: mean MAE over resources and horizons, test rows."""
    dataset, split = experiment.dataset, experiment.split
    values = []
    for resource in experiment.forecaster.resources:
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


def log_experiment(
    client: MlflowClient,
    run_id: str,
    experiment: ForecastExperiment,
    *,
    params: dict,
    digest: str,
    sample_nodes: int = 3,
) -> dict[str, float]:
    """Log params, metrics (model and baselines), the digest, the report and the plots."""
    metrics = report_metrics(experiment.report)
    stamp = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, stamp, 0) for key, value in metrics.items()],
        params=[
            Param(key, str(value)) for key, value in {**params, "dataset_digest": digest}.items()
        ],
        tags=[RunTag("dataset_digest", digest)],
    )
    client.log_dict(run_id, experiment.report, "report.json")
    nodes = sorted(experiment.dataset.features[NODE].unique())[:sample_nodes]
    dataset = experiment.dataset
    middle = dataset.horizons[len(dataset.horizons) // 2].name
    for resource in experiment.forecaster.resources:
        figure = plots.forecast_vs_actual(experiment, resource, middle, nodes)
        log_figure(run_id, client, figure, f"plots/forecast_vs_actual_{resource}_{middle}.png")
        log_figure(
            run_id, client, plots.residuals(experiment, resource), f"plots/residuals_{resource}.png"
        )
        key = column_name(resource, middle)
        figure = plots.feature_importance(experiment.forecaster, key)
        log_figure(run_id, client, figure, f"plots/feature_importance_{key}.png")
    return metrics


def pip_requirements() -> list[str]:
    """The serving requirements, pinned to what trained the model (skips MLflow's inference)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "xgboost", "pandas", "numpy")]


def log_model(experiment: ForecastExperiment, run_id: str) -> str:
    """Log the forecaster as an MLflow pyfunc model (signature, input example) to ``run_id``.

    Uses the fluent API, so the caller has set the tracking URI. Returns the model URI.
    """
    import mlflow
    from mlflow.models import infer_signature

    example = input_example(experiment)
    signature = infer_signature(example, experiment.forecaster.predict(example))
    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        folder = experiment.forecaster.save(Path(tmp) / "forecaster")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ForecasterModel(),
                artifacts={ARTIFACT_KEY: str(folder)},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
            )
    return info.model_uri


def register_and_gate(
    client: MlflowClient,
    experiment: ForecastExperiment,
    *,
    model_uri: str,
    run_id: str,
    model_name: str = FORECASTER_MODEL,
) -> PromotionDecision:
    """Register ``model_uri`` as a new version and let the gate decide on ``champion``.

    The candidate's metric is its mean test MAE; the baselines are persistence and seasonal
    naive on the same rows; the champion is reloaded and re-scored on the same rows.
    """
    import mlflow

    version = mlflow.register_model(model_uri, model_name).version
    summary = experiment.report["summary"]

    def score_champion(uri: str) -> float:
        champion = load_forecaster(uri, tracking_uri=client.tracking_uri)
        rows = experiment.split.test(experiment.dataset)
        return mean_test_mae(experiment, predict_levels(champion, experiment.dataset, rows))

    return promote_if_better(
        client,
        model_name=model_name,
        candidate_version=str(version),
        metric=GATE_METRIC,
        higher_is_better=False,
        candidate=summary["model_mean_mae"],
        baselines={
            "persistence": summary["persistence_mean_mae"],
            "seasonal_naive": summary["seasonal_naive_mean_mae"],
        },
        score_champion=score_champion,
        run_id=run_id,
    )
