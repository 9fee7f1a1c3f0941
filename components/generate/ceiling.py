"""The forecastability ceiling of the synthetic CPU: a latent-state oracle.

The oracle knows the generator's hidden state at ``t`` (``history.CpuParts``:
the held level, the calendar ahead, the slow, shared and fast AR(1) values, the bursts running)
and predicts their median at ``t + h``; it cannot know the shifts, bursts, pod changes, anomalies
or noise still to come. No forecaster that sees only the scraped series can beat it by much, so
its skill bounds what a goal on the synthetic data can ask.
"""

from __future__ import annotations

import numpy as np

from components.generate.cluster import make_nodes
from components.generate.history import (
    CPU_FLOOR,
    FAST_TAU_SECONDS,
    SHARED_TAU_SECONDS,
    SLOW_TAU_SECONDS,
    HistoryConfig,
    generate_node,
    latent_factors,
    node_load,
    noise_scale,
)

CEILING_HORIZONS = {"5m": 300, "15m": 900, "30m": 1800}


def oracle_cpu_forecast(parts, ahead_steps: int, step_seconds: int) -> np.ndarray:
    """The oracle's CPU forecast ``ahead_steps`` ahead, for every ``t`` with ``t + ahead`` on
    the grid (a series ``ahead_steps`` shorter than ``parts``)."""
    seconds = ahead_steps * step_seconds
    t = slice(0, len(parts.held) - ahead_steps)
    ahead = slice(ahead_steps, len(parts.held))
    log_factor = parts.slow[t] * np.exp(-seconds / SLOW_TAU_SECONDS)
    log_factor += parts.shared[t] * np.exp(-seconds / SHARED_TAU_SECONDS)
    fast = parts.fast[t] * np.exp(-seconds / FAST_TAU_SECONDS)
    level = parts.held[t] * parts.calendar[ahead] * np.exp(log_factor) + parts.bursts[t]
    return np.clip(level + fast * noise_scale(level), CPU_FLOOR, 1.0)


def latent_state_ceiling(config: HistoryConfig, train_fraction: float = 0.7) -> dict[str, float]:
    """CPU skill (1 - MAE / MAE of persistence) of the oracle at each of ``CEILING_HORIZONS`` on
    each node's last ``1 - train_fraction`` of steps, scored against the generated CPU (with its
    anomalies), as the forecaster's evaluation scores; and ``replica_match``, the share of the
    generated CPU samples the hidden state reproduces (all but the anomalies' samples)."""
    factors = latent_factors(config)
    step = config.step_seconds
    errors: dict[str, tuple[list, list]] = {name: ([], []) for name in CEILING_HORIZONS}
    matched = total = 0
    for node in make_nodes(config.nodes, config.seed):
        parts = node_load(config, node, factors).cpu
        cpu = generate_node(config, node, factors).cpu
        matched += int(np.sum(np.abs(np.clip(parts.cpu, CPU_FLOOR, 1.0) - cpu) < 1e-9))
        total += len(cpu)
        first = int(train_fraction * len(cpu))
        for name, seconds in CEILING_HORIZONS.items():
            ahead = max(1, seconds // step)
            forecast = oracle_cpu_forecast(parts, ahead, step)[first:]
            actual = cpu[first + ahead :]
            errors[name][0].append(np.abs(actual - forecast))
            errors[name][1].append(np.abs(actual - cpu[first : len(cpu) - ahead]))
    out = {
        name: 1 - float(np.mean(np.concatenate(oracle)) / np.mean(np.concatenate(persistence)))
        for name, (oracle, persistence) in errors.items()
    }
    out["replica_match"] = matched / max(total, 1)
    return out
