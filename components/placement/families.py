"""Placement workload families: a workload and cluster from each real trace and from the generator,
with domain randomisation.

Families (``FAMILY_NAMES``):

- ``synthetic``: the project generator's pod kinds (web, service, batch, GPU job) as usage.
- ``bitbrains-faststorage``: real CPU of the 50 fastStorage VMs; memory synthetic.
- ``bitbrains-rnd``: real CPU and (active) memory of the most active Rnd VMs.
- ``nab-ec2``: the NAB EC2 CPU percents times a drawn instance size; memory synthetic.

Real use stays real; arrivals, lifetimes, requests and nodes are drawn around it under
:class:`FamilyKnobs` (see :mod:`~components.placement.family_pods` for how). Every family is on
a 5-minute step and 4 days long by default (about 1,600 pods), so a replay cuts into several
disjoint test windows. ``build_family`` is deterministic per ``seed``.

    python -m components.placement.families --family bitbrains-rnd --seed 0 --output DIR
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import validate_nodes_table, validate_workload_trace
from components.errors import MlschedError
from components.placement import family_streams
from components.placement.family_pods import NodePlan, PodPlan, build_pods
from components.placement.workload import Cluster, Workload, cluster_from_nodes, workload_from_trace

FAMILY_NAMES: tuple[str, ...] = ("synthetic", "bitbrains-faststorage", "bitbrains-rnd", "nab-ec2")
REAL_FAMILIES: tuple[str, ...] = FAMILY_NAMES[1:]
# real family -> the named evaluation set whose trace it replays (the set knows the folder)
FAMILY_SETS = {
    "bitbrains-faststorage": "bitbrains-faststorage",
    "bitbrains-rnd": "bitbrains-rnd",
    "nab-ec2": "nab-ec2-cpu",
}
FAMILY_PREFIXES = {
    "synthetic": "syn",
    "bitbrains-faststorage": "bbfs",
    "bitbrains-rnd": "bbrnd",
    "nab-ec2": "nab",
}
# the generator's machine types (general, compute, memory, large)
SYNTHETIC_NODE_SHAPES = ((8, 32), (16, 32), (8, 64), (32, 128))
# 4-8 GiB per core: memory-poor shapes with memory-heavy pods leave the CPU idle
NODE_SHAPE_CATALOGUE = ((8, 32), (16, 64), (8, 64), (32, 128), (48, 192))
RANDOMISED_RUNNING_PODS = (120.0, 220.0)


@dataclass(frozen=True)
class FamilyKnobs:
    """Domain randomisation of a family (README.md, "Workload families", has the table).

    Attributes:
        days: replay length (steps are the trace's own, 5 minutes).
        pods: about how many pods the replay holds (the running set at step 0 included).
        mean_lifetime_hours: lifetimes of single pods and of Deployment revisions (the time
            between rollouts) are exponential with this mean (at least 2 steps).
        burst_share: the share of pods that are Deployment replicas: each revision's replicas
            arrive together (one step, one ``owner``) as the previous revision's leave; the
            rest arrive one at a time (owner ""). 0 = steady.
        burst_size: replicas per Deployment, log-uniform over [low, high].
        request_to_usage: the cluster's CPU requests over its real CPU use (0.3: heavily
            under-requested, 3: heavily over-requested).
        memory_request_to_usage: the same for memory.
        request_signal: how much a template's CPU request follows its P95 use (exponent: 0 =
            not at all, 1 = proportionally; 0.15 gives a Spearman rank correlation near 0.25).
        request_spread: the lognormal sigma of the request guess around that.
        best_effort_share: the share of pod templates with no requests (BestEffort).
        target_cpu_utilization: the cluster's mean real CPU use as a share of its cores (sets
            the node count).
        max_peak_utilization: nodes are added until the 99th percentile of the cluster's real
            CPU use per step is at most this share of the cores (traces whose VMs peak together,
            such as Rnd, then run below the target on average).
        max_request_fill: nodes are added until the busiest step's requests (CPU and memory)
            fill at most this share of what the nodes offer (so bursts rarely wait for room).
        node_count: a fixed node count instead (the utilisation is then what it is).
        node_shapes: (cores, GiB memory) of the node types, used in turn (one shape:
            homogeneous).
        gpu_pod_share: the share of pods that request whole GPUs (1, 1, 2 or 4; singles).
        gpu_node_share: the share of nodes with GPUs (at least enough for the GPU pods).
        gpus_per_node: GPUs on a GPU node.
        min_mean_cpu_cores: streams (VMs) whose mean CPU use is below this are idle and left
            out (None: the family's floor, ``ACTIVITY_FLOORS``).
    """

    days: float = 4.0
    pods: int = 1600
    mean_lifetime_hours: float = 12.0
    burst_share: float = 0.5
    burst_size: tuple[int, int] = (5, 50)
    request_to_usage: float = 1.4
    memory_request_to_usage: float = 1.3
    request_signal: float = 0.15
    request_spread: float = 0.8
    best_effort_share: float = 0.05
    target_cpu_utilization: float = 0.45
    max_peak_utilization: float = 0.9
    max_request_fill: float = 0.95
    node_count: int | None = None
    node_shapes: tuple[tuple[float, float], ...] = ((16, 64), (16, 64), (32, 128))
    gpu_pod_share: float = 0.0
    gpu_node_share: float = 0.0
    gpus_per_node: int = 4
    min_mean_cpu_cores: float | None = None

    def __post_init__(self) -> None:
        checks = (
            ("days", self.days, 0.5, 30.0),
            ("pods", self.pods, 10, 200_000),
            ("mean_lifetime_hours", self.mean_lifetime_hours, 0.1, 24.0 * 30),
            ("burst_share", self.burst_share, 0.0, 1.0),
            ("request_to_usage", self.request_to_usage, 0.05, 20.0),
            ("memory_request_to_usage", self.memory_request_to_usage, 0.05, 20.0),
            ("request_signal", self.request_signal, 0.0, 1.0),
            ("request_spread", self.request_spread, 0.0, 3.0),
            ("best_effort_share", self.best_effort_share, 0.0, 1.0),
            ("target_cpu_utilization", self.target_cpu_utilization, 0.01, 1.5),
            ("max_peak_utilization", self.max_peak_utilization, 0.05, 2.0),
            ("max_request_fill", self.max_request_fill, 0.05, 1.0),
            ("gpu_pod_share", self.gpu_pod_share, 0.0, 0.9),
            ("gpu_node_share", self.gpu_node_share, 0.0, 1.0),
            ("gpus_per_node", self.gpus_per_node, 1, 16),
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise MlschedError(f"FamilyKnobs.{name} = {value!r}: must lie in [{low}, {high}]")
        low, high = self.burst_size
        if not 2 <= low <= high:
            raise MlschedError(f"FamilyKnobs.burst_size = {self.burst_size}: need 2 <= low <= high")
        if self.min_mean_cpu_cores is not None and not 0 <= self.min_mean_cpu_cores <= 64:
            raise MlschedError(
                f"FamilyKnobs.min_mean_cpu_cores = {self.min_mean_cpu_cores}: must lie in [0, 64]"
            )
        if self.node_count is not None and self.node_count < 1:
            raise MlschedError(f"FamilyKnobs.node_count = {self.node_count}: must be positive")
        if not self.node_shapes or any(c <= 0 or m <= 0 for c, m in self.node_shapes):
            raise MlschedError(
                f"FamilyKnobs.node_shapes = {self.node_shapes}: need (cores, GiB) pairs above 0"
            )


FAMILY_DEFAULTS: dict[str, FamilyKnobs] = {
    "synthetic": FamilyKnobs(
        node_shapes=SYNTHETIC_NODE_SHAPES, gpu_pod_share=0.03, gpu_node_share=0.1, gpus_per_node=8
    ),
    "bitbrains-faststorage": FamilyKnobs(),
    "bitbrains-rnd": FamilyKnobs(),
    "nab-ec2": FamilyKnobs(),
}

# mean cores below which a stream is an idle VM; most Rnd VMs are nearly idle
ACTIVITY_FLOORS = {
    "synthetic": 0.0,
    "bitbrains-faststorage": 0.05,
    "bitbrains-rnd": 0.15,
    "nab-ec2": 0.05,
}

_StreamReader = Callable[[Path, float, np.random.Generator], family_streams.UsageStreams]
_READERS: dict[str, _StreamReader] = {
    "bitbrains-faststorage": family_streams.faststorage_streams,
    "bitbrains-rnd": family_streams.rnd_streams,
    "nab-ec2": family_streams.nab_streams,
}


def family_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where a real family's trace lives (``data_dir`` defaults to
    :func:`~components.datasets.evaluation_sets.shared_data_root`)."""
    from components.datasets.evaluation_sets import NAMED_SETS, shared_data_root

    return Path(data_dir or shared_data_root()) / NAMED_SETS[FAMILY_SETS[name]].folder


def available_families(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The families that can be built here: ``synthetic`` always, a real one when its folder
    exists."""
    return [
        name
        for name in FAMILY_NAMES
        if name not in REAL_FAMILIES or family_folder(name, data_dir).is_dir()
    ]


def build_family_frames(
    name: str,
    *,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    knobs: FamilyKnobs | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The family's workload trace and nodes table as validated contract frames.

    Raises:
        MlschedError: an unknown family, or a real family whose data folder is missing.
    """
    if name not in FAMILY_NAMES:
        raise MlschedError(
            f"unknown workload family {name!r}; choose from {', '.join(FAMILY_NAMES)}"
        )
    knobs = knobs or FAMILY_DEFAULTS[name]
    rng = np.random.default_rng([int(seed), FAMILY_NAMES.index(name), 14])
    if name in REAL_FAMILIES:
        folder = family_streams.check_folder(family_folder(name, data_dir), name)
        streams = _READERS[name](folder, knobs.days, rng)
    else:
        streams = family_streams.synthetic_streams(knobs.days, rng)
    floor = knobs.min_mean_cpu_cores
    streams = streams.active(ACTIVITY_FLOORS[name] if floor is None else floor, name)
    step_hours = streams.step_seconds / 3600
    pods = PodPlan(
        pods=knobs.pods,
        mean_lifetime_steps=knobs.mean_lifetime_hours / step_hours,
        burst_share=knobs.burst_share,
        burst_size=knobs.burst_size,
        gpu_pod_share=knobs.gpu_pod_share,
        request_to_usage=knobs.request_to_usage,
        memory_request_to_usage=knobs.memory_request_to_usage,
        request_signal=knobs.request_signal,
        request_spread=knobs.request_spread,
        best_effort_share=knobs.best_effort_share,
    )
    nodes = NodePlan(
        node_count=knobs.node_count,
        node_shapes=knobs.node_shapes,
        target_cpu_utilization=knobs.target_cpu_utilization,
        max_peak_utilization=knobs.max_peak_utilization,
        max_request_fill=knobs.max_request_fill,
        gpu_node_share=knobs.gpu_node_share,
        gpus_per_node=knobs.gpus_per_node,
    )
    trace, table = build_pods(streams, pods, nodes, rng, FAMILY_PREFIXES[name])
    return (
        validate_workload_trace(trace, f"family {name}"),
        validate_nodes_table(table, f"family {name} nodes"),
    )


def build_family(
    name: str,
    *,
    seed: int,
    data_dir: Path | None = None,
    knobs: FamilyKnobs | None = None,
) -> tuple[Workload, Cluster]:
    """The family ``name`` drawn with ``seed`` as the simulator's arrays (see the module doc)."""
    trace, table = build_family_frames(name, seed=seed, data_dir=data_dir, knobs=knobs)
    return workload_from_trace(trace, f"family {name}"), cluster_from_nodes(table)


def randomised_knobs(rng: np.random.Generator) -> FamilyKnobs:
    """A varied setting for training mixes: every knob drawn over its realistic range."""
    steady = rng.uniform() < 0.25
    if rng.uniform() < 0.4:
        shapes = (NODE_SHAPE_CATALOGUE[int(rng.integers(len(NODE_SHAPE_CATALOGUE)))],)
    else:
        picks = rng.choice(len(NODE_SHAPE_CATALOGUE), int(rng.integers(2, 4)), replace=False)
        shapes = tuple(NODE_SHAPE_CATALOGUE[int(i)] for i in picks)
    gpus = rng.uniform() < 0.35
    low = int(rng.integers(5, 16))
    lifetime_hours = float(np.exp(rng.uniform(np.log(4.0), np.log(24.0))))
    days = FamilyKnobs.days
    # pods running at once stay in a realistic range whatever the lifetimes
    running = float(rng.uniform(*RANDOMISED_RUNNING_PODS))
    return FamilyKnobs(
        pods=int(round(running * (lifetime_hours + 24 * days) / lifetime_hours)),
        mean_lifetime_hours=lifetime_hours,
        burst_share=0.0 if steady else float(rng.uniform(0.2, 0.9)),
        burst_size=(low, int(rng.integers(max(low, 20), 51))),
        request_to_usage=float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))),
        memory_request_to_usage=float(np.exp(rng.uniform(np.log(0.8), np.log(1.8)))),
        request_signal=float(rng.uniform(0.0, 0.5)),
        request_spread=float(rng.uniform(0.4, 1.2)),
        best_effort_share=float(rng.uniform(0.0, 0.12)),
        target_cpu_utilization=float(rng.uniform(0.40, 0.55)),
        node_shapes=shapes,
        gpu_pod_share=float(rng.uniform(0.02, 0.08)) if gpus else 0.0,
        gpu_node_share=float(rng.uniform(0.1, 0.3)) if gpus else 0.0,
        gpus_per_node=int(rng.choice([4, 8])),
    )


def family_stats(workload: Workload, cluster: Cluster) -> dict[str, float]:
    """Figures that tell a family apart: size, load, bursts."""
    within = np.arange(int(workload.length.sum())) - np.repeat(
        np.cumsum(workload.length) - workload.length, workload.length
    )
    cpu_per_step = np.bincount(
        np.repeat(workload.arrival, workload.length) + within,
        workload.cpu_usage[np.repeat(workload.offset, workload.length) + within],
        workload.n_steps,
    )
    pod_cpu = np.bincount(
        np.repeat(np.arange(workload.n_pods), workload.length),
        workload.cpu_usage[np.repeat(workload.offset, workload.length) + within],
        workload.n_pods,
    )
    cpu_nodes = cluster.gpus == 0
    owners = pd.DataFrame({"owner": workload.owner, "arrival": workload.arrival})
    sized = owners[owners["owner"] != ""].groupby(["owner", "arrival"]).size()
    return {
        "pods": float(workload.n_pods),
        "steps": float(workload.n_steps),
        "step_seconds": float(workload.step_seconds),
        "nodes": float(len(cluster.nodes)),
        "cores": float(cluster.cpu_cores.sum()),
        "mean_cpu_use_share": float(cpu_per_step.mean() / cluster.cpu_cores.sum()),
        "peak_cpu_use_share": float(cpu_per_step.max() / cluster.cpu_cores.sum()),
        # pods without GPUs on the nodes without GPUs (the GPU rules keep the two apart)
        "cpu_pool_use_share": float(
            pod_cpu[workload.gpus == 0].sum()
            / workload.n_steps
            / max(cluster.cpu_cores[cpu_nodes].sum(), 1e-9)
        ),
        "cpu_request_to_use": float(
            (workload.cpu_request * workload.length).sum() / cpu_per_step.sum()
        ),
        "bursts": float((sized >= 5).sum()),
        "pods_in_bursts": float(sized[sized >= 5].sum()),
        "gpu_pods": float((workload.gpus > 0).sum()),
        "gpu_nodes": float((cluster.gpus > 0).sum()),
        "best_effort_pods": float(
            ((workload.cpu_request == 0) & (workload.memory_request == 0)).sum()
        ),
    }


def write_family(
    name: str,
    output: str | os.PathLike,
    *,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    knobs: FamilyKnobs | None = None,
) -> tuple[Path, Path]:
    """Build a family and write ``workload.parquet`` and ``nodes.csv`` into ``output``."""
    from components.contracts import write_nodes_table, write_workload_trace

    trace, table = build_family_frames(name, seed=seed, data_dir=data_dir, knobs=knobs)
    folder = Path(output)
    return (
        write_workload_trace(trace, folder / "workload.parquet"),
        write_nodes_table(table, folder / "nodes.csv"),
    )


def _knob_flags(parser) -> None:
    for field in fields(FamilyKnobs):
        if field.name in ("burst_size", "node_shapes"):
            continue
        kind = int if field.name in ("pods", "gpus_per_node", "node_count") else float
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"FamilyKnobs.{field.name} (default: the family's)",
        )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(
        prog="python -m components.placement.families",
        description="Write a workload family as workload.parquet and nodes.csv.",
    )
    parser.add_argument("--family", required=True, choices=FAMILY_NAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="folder for workload.parquet, nodes.csv")
    parser.add_argument(
        "--data", default=None, help="real traces (default: $MLSCHED_SHARED_DATA or ../shared/data)"
    )
    _knob_flags(parser)
    args = parser.parse_args(argv)
    chosen = {
        f.name: getattr(args, f.name)
        for f in fields(FamilyKnobs)
        if getattr(args, f.name, None) is not None
    }
    began = time.perf_counter()
    try:
        knobs = replace(FAMILY_DEFAULTS[args.family], **chosen)
        workload, nodes = write_family(
            args.family, args.output, seed=args.seed, data_dir=args.data, knobs=knobs
        )
        from components.contracts import read_nodes_table, read_workload_trace

        stats = family_stats(
            workload_from_trace(read_workload_trace(workload)),
            cluster_from_nodes(read_nodes_table(nodes)),
        )
    except MlschedError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"workload: {workload}\nnodes: {nodes}")
    print(f"knobs: {asdict(knobs)}")
    print("stats: " + ", ".join(f"{k}={v:.3g}" for k, v in stats.items()))
    print(f"built in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
