"""Synthetic node-metrics history with the structure of a real cluster, and its anomaly labels.

Per node: a role-shaped load (web daily curves, steady services, night-heavy batch bursts, mixed,
long GPU training plateaus), weekly cycle, slow trend, correlated cluster- and role-level noise,
pod churn that moves requests and load in steps, missing scrapes and outages, and labelled
anomalies. Each node draws from its own seeded stream, so a node's series depends only on the seed,
the grid and its index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.generate.anomalies import InjectedAnomaly, inject, plan_anomalies
from components.generate.cluster import ROLES, SyntheticNode
from components.generate.signals import (
    TimeAxis,
    ar1,
    bursts,
    daily_curve,
    occupancy,
    smooth,
    weekly_factor,
)

DAY = 86_400


@dataclass(frozen=True)
class RoleProfile:
    base: float
    daily_amplitude: float
    peak_hour: float
    sharpness: float
    weekend_level: float
    bursts_per_hour: float
    burst_seconds: tuple[float, float]
    burst_height: tuple[float, float]
    noise_sd: float
    live_pods: float
    pod_lifetime_seconds: float
    memory_request_target: float


ROLE_PROFILES = {
    "web": RoleProfile(0.07, 0.48, 14.5, 2.0, 0.55, 0.0, (0, 0), (0, 0), 0.028, 16, 2 * DAY, 0.55),
    "service": RoleProfile(
        0.30, 0.10, 13.0, 1.0, 0.9, 0.0, (0, 0), (0, 0), 0.015, 10, 4 * DAY, 0.70
    ),
    "batch": RoleProfile(
        0.05, 0.05, 3.0, 1.0, 1.0, 0.9, (600, 5400), (0.12, 0.40), 0.02, 12, 3 * 3600, 0.50
    ),
    "mixed": RoleProfile(
        0.12, 0.25, 15.0, 1.5, 0.7, 0.4, (600, 3600), (0.08, 0.25), 0.022, 14, DAY, 0.55
    ),
    "gpu": RoleProfile(
        0.04,
        0.02,
        12.0,
        1.0,
        1.0,
        0.10,
        (2 * 3600, 10 * 3600),
        (0.45, 0.65),
        0.015,
        4,
        10 * 3600,
        0.60,
    ),
}


@dataclass(frozen=True)
class HistoryConfig:
    """What to generate. ``end_epoch`` is the UTC second just after the last sample."""

    nodes: int = 12
    days: float = 14
    step_seconds: int = 30
    seed: int = 0
    end_epoch: int = 0
    anomalies_per_node_day: float = 0.2
    missing_scrape_ratio: float = 0.002
    outages_per_node_week: float = 1.0

    @property
    def axis(self) -> TimeAxis:
        steps = int(round(self.days * DAY / self.step_seconds))
        return TimeAxis(self.end_epoch - steps * self.step_seconds, self.step_seconds, steps)


@dataclass
class NodeHistory:
    """One node's generated series (on the full grid) and what was injected into it."""

    node: SyntheticNode
    cpu: np.ndarray
    memory: np.ndarray
    present: np.ndarray
    pod_count: np.ndarray
    cpu_requested_ratio: np.ndarray
    memory_requested_ratio: np.ndarray
    network_receive_bytes_per_second: np.ndarray
    anomalies: list[InjectedAnomaly]
    pods: pd.DataFrame = field(repr=False)


def latent_factors(config: HistoryConfig) -> dict[str, np.ndarray]:
    """Cluster-wide and per-role slow noise that makes nodes move together."""
    axis = config.axis
    factors = {}
    for index, name in enumerate(("cluster", *ROLES)):
        rng = np.random.default_rng([config.seed, 2, index])
        sd = 0.05 if name == "cluster" else 0.04
        factors[name] = ar1(rng, axis.steps, axis.step_seconds, 2 * 3600, sd)
    return factors


def _node_pods(rng: np.random.Generator, axis: TimeAxis, node: SyntheticNode) -> pd.DataFrame:
    """Pods running on the node over time: Poisson arrivals, exponential lifetimes, requests."""
    profile = ROLE_PROFILES[node.role]
    duration = axis.steps * axis.step_seconds
    live = profile.live_pods
    lifetime = profile.pod_lifetime_seconds
    initial = rng.poisson(live)
    arrivals = rng.poisson(live * duration / lifetime)
    starts_s = np.concatenate([np.zeros(initial), np.sort(rng.uniform(0, duration, arrivals))])
    lifetimes = np.maximum(rng.exponential(lifetime, initial + arrivals), 120)
    starts = (starts_s / axis.step_seconds).astype(np.int64)
    ends = np.minimum(((starts_s + lifetimes) / axis.step_seconds).astype(np.int64), axis.steps)
    ends = np.maximum(ends, starts + 1)
    size = rng.lognormal(0, 0.35, len(starts))
    cpu_request = node.machine.cpu_cores * 0.6 / live * size
    memory_share = profile.memory_request_target / live * rng.lognormal(0, 0.3, len(starts))
    names = [f"{node.name}-pod-{i:05d}" for i in range(len(starts))]
    return pd.DataFrame(
        {
            "pod": names,
            NODE: node.name,
            "start_step": starts,
            "end_step": ends,
            "cpu_request_cores": np.round(cpu_request, 3),
            "memory_request_bytes": np.round(memory_share * node.machine.memory_bytes, -6),
        }
    )


def generate_node(
    config: HistoryConfig, node: SyntheticNode, factors: dict[str, np.ndarray]
) -> NodeHistory:
    """Generate one node's full-resolution series."""
    axis = config.axis
    rng = np.random.default_rng([config.seed, 3, node.index])
    profile = ROLE_PROFILES[node.role]
    n = axis.steps
    cores = node.machine.cpu_cores

    pods = _node_pods(rng, axis, node)
    starts, ends = pods["start_step"].to_numpy(), pods["end_step"].to_numpy()
    pod_count = occupancy(n, starts, ends, np.ones(len(pods)))
    cpu_ratio = occupancy(n, starts, ends, pods["cpu_request_cores"].to_numpy()) / cores
    memory_ratio = (
        occupancy(n, starts, ends, pods["memory_request_bytes"].to_numpy())
        / node.machine.memory_bytes
    )

    hour = axis.hour_of_day + rng.normal(0, 0.5)
    shape = profile.daily_amplitude * daily_curve(hour, profile.peak_hour, profile.sharpness)
    shape *= weekly_factor(axis.day_of_week, profile.weekend_level)
    if profile.bursts_per_hour:
        shape = shape + bursts(
            rng, axis, profile.bursts_per_hour, profile.burst_seconds, profile.burst_height, 2.5
        )
    pod_factor = 0.6 + 0.4 * cpu_ratio / max(cpu_ratio.mean(), 1e-6)
    trend = rng.uniform(-0.06, 0.08) * axis.elapsed_fraction
    cpu = (profile.base + shape) * pod_factor + trend
    cpu += factors["cluster"] + 0.8 * factors[node.role]
    cpu += ar1(rng, n, axis.step_seconds, 600, profile.noise_sd)
    cpu += rng.normal(0, profile.noise_sd * 0.5, n)
    cpu = np.clip(cpu, 0.005, 1.0)

    efficiency = rng.uniform(0.55, 0.85)
    memory = 0.06 + memory_ratio * efficiency + 0.08 * smooth(cpu, axis.step_seconds, 1800)
    memory += rng.uniform(0.0, 0.06) * axis.elapsed_fraction
    memory += ar1(rng, n, axis.step_seconds, 3600, 0.01) + rng.normal(0, 0.002, n)
    memory = np.clip(memory, 0.02, 0.93)

    present = rng.uniform(size=n) >= config.missing_scrape_ratio
    outages = rng.poisson(config.outages_per_node_week * config.days / 7)
    for start in rng.integers(0, n, outages):
        present[start : start + axis.steps_for(rng.uniform(120, 600))] = False

    expected = config.anomalies_per_node_day * config.days
    count = int(expected) + int(rng.uniform() < expected % 1)
    anomalies = plan_anomalies(rng, axis, count, first_kind=node.index)
    for anomaly in anomalies:
        inject(rng, axis, anomaly, cpu, memory, present)
    cpu = np.clip(cpu, 0.0, 1.0)
    memory = np.clip(memory, 0.0, 0.99)

    network = (4e5 + cpu * cores * 1.2e6) * rng.lognormal(0, 0.08, n)
    return NodeHistory(
        node, cpu, memory, present, pod_count, cpu_ratio, memory_ratio, network, anomalies, pods
    )


def node_metrics_frame(config: HistoryConfig, histories: list[NodeHistory]) -> pd.DataFrame:
    """The node-metrics contract table: one row per node and scraped timestamp."""
    axis = config.axis
    seconds = axis.seconds
    columns: dict[str, list[np.ndarray]] = {
        name: []
        for name in (
            TIMESTAMP,
            NODE,
            CPU_UTILIZATION,
            MEMORY_UTILIZATION,
            "pod_count",
            "cpu_requested_ratio",
            "memory_requested_ratio",
            "network_receive_bytes_per_second",
        )
    }
    names = []
    for history in histories:
        mask = history.present
        columns[TIMESTAMP].append(seconds[mask])
        names.append(np.full(int(mask.sum()), history.node.index, dtype=np.int32))
        columns[CPU_UTILIZATION].append(history.cpu[mask])
        columns[MEMORY_UTILIZATION].append(history.memory[mask])
        columns["pod_count"].append(history.pod_count[mask])
        columns["cpu_requested_ratio"].append(history.cpu_requested_ratio[mask])
        columns["memory_requested_ratio"].append(history.memory_requested_ratio[mask])
        columns["network_receive_bytes_per_second"].append(
            history.network_receive_bytes_per_second[mask]
        )
    node_names = np.array([h.node.name for h in histories], dtype=object)
    frame = pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(np.concatenate(columns.pop(TIMESTAMP)), unit="s", utc=True),
            NODE: node_names[np.concatenate(names)],
        }
    )
    columns.pop(NODE)
    for name, parts in columns.items():
        frame[name] = np.round(np.concatenate(parts), 6)
    return frame


def anomaly_windows(
    config: HistoryConfig, histories: list[NodeHistory]
) -> tuple[dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]], pd.DataFrame]:
    """Labels in the anomaly-labels contract, and the same events with their kind."""
    axis = config.axis
    labels: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    rows = []
    for history in histories:
        windows = []
        for anomaly in history.anomalies:
            start = pd.Timestamp(axis.start_epoch + anomaly.start * axis.step_seconds, unit="s")
            end = pd.Timestamp(axis.start_epoch + (anomaly.end - 1) * axis.step_seconds, unit="s")
            start, end = start.tz_localize("UTC"), end.tz_localize("UTC")
            windows.append((start, end))
            rows.append(
                {"node": history.node.name, "kind": anomaly.kind, "start": start, "end": end}
            )
        labels[history.node.name] = windows
    events = pd.DataFrame(rows, columns=["node", "kind", "start", "end"])
    return labels, events
