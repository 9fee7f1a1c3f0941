"""Synthetic node-metrics history with the structure of a real cluster, and its anomaly labels.

Per node: a CPU level drawn from a heavy-tailed distribution (many nearly idle nodes, a few busy
ones), level shifts about daily, a role-shaped cycle (web daily curves with quiet weekends, steady
services, night-heavy batch bursts, mixed, long GPU training plateaus), slow drift, correlated
cluster- and role-level factors, bursts lasting tens of minutes, pod churn that moves requests and
load in steps, missing scrapes and outages, and labelled anomalies. The statistics these are
calibrated on (autocorrelation, cycle shares, bursts, per-node means) are in ``realism.py``.
Each node draws from its own seeded streams, so a node's series depends only on the seed, the
grid and its index.
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
    level_shifts,
    lognormal_bursts,
    occupancy,
    smooth,
    weekly_factor,
)

DAY = 86_400


@dataclass(frozen=True)
class RoleProfile:
    """How one role's nodes load their machines (CPU as a fraction of capacity).

    Calibrated against the public traces (``tests/benchmarks/bench_realism.py`` prints both):
    node levels are lognormal across nodes (many nearly idle, a few busy), the level moves in
    shifts that last about a day, bursts last tens of minutes, and only some roles keep a clear
    daily cycle.
    """

    level_median: float  # median over the role's nodes of a node's CPU level outside bursts
    level_log_sd: float  # spread of node levels across nodes (log scale)
    level_floor: float  # the least level a node of this role runs at
    daily_amplitude: float  # peak-to-night swing of the daily cycle, relative to the level
    peak_hour: float
    sharpness: float
    weekend_level: float  # weekend load relative to weekdays
    shift_every_seconds: float  # mean time between level shifts
    shift_log_sd: float  # size of a level shift (each segment's level, log scale)
    bursts_per_day: float
    burst_median_seconds: float  # bursts last lognormally, p90 about 3 x the median
    burst_height_median: float  # added CPU share of capacity, lognormal
    night_boost: float  # how much likelier a burst starts at night (22:00-06:00)
    plateaus_per_day: float  # long, high plateaus (training jobs)
    shared_weight: float  # how strongly the node follows the cluster- and role-wide factors
    live_pods: float
    pod_lifetime_seconds: float
    memory_request_target: float


ROLE_PROFILES = {
    "web": RoleProfile(
        0.3, 0.25, 0.24, 2.3, 14.5, 2.0, 0.45, 2 * DAY, 0.1,
        0.7, 15 * 60, 0.15, 1.0, 0.0, 0.5, 16, 2 * DAY, 0.55,
    ),
    "service": RoleProfile(
        0.06, 1.0, 0.01, 0.25, 13.0, 1.0, 0.9, 3 * DAY, 0.45,
        0.5, 20 * 60, 0.18, 1.0, 0.0, 1.0, 10, 4 * DAY, 0.70,
    ),
    "batch": RoleProfile(
        0.03, 0.9, 0.005, 0.1, 3.0, 1.0, 1.0, 2 * DAY, 0.45,
        2.0, 40 * 60, 0.30, 2.5, 0.0, 1.0, 12, 3 * 3600, 0.50,
    ),
    "mixed": RoleProfile(
        0.05, 1.0, 0.01, 0.5, 15.0, 1.5, 0.75, 2 * DAY, 0.45,
        3.0, 20 * 60, 0.12, 1.5, 0.0, 1.0, 14, DAY, 0.55,
    ),
    "gpu": RoleProfile(
        0.03, 0.6, 0.005, 0.05, 12.0, 1.0, 1.0, 3 * DAY, 0.4,
        1.0, 20 * 60, 0.15, 1.0, 0.12, 1.0, 4, 10 * 3600, 0.60,
    ),
}  # fmt: skip

# The node's own slow drift, and its fast fluctuation, as log-scale / relative deviations.
SLOW_TAU_SECONDS = 8 * 3600
SLOW_LOG_SD = 0.1
FAST_TAU_SECONDS = 180
# Fluctuation is ``sd`` relative to the load up to NOISE_REFERENCE_LOAD and grows only as the square
# root of the load above it (many small independent requests), so a busy node is steadier.
NOISE_REFERENCE_LOAD = 0.1
FAST_SD = 0.40
SAMPLE_SD = 0.20
SAMPLE_ABSOLUTE_SD = 0.002
SHARED_TAU_SECONDS = 4 * 3600  # cluster- and role-wide factors (log scale)
SHARED_LOG_SD = {"cluster": 0.5, "role": 0.3}
SHARED_SHIFT_EVERY_SECONDS = 2 * DAY  # cluster- and role-wide level shifts (log scale)
SHARED_SHIFT_LOG_SD = {"cluster": 0.45, "role": 0.35}
ROLE_FACTOR_WEIGHT = 0.8
LEVEL_CAP_MEDIANS = 4.0  # no node runs above 4 x its role's median level
MAX_SHARED_LOG_FACTOR = float(np.log(2.5))
PLATEAU_SECONDS = (2 * 3600, 10 * 3600)
PLATEAU_HEIGHT = (0.45, 0.65)
BURST_DURATION_LOG_SD = 0.9
BURST_HEIGHT_LOG_SD = 0.5
BURST_MAX_HEIGHT = 0.7
CPU_FLOOR = 0.003


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


@dataclass
class CpuParts:
    """The hidden state behind one node's CPU before anomalies and clipping:

    ``cpu = load + fast * noise_scale(load) + sample``, with
    ``load = held * calendar * exp(slow + shared) + bursts``, where
    ``held`` (level, level shifts, pod factor) and ``bursts`` stay as they are until the next
    change, ``calendar`` (daily and weekly cycle, trend) is known ahead, and ``slow``, ``shared``
    and ``fast`` are AR(1) processes with the time constants above.
    """

    held: np.ndarray
    calendar: np.ndarray
    slow: np.ndarray
    shared: np.ndarray
    fast: np.ndarray
    bursts: np.ndarray
    sample: np.ndarray
    load: np.ndarray  # held * calendar * exp(slow + shared) + bursts

    @property
    def cpu(self) -> np.ndarray:
        return self.load + self.fast * noise_scale(self.load) + self.sample


def noise_scale(load: np.ndarray) -> np.ndarray:
    """What a unit of fluctuation amounts to at ``load`` (see NOISE_REFERENCE_LOAD)."""
    load = np.maximum(load, 0.0)
    return np.minimum(load, np.sqrt(load * NOISE_REFERENCE_LOAD))


def latent_factors(config: HistoryConfig) -> dict[str, np.ndarray]:
    """Cluster-wide and per-role slow noise and level shifts (log scale) that make nodes move
    together, over hours and over days."""
    axis = config.axis
    factors = {}
    for index, name in enumerate(("cluster", *ROLES)):
        rng = np.random.default_rng([config.seed, 2, index])
        scope = "cluster" if name == "cluster" else "role"
        noise = ar1(rng, axis.steps, axis.step_seconds, SHARED_TAU_SECONDS, SHARED_LOG_SD[scope])
        shifts = level_shifts(rng, axis.steps, axis.step_seconds, SHARED_SHIFT_EVERY_SECONDS)
        factors[name] = noise + SHARED_SHIFT_LOG_SD[scope] * shifts
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


def node_level(config: HistoryConfig, node: SyntheticNode) -> float:
    """The node's CPU level outside bursts: lognormal across the role's nodes, from its own
    seeded stream so that it does not depend on the rest of the node's draws."""
    profile = ROLE_PROFILES[node.role]
    rng = np.random.default_rng([config.seed, 4, node.index])
    level = profile.level_median * float(np.exp(rng.normal(0, profile.level_log_sd)))
    return float(
        np.clip(level, profile.level_floor, min(LEVEL_CAP_MEDIANS * profile.level_median, 0.7))
    )


def _calendar(rng: np.random.Generator, axis: TimeAxis, profile: RoleProfile) -> np.ndarray:
    """Daily and weekly cycle around 1 and a slow relative trend."""
    hour = axis.hour_of_day + rng.normal(0, 0.5)
    curve = daily_curve(hour, profile.peak_hour, profile.sharpness)
    one_day = daily_curve(np.arange(0, 24, 0.25), profile.peak_hour, profile.sharpness)
    swing = (curve - one_day.mean()) / max(float(np.ptp(one_day)), 1e-9)
    cycle = np.maximum(1 + profile.daily_amplitude * swing, 0.05)
    cycle *= weekly_factor(axis.day_of_week, profile.weekend_level)
    trend = 1 + rng.uniform(-0.25, 0.35) * axis.elapsed_fraction
    return cycle * trend


def cpu_parts(
    config: HistoryConfig,
    node: SyntheticNode,
    factors: dict[str, np.ndarray],
    rng: np.random.Generator,
    cpu_ratio: np.ndarray,
) -> CpuParts:
    """Draw the hidden state of the node's CPU (see :class:`CpuParts`) from ``rng``."""
    axis = config.axis
    profile = ROLE_PROFILES[node.role]
    n = axis.steps
    calendar = _calendar(rng, axis, profile)
    shifts = level_shifts(rng, n, axis.step_seconds, profile.shift_every_seconds)
    shifts = np.exp(profile.shift_log_sd * shifts)
    pod_factor = 0.6 + 0.4 * cpu_ratio / max(cpu_ratio.mean(), 1e-6)
    level = node_level(config, node)
    held = level * shifts * pod_factor
    # A quiet node's bursts are smaller than a busy one's, as in the traces.
    burst_scale = float(np.clip(np.sqrt(level / profile.level_median), 0.3, 2.0))
    slow = ar1(rng, n, axis.step_seconds, SLOW_TAU_SECONDS, SLOW_LOG_SD)
    shared = factors["cluster"] + ROLE_FACTOR_WEIGHT * factors[node.role]
    # A cluster-wide surge at most multiplies a node's load by 2.5.
    shared = np.minimum(shared * profile.shared_weight, MAX_SHARED_LOG_FACTOR)
    fast = ar1(rng, n, axis.step_seconds, FAST_TAU_SECONDS, FAST_SD)
    burst_load = lognormal_bursts(
        rng,
        axis,
        profile.bursts_per_day,
        profile.burst_median_seconds,
        BURST_DURATION_LOG_SD,
        profile.burst_height_median * burst_scale,
        BURST_HEIGHT_LOG_SD,
        BURST_MAX_HEIGHT,
        profile.night_boost,
    )
    if profile.plateaus_per_day:
        burst_load += bursts(
            rng, axis, profile.plateaus_per_day / 24, PLATEAU_SECONDS, PLATEAU_HEIGHT
        )
    load = held * calendar * np.exp(slow + shared) + burst_load
    sample = rng.standard_normal(n) * (SAMPLE_SD * noise_scale(load) + SAMPLE_ABSOLUTE_SD)
    return CpuParts(held, calendar, slow, shared, fast, burst_load, sample, load)


@dataclass
class NodeLoad:
    """A node's pods, requested ratios and CPU state, and the stream that draws the rest."""

    rng: np.random.Generator
    pods: pd.DataFrame
    pod_count: np.ndarray
    cpu_ratio: np.ndarray
    memory_ratio: np.ndarray
    cpu: CpuParts


def node_load(
    config: HistoryConfig, node: SyntheticNode, factors: dict[str, np.ndarray]
) -> NodeLoad:
    """Draw the node's pods and CPU state from its seeded stream (the first draws of
    :func:`generate_node`, which continues the same stream)."""
    axis = config.axis
    rng = np.random.default_rng([config.seed, 3, node.index])
    n = axis.steps
    pods = _node_pods(rng, axis, node)
    starts, ends = pods["start_step"].to_numpy(), pods["end_step"].to_numpy()
    pod_count = occupancy(n, starts, ends, np.ones(len(pods)))
    cpu_ratio = occupancy(n, starts, ends, pods["cpu_request_cores"].to_numpy())
    cpu_ratio /= node.machine.cpu_cores
    memory_ratio = (
        occupancy(n, starts, ends, pods["memory_request_bytes"].to_numpy())
        / node.machine.memory_bytes
    )
    parts = cpu_parts(config, node, factors, rng, cpu_ratio)
    return NodeLoad(rng, pods, pod_count, cpu_ratio, memory_ratio, parts)


def generate_node(
    config: HistoryConfig, node: SyntheticNode, factors: dict[str, np.ndarray]
) -> NodeHistory:
    """Generate one node's full-resolution series."""
    axis = config.axis
    profile = ROLE_PROFILES[node.role]
    n = axis.steps
    cores = node.machine.cpu_cores
    load = node_load(config, node, factors)
    rng, pods, pod_count = load.rng, load.pods, load.pod_count
    cpu_ratio, memory_ratio, parts = load.cpu_ratio, load.memory_ratio, load.cpu
    cpu = np.clip(parts.cpu, CPU_FLOOR, 1.0)

    memory = _memory(rng, axis, profile, memory_ratio, parts.bursts)

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


def _memory(
    rng: np.random.Generator,
    axis: TimeAxis,
    profile: RoleProfile,
    memory_ratio: np.ndarray,
    cpu_bursts: np.ndarray,
) -> np.ndarray:
    """Memory in use: the pods' working sets (a node-specific share of their requests) moving in
    level shifts and slow drift, memory that CPU bursts bring in and release more slowly, a slow
    creep, and fast fluctuation."""
    n = axis.steps
    efficiency = float(np.clip(rng.lognormal(np.log(0.55), 0.45), 0.12, 0.95))
    shifts = np.exp(0.08 * level_shifts(rng, n, axis.step_seconds, 2 * DAY))
    drift = np.exp(ar1(rng, n, axis.step_seconds, 6 * 3600, 0.05))
    memory = (0.03 + memory_ratio * efficiency) * shifts * drift
    memory += 0.15 * smooth(cpu_bursts, axis.step_seconds, 900)
    memory += rng.uniform(0.0, 0.06) * axis.elapsed_fraction
    memory *= 1 + ar1(rng, n, axis.step_seconds, 900, 0.03)
    memory += rng.normal(0, 0.002, n)
    return np.clip(memory, 0.02, 0.93)


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
