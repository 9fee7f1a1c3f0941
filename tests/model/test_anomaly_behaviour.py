"""Behaviour of the anomaly detector: quiet on normal series, catches each injected anomaly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.anomaly.evaluate import run_anomaly_evaluation
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP

T0 = pd.Timestamp("2026-01-05T00:00:00Z")
DAYS = 3
TRAIN_FRACTION = 0.5


def cycle_metrics(nodes: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = np.arange(DAYS * 1440)
    frames = []
    for i in range(nodes):
        phase = 2 * np.pi * minutes / 1440 + i
        noise = rng.normal(0, 0.02, len(minutes))
        frames.append(
            pd.DataFrame(
                {
                    TIMESTAMP: T0 + pd.to_timedelta(minutes, unit="min"),
                    NODE: f"n{i}",
                    CPU_UTILIZATION: np.clip(0.3 + 0.15 * np.sin(phase) + noise, 0, 1),
                    MEMORY_UTILIZATION: 0.5
                    + 0.02 * np.sin(phase)
                    + rng.normal(0, 0.003, len(minutes)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def window(hour: float, hours: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = T0 + pd.Timedelta(hours=hour)
    return start, start + pd.Timedelta(hours=hours)


def rows(frame: pd.DataFrame, node: str, span) -> pd.Series:
    return (frame[NODE] == node) & (frame[TIMESTAMP] >= span[0]) & (frame[TIMESTAMP] <= span[1])


INJECTED = {
    "n0": ("cpu_saturation", window(50, 1.0)),
    "n1": ("noisy_neighbour", window(55, 1.0)),
    "n2": ("flatline", window(60, 1.5)),
    "n3": ("memory_leak", window(52, 6.0)),
    "n4": ("flapping", window(62, 1.0)),
}


def inject(metrics: pd.DataFrame) -> pd.DataFrame:
    out = metrics.copy()
    rng = np.random.default_rng(1)
    for node, (kind, span) in INJECTED.items():
        inside = rows(out, node, span)
        n = int(inside.sum())
        if kind == "cpu_saturation":
            out.loc[inside, CPU_UTILIZATION] = 0.97 + rng.normal(0, 0.008, n)
        elif kind == "noisy_neighbour":
            spikes = (np.arange(n) % 5) < 1
            out.loc[inside, CPU_UTILIZATION] += spikes * 0.45
        elif kind == "flatline":
            out.loc[inside, [CPU_UTILIZATION, MEMORY_UTILIZATION]] = (
                out.loc[inside, [CPU_UTILIZATION, MEMORY_UTILIZATION]].iloc[0].to_numpy()
            )
        elif kind == "memory_leak":
            start = out.loc[inside, MEMORY_UTILIZATION].iloc[0]
            out.loc[inside, MEMORY_UTILIZATION] = start + (0.97 - start) * np.linspace(0, 1, n)
        elif kind == "flapping":
            down = (np.arange(n) // 2) % 2 == 1
            out = out.drop(index=out.index[inside][down])
    out[CPU_UTILIZATION] = out[CPU_UTILIZATION].clip(0, 1.0)
    return out.reset_index(drop=True)


@pytest.fixture(scope="module")
def injected_run():
    metrics = inject(cycle_metrics(nodes=6))
    labels = {node: [span] for node, (_, span) in INJECTED.items()}
    return run_anomaly_evaluation(metrics, labels, TRAIN_FRACTION)


def test_flat_series_raise_no_alarm():
    metrics = cycle_metrics(nodes=3).assign(**{CPU_UTILIZATION: 0.4, MEMORY_UTILIZATION: 0.6})
    run = run_anomaly_evaluation(metrics, {}, TRAIN_FRACTION)
    assert not run.scored["alarm"].any()
    assert run.events.empty


def test_normal_cycles_raise_few_alarms():
    run = run_anomaly_evaluation(cycle_metrics(nodes=4, seed=5), {}, TRAIN_FRACTION)
    assert run.report["overall"]["point_fpr"] <= 0.02
    assert len(run.events) <= 2


@pytest.mark.parametrize("node", sorted(INJECTED))
def test_each_injected_anomaly_is_caught(injected_run, node):
    kind, (start, end) = INJECTED[node]
    events = injected_run.events[injected_run.events[NODE] == node]
    overlapping = events[(events["start"] <= end) & (events["end"] >= start)]
    assert len(overlapping) >= 1, f"{kind} on {node} not caught"


def test_injected_anomalies_are_found_precisely(injected_run):
    overall = injected_run.report["overall"]
    assert overall["window_recall"] == 1.0
    assert overall["event_precision"] >= 0.5
    assert overall["point_fpr"] <= 0.05
