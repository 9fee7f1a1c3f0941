"""Forecast skill on real traces: ours beside the fixed reference model of issue 16 and the
baselines, trained and scored on the same split of each trace, as one table per trace,
resource and horizon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from components.datasets.evaluation_sets import EvaluationTrace
from components.forecast.evaluate import run_forecast_experiment
from components.forecast.model import ForecastParams

SKILL_COLUMNS = ("ours", "reference", "seasonal_naive", "persistence")


def compare_on_traces(
    traces: Sequence[EvaluationTrace],
    horizons: Sequence[str],
    *,
    train_fraction: float = 0.7,
    max_train_rows: int | None = None,
) -> dict[str, dict]:
    """Per trace, the evaluation report of ours and the reference (``reference=True`` of
    :func:`components.forecast.evaluate.run_forecast_experiment`) on its own resources, both on
    at most ``max_train_rows`` rows per booster when given."""
    params = (
        ForecastParams()
        if max_train_rows is None
        else ForecastParams(max_train_rows=max_train_rows)
    )
    return {
        trace.label: run_forecast_experiment(
            trace.metrics,
            horizons,
            train_fraction,
            params=params,
            resources=trace.resources,
            reference=True,
            reference_rows=max_train_rows,
        ).report
        for trace in traces
    }


def _number(value) -> float:
    return np.nan if value is None else float(value)


def skill_table(reports: Mapping[str, dict]) -> pd.DataFrame:
    """One row per trace, resource and horizon: the skill (1 - MAE / MAE of persistence, so
    persistence is 0) of ours, the reference (NaN where the report has none) and seasonal naive,
    ours over the reference, ours' accuracy (1 - WAPE) beside persistence's and ours' P90
    coverage."""
    rows = []
    for label, report in reports.items():
        for resource in report["data"]["resources"]:
            for horizon in report["data"]["horizons"]:
                entry = report[resource][horizon]
                rows.append(
                    {
                        "trace": label,
                        "resource": resource,
                        "horizon": horizon,
                        "ours": _number(entry["skill"]),
                        "reference": _number(entry.get("reference", {}).get("skill")),
                        "seasonal_naive": _number(entry["seasonal_naive"]["skill"]),
                        "persistence": 0.0,
                        "ours_over_reference": _number(entry.get("skill_ratio")),
                        "ours_accuracy": _number(entry["model"]["accuracy"]),
                        "persistence_accuracy": _number(entry["persistence"]["accuracy"]),
                        "ours_p90_coverage": _number(entry["p90_coverage"]),
                    }
                )
    return pd.DataFrame(rows).set_index(["trace", "resource", "horizon"])
