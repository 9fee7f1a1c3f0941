"""Labelled node anomalies injected into synthetic series: what an anomaly detector must find."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.generate.signals import TimeAxis

ANOMALY_KINDS = ("cpu_saturation", "memory_leak", "flatline", "noisy_neighbour", "flapping")

_DURATION_SECONDS = {
    "cpu_saturation": (20 * 60, 120 * 60),
    "memory_leak": (2 * 3600, 8 * 3600),
    "flatline": (30 * 60, 180 * 60),
    "noisy_neighbour": (30 * 60, 90 * 60),
    "flapping": (30 * 60, 120 * 60),
}
_MIN_GAP_SECONDS = 2 * 3600


@dataclass(frozen=True)
class InjectedAnomaly:
    kind: str
    start: int
    end: int  # exclusive step index


def plan_anomalies(
    rng: np.random.Generator, axis: TimeAxis, count: int, first_kind: int = 0
) -> list[InjectedAnomaly]:
    """Place ``count`` anomalies, non-overlapping and at least 2 h apart.

    Kinds take turns from ``first_kind`` on, so that a cluster (each node starting at another
    kind) holds every kind in about equal numbers.
    """
    planned: list[InjectedAnomaly] = []
    gap = axis.steps_for(_MIN_GAP_SECONDS)
    for _ in range(count * 20):
        if len(planned) == count:
            break
        kind = ANOMALY_KINDS[(first_kind + len(planned)) % len(ANOMALY_KINDS)]
        length = axis.steps_for(rng.uniform(*_DURATION_SECONDS[kind]))
        if length + 2 * gap >= axis.steps:
            continue
        start = int(rng.integers(gap, axis.steps - length - gap))
        end = start + length
        if all(end + gap <= a.start or start >= a.end + gap for a in planned):
            planned.append(InjectedAnomaly(kind, start, end))
    return sorted(planned, key=lambda a: a.start)


def inject(
    rng: np.random.Generator,
    axis: TimeAxis,
    anomaly: InjectedAnomaly,
    cpu: np.ndarray,
    memory: np.ndarray,
    present: np.ndarray,
) -> None:
    """Apply one anomaly to the node's series in place."""
    s, e = anomaly.start, anomaly.end
    n = e - s
    if anomaly.kind == "cpu_saturation":
        ramp = np.minimum(1.0, np.arange(n) / axis.steps_for(120))
        level = rng.uniform(0.95, 0.99) + rng.normal(0, 0.008, n)
        cpu[s:e] = cpu[s:e] * (1 - ramp) + level * ramp
    elif anomaly.kind == "memory_leak":
        ceiling = rng.uniform(0.94, 0.98)
        memory[s:e] = memory[s:e] + (ceiling - memory[s]) * np.linspace(0, 1, n) ** 1.3
    elif anomaly.kind == "flatline":
        cpu[s:e] = cpu[s]
        memory[s:e] = memory[s]
    elif anomaly.kind == "noisy_neighbour":
        period = max(3, axis.steps_for(rng.uniform(180, 480)))
        width = min(axis.steps_for(rng.uniform(30, 90)), period // 3)
        spikes = (np.arange(n) % period) < width
        cpu[s:e] += spikes * rng.uniform(0.35, 0.55)
    elif anomaly.kind == "flapping":
        phase = axis.steps_for(rng.uniform(60, 240))
        down = ((np.arange(n) // phase) % 2) == 1
        present[s:e] &= ~down
        cpu[s:e] = np.where(down, cpu[s:e], rng.uniform(0.02, 0.06) + rng.normal(0, 0.01, n))
        memory[s:e] = np.where(down, memory[s:e], memory[s] * 0.45)
    else:
        raise ValueError(f"unknown anomaly kind {anomaly.kind!r}")
