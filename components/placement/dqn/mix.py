"""The DQN's training mix: workloads from the generator with domain randomisation.

Real traces stay out of the mix, so every real workload family is held out from training. Each
source draws its own knobs: node count (6 to 30 of the generator's machine types), step (60 s or
300 s, the real traces' grid), how full the requests keep the cluster (0.45 to 1.0 of its cores)
and how far requests sit from use (a factor from 0.5 to 2 on every pod's CPU request, so requests
from a third to three times the real use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.placement.workload import Cluster, Workload

Source = tuple[Workload, Cluster]
DEFAULT_SOURCES = 6
START_EPOCH = 1_767_225_600


@dataclass(frozen=True)
class MixKnobs:
    """One source's randomised knobs (documented in the module docstring)."""

    nodes: int
    step_seconds: int
    request_fill: float
    request_factor: float
    days: float


def draw_knobs(rng: np.random.Generator, days: float = 2.0) -> MixKnobs:
    return MixKnobs(
        nodes=int(rng.integers(6, 31)),
        step_seconds=int(rng.choice([60, 300], p=[0.3, 0.7])),
        request_fill=float(rng.uniform(0.45, 1.0)),
        request_factor=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
        days=days,
    )


def synthetic_source(knobs: MixKnobs, seed: int) -> Source:
    """A generator workload and its cluster under ``knobs``."""
    from components.generate.cluster import make_nodes, nodes_table
    from components.generate.workload import WorkloadConfig, generate_workload
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    table = nodes_table(make_nodes(knobs.nodes, seed))
    config = WorkloadConfig(
        START_EPOCH,
        days=knobs.days,
        step_seconds=knobs.step_seconds,
        seed=seed,
        target_request_ratio=knobs.request_fill,
    )
    trace = generate_workload(config, table)
    trace["cpu_request_cores"] = np.round(trace["cpu_request_cores"] * knobs.request_factor, 2)
    return workload_from_trace(trace, "synthetic training source"), cluster_from_nodes(table)


def training_mix(seed: int, sources: int = DEFAULT_SOURCES, days: float = 2.0) -> list[Source]:
    """``sources`` randomised generator workloads (the same for the same seed)."""
    rng = np.random.default_rng([seed, 41])
    return [
        synthetic_source(draw_knobs(rng, days), seed * 1_000 + index) for index in range(sources)
    ]
