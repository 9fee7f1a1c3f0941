"""Behaviour of the load forecaster on series whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.forecast.evaluate import run_forecast_experiment
from components.forecast.model import ForecastParams

START = pd.Timestamp("2026-01-05T00:00:00Z")
STEP = 300
PARAMS = ForecastParams(
    n_estimators=150,
    max_train_rows=5000,
    early_stopping_rounds=15,
    quantile_early_stopping_rounds=15,
)


def frame(cpu: np.ndarray, memory: np.ndarray, node: str) -> pd.DataFrame:
    stamps = START + pd.to_timedelta(np.arange(len(cpu)) * STEP, unit="s")
    return pd.DataFrame(
        {TIMESTAMP: stamps, NODE: node, CPU_UTILIZATION: cpu, MEMORY_UTILIZATION: memory}
    )


def test_a_flat_series_forecasts_flat():
    steps = 4 * 86_400 // STEP
    metrics = pd.concat(
        [frame(np.full(steps, 0.2 + 0.1 * i), np.full(steps, 0.5), f"node-{i}") for i in range(3)],
        ignore_index=True,
    )
    experiment = run_forecast_experiment(metrics, ["5m", "30m"], 0.7, params=PARAMS)
    features = experiment.dataset.features
    predicted = experiment.forecaster.predict(features)
    for resource, column in (("cpu", CPU_UTILIZATION), ("memory", MEMORY_UTILIZATION)):
        current = features[column].to_numpy(dtype=np.float64)
        for horizon in ("5m", "30m"):
            np.testing.assert_allclose(predicted[f"{resource}_{horizon}"], current, atol=1e-6)
            np.testing.assert_allclose(predicted[f"{resource}_{horizon}_p90"], current, atol=1e-3)


def test_a_clean_daily_cycle_beats_persistence():
    rng = np.random.default_rng(0)
    steps = 6 * 86_400 // STEP
    hours = np.arange(steps) * STEP / 3600.0
    frames = []
    for i in range(3):
        cycle = np.sin(2 * np.pi * (hours - 3 * i) / 24)
        cpu = 0.4 + 0.3 * cycle + rng.normal(0, 0.003, steps)
        memory = 0.5 + 0.1 * cycle + rng.normal(0, 0.001, steps)
        frames.append(frame(cpu, memory, f"node-{i}"))
    metrics = pd.concat(frames, ignore_index=True)
    report = run_forecast_experiment(metrics, ["15m", "30m"], 0.7, params=PARAMS).report
    for resource in ("cpu", "memory"):
        for horizon in ("15m", "30m"):
            entry = report[resource][horizon]
            assert entry["model"]["mae"] < entry["persistence"]["mae"], (resource, horizon)
            assert entry["skill"] > 0.3, (resource, horizon, entry["skill"])
