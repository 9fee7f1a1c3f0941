"""A synthetic workload trace for the placement simulator: pods, their real use and their requests.

Requests are set the way people set them: from a guess at peak use times a factor that varies a
lot between teams (over-provisioned, right-sized, under-requested), rounded to human numbers, and
a few BestEffort pods with no requests at all. So requests say something, but not much, about use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import POD, TIMESTAMP
from components.generate.signals import daily_curve

MIB = 1024**2
GIB = 1024**3
HOUR = 3600


@dataclass(frozen=True)
class PodKind:
    name: str
    share_of_requests: float
    lifetime_seconds: float
    peak_cores: float
    memory_bytes: float
    gpus: tuple[int, ...] = ()


POD_KINDS = (
    PodKind("web", 0.35, 30 * HOUR, 0.6, 1.0 * GIB),
    PodKind("service", 0.25, 48 * HOUR, 0.4, 2.0 * GIB),
    PodKind("batch", 0.33, 1.5 * HOUR, 1.5, 3.0 * GIB),
    PodKind("gpu-job", 0.07, 5 * HOUR, 4.0, 16.0 * GIB, gpus=(1, 1, 2, 4)),
)


@dataclass(frozen=True)
class WorkloadConfig:
    start_epoch: int
    days: float = 2
    step_seconds: int = 60
    seed: int = 0
    target_request_ratio: float = 0.65
    best_effort_share: float = 0.05


def _usage(rng: np.random.Generator, kind: PodKind, seconds: np.ndarray, age: np.ndarray):
    peak = kind.peak_cores * rng.lognormal(0, 0.45)
    n = len(seconds)
    if kind.name == "web":
        hour = (seconds % 86_400) / 3600.0
        shape = 0.15 + 0.85 * daily_curve(hour, rng.normal(14, 1), 2.0)
        shape *= 1 + rng.normal(0, 0.08, n)
    elif kind.name == "service":
        shape = 0.7 + rng.normal(0, 0.05, n)
    else:
        shape = rng.uniform(0.75, 1.0) + rng.normal(0, 0.07, n)
    cpu = np.clip(peak * shape, 0.001, None)
    memory_peak = kind.memory_bytes * rng.lognormal(0, 0.4)
    warm_up = np.minimum(1.0, age / 1800)
    memory = memory_peak * (0.6 + 0.4 * warm_up) * (1 + rng.normal(0, 0.01, n))
    return cpu, np.clip(memory, 16 * MIB, None)


def p95(values: np.ndarray) -> float:
    """``np.quantile(values, 0.95)`` to the last bit, without its overhead (one call per pod)."""
    virtual = (len(values) - 1) * 0.95
    if virtual >= len(values) - 1:
        return float(values.max())
    low = int(np.floor(virtual))
    gamma = virtual - low
    part = np.partition(values, (low, low + 1))
    below, above = part[low], part[low + 1]
    gap = above - below
    return float(above - gap * (1 - gamma) if gamma >= 0.5 else below + gap * gamma)


def _requests(rng: np.random.Generator, cpu: np.ndarray, memory: np.ndarray, best_effort: bool):
    if best_effort:
        return 0.0, 0.0
    cpu_request = p95(cpu) * rng.lognormal(np.log(1.2), 0.6)
    memory_request = p95(memory) * rng.lognormal(np.log(1.3), 0.4)
    cpu_request = max(0.05, np.round(cpu_request * 20) / 20)
    memory_request = max(64 * MIB, np.round(memory_request / (64 * MIB)) * 64 * MIB)
    return float(cpu_request), float(memory_request)


def generate_workload(config: WorkloadConfig, nodes: pd.DataFrame) -> pd.DataFrame:
    """Pods arriving over ``config.days`` whose requests add up to about the target share.

    Args:
        config: the window, step, seed and how full the cluster's requests should be on average.
        nodes: the nodes table the trace is meant for (sizes the pod population; GPU pods only
            when some node has GPUs).

    Returns:
        The workload-trace contract table.
    """
    rng = np.random.default_rng([config.seed, 5])
    duration = int(config.days * 86_400)
    steps = duration // config.step_seconds
    total_cores = float(nodes["cpu_cores"].sum())
    max_gpus = int(nodes["gpus"].max()) if "gpus" in nodes else 0
    kinds = [k for k in POD_KINDS if not k.gpus or max_gpus > 0]
    share_total = sum(k.share_of_requests for k in kinds)
    columns: dict[str, list[np.ndarray]] = {
        name: []
        for name in (
            "pod_index",
            TIMESTAMP,
            "cpu_cores",
            "memory_bytes",
            "cpu_request_cores",
            "memory_request_bytes",
            "gpus",
        )
    }
    names: list[str] = []
    for kind in kinds:
        live = config.target_request_ratio * total_cores * kind.share_of_requests / share_total
        live /= kind.peak_cores * 1.1
        initial = rng.poisson(live)
        arrivals = rng.poisson(live * duration / kind.lifetime_seconds)
        start_steps = np.concatenate(
            [np.zeros(initial, dtype=np.int64), rng.integers(0, steps, arrivals)]
        )
        lifetimes = np.maximum(rng.exponential(kind.lifetime_seconds, len(start_steps)), 300)
        gpu_choices = [g for g in kind.gpus if g <= max_gpus]
        for index, (first, lifetime) in enumerate(zip(start_steps, lifetimes, strict=True)):
            last = min(steps, first + max(1, int(lifetime // config.step_seconds)))
            offsets = np.arange(first, last, dtype=np.int64)
            seconds = config.start_epoch + offsets * config.step_seconds
            age = (offsets - first) * float(config.step_seconds)
            cpu, memory = _usage(rng, kind, seconds, age)
            best_effort = not kind.gpus and rng.uniform() < config.best_effort_share
            cpu_request, memory_request = _requests(rng, cpu, memory, best_effort)
            gpus = float(gpu_choices[rng.integers(len(gpu_choices))]) if gpu_choices else 0.0
            n = len(offsets)
            columns["pod_index"].append(np.full(n, len(names), dtype=np.int64))
            names.append(f"{kind.name}-{index:05d}")
            columns[TIMESTAMP].append(seconds)
            columns["cpu_cores"].append(np.round(cpu, 4))
            columns["memory_bytes"].append(np.round(memory, -3))
            columns["cpu_request_cores"].append(np.full(n, cpu_request))
            columns["memory_request_bytes"].append(np.full(n, memory_request))
            columns["gpus"].append(np.full(n, gpus))
    arrays = {name: np.concatenate(parts) for name, parts in columns.items()}
    order = np.lexsort((arrays["pod_index"], arrays[TIMESTAMP]))
    pod_names = np.array(names, dtype=object)
    trace = pd.DataFrame(
        {
            POD: pod_names[arrays.pop("pod_index")[order]],
            TIMESTAMP: pd.to_datetime(arrays.pop(TIMESTAMP)[order], unit="s", utc=True),
        }
    )
    for name, values in arrays.items():
        trace[name] = values[order]
    return trace


def usage_streams(
    n_streams: int, n_steps: int, *, step_seconds: int, start_epoch: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long-running pods' use under the generator's pod kinds, for cutting placement pods from.

    Kinds are drawn in proportion to their share of requests over their peak (so each kind's
    share of the CPU is about its ``share_of_requests``); every stream is warm (memory past its
    warm-up).

    Returns:
        CPU cores and memory bytes, each of shape ``(n_steps, n_streams)``, and each stream's
        kind name.
    """
    rng = np.random.default_rng([seed, 6])
    weights = np.array([k.share_of_requests / k.peak_cores for k in POD_KINDS])
    kinds = rng.choice(len(POD_KINDS), n_streams, p=weights / weights.sum())
    seconds = start_epoch + np.arange(n_steps, dtype=np.int64) * step_seconds
    warm = np.full(n_steps, 86_400.0)
    cpu = np.empty((n_steps, n_streams))
    memory = np.empty((n_steps, n_streams))
    for stream, kind in enumerate(kinds):
        cpu[:, stream], memory[:, stream] = _usage(rng, POD_KINDS[kind], seconds, warm)
    names = np.array([POD_KINDS[k].name for k in kinds], dtype=object)
    return cpu, memory, names
