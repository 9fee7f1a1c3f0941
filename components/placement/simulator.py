"""Discrete-time replay of a workload onto a cluster under one placement policy.

Each step, in this order:

1. pods whose life is over leave and give their requests back;
2. pods arriving at this step join the FIFO pending queue;
3. every pending pod, oldest first, is filtered (requests fit what is left, as NodeResourcesFit
   does, GPUs included; then the GPU rules of :mod:`components.placement.gpu`), scored by the
   policy and placed on the best feasible node (ties broken by the run's seeded RNG); a pod
   that fits nowhere stays in the queue and retries next step;
4. running pods use what the trace says (shifted by their pending delay); the step's metrics
   are taken from that real use;
5. the state observes that use (history window, mean, std; optional forecast) and the policy's
   ``observe`` gets the step's feedback.

Metrics (``SimulationResult.metrics``): ``overload_node_minutes`` (node-steps with real CPU >
90 % or memory > 95 % of capacity, in minutes), ``mean_pending_minutes`` and
``max_pending_minutes`` (placed pods), ``pods_pending`` (pods that ever waited, including those
never placed), ``pods_never_placed``, ``mean_cpu_utilization_nonempty`` and
``mean_memory_utilization_nonempty`` (of nodes running pods), ``mean_nodes_used``,
``max_nodes_used``, ``load_imbalance`` (mean over steps of the std of node CPU utilisation),
``throttled_pod_steps`` (pods on a node whose CPU demand exceeds its capacity, per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.placement.gpu import gpu_aware_mask
from components.placement.policy import ClusterState, PlacementPolicy, StepFeedback
from components.placement.workload import Cluster, Workload

Forecaster = Callable[[ClusterState], np.ndarray]


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the replay.

    Attributes:
        history_window: observed steps kept in the state's usage history (Trimaran's window).
        cpu_overload, memory_overload: the overload thresholds (fractions of capacity).
        gpu_aware: apply the GPU packing / avoidance rules to every policy.
    """

    history_window: int = 15
    cpu_overload: float = 0.90
    memory_overload: float = 0.95
    gpu_aware: bool = True


@dataclass
class SimulationResult:
    """A run's metrics, assignment log (one row per pod) and per-step timeline."""

    policy: str
    metrics: dict[str, float]
    assignments: pd.DataFrame
    timeline: pd.DataFrame


ASSIGNMENT_COLUMNS = ("pod", "node", "arrival_time", "placed_time", "pending_minutes")


def choose_node(scores: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> int:
    """The best-scoring candidate; ties broken uniformly at random with ``rng``.

    Raises:
        ValueError: when ``scores`` has the wrong shape or a candidate's score is NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != candidates.shape:
        raise ValueError(f"policy returned {scores.shape} scores for {candidates.shape} nodes")
    masked = np.where(candidates, scores, -np.inf)
    if np.isnan(masked).any():
        raise ValueError("policy returned NaN scores for feasible nodes")
    best = masked.max()
    tied = np.flatnonzero((masked == best) & candidates)
    if len(tied) == 1:
        return int(tied[0])
    return int(tied[rng.integers(len(tied))])


def simulate(
    workload: Workload,
    cluster: Cluster,
    policy: PlacementPolicy,
    *,
    seed: int = 0,
    config: SimulationConfig | None = None,
    forecaster: Forecaster | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Replay ``workload`` on ``cluster`` with ``policy``; same inputs and seed, same result."""
    config = config or SimulationConfig()
    began = time.perf_counter()
    policy.reset(seed)
    tie_rng = np.random.default_rng([seed, 7])
    state = cluster.empty_state(workload.step_seconds)
    n_nodes, n_pods, n_steps = state.n_nodes, workload.n_pods, workload.n_steps
    cpu_cap, mem_cap = state.cpu_capacity, state.memory_capacity

    placed_node = np.full(n_pods, -1, dtype=np.int64)
    placed_step = np.full(n_pods, -1, dtype=np.int64)
    arrivals = np.searchsorted(workload.arrival, np.arange(n_steps + 1))
    specs: dict[int, object] = {}
    pending: list[int] = []
    running = np.zeros(0, dtype=np.int64)

    overloaded_nodes = np.zeros(n_steps, dtype=np.int64)
    pending_count = np.zeros(n_steps, dtype=np.int64)
    nodes_used = np.zeros(n_steps, dtype=np.int64)
    cpu_util_nonempty = np.full(n_steps, np.nan)
    mem_util_nonempty = np.full(n_steps, np.nan)
    imbalance = np.zeros(n_steps)
    throttled = np.zeros(n_steps, dtype=np.int64)
    placements_made = np.zeros(n_steps, dtype=np.int64)
    observe = getattr(policy, "observe", None)

    steps = range(n_steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"simulate {policy.name}", unit="step", leave=False)
    for step in steps:
        state.step = step
        if len(running):
            ended = placed_step[running] + workload.length[running] <= step
            if ended.any():
                gone = running[ended]
                state.release(
                    placed_node[gone],
                    workload.cpu_request[gone],
                    workload.memory_request[gone],
                    workload.gpus[gone].astype(np.float64),
                )
                running = running[~ended]
        pending.extend(range(arrivals[step], arrivals[step + 1]))

        placed_now: list[tuple[str, int]] = []
        waiting: list[int] = []
        new_running: list[int] = []
        for pod in pending:
            spec = specs.get(pod)
            if spec is None:
                spec = specs[pod] = workload.pod_spec(pod)
            feasible = state.feasible(spec)
            if not feasible.any():
                waiting.append(pod)
                continue
            candidates = gpu_aware_mask(spec, state, feasible) if config.gpu_aware else feasible
            node = choose_node(policy.score(spec, state, candidates), candidates, tie_rng)
            state.place(spec, node)
            placed_node[pod], placed_step[pod] = node, step
            new_running.append(pod)
            placed_now.append((spec.pod, node))
        pending = waiting
        if new_running:
            running = np.concatenate([running, np.asarray(new_running, dtype=np.int64)])
        placements_made[step] = len(new_running)

        rows = workload.offset[running] + (step - placed_step[running])
        where = placed_node[running]
        cpu = np.bincount(where, workload.cpu_usage[rows], n_nodes)
        memory = np.bincount(where, workload.memory_usage[rows], n_nodes)
        pods_on = np.bincount(where, minlength=n_nodes)
        cpu_util, mem_util = cpu / cpu_cap, memory / mem_cap
        over = (cpu_util > config.cpu_overload) | (mem_util > config.memory_overload)
        busy = pods_on > 0
        overloaded_nodes[step] = int(over.sum())
        pending_count[step] = len(pending)
        nodes_used[step] = int(busy.sum())
        if busy.any():
            cpu_util_nonempty[step] = float(np.minimum(cpu_util[busy], 1.0).mean())
            mem_util_nonempty[step] = float(np.minimum(mem_util[busy], 1.0).mean())
        imbalance[step] = float(cpu_util.std())
        throttled[step] = int(pods_on[cpu > cpu_cap].sum())

        state.record_usage(cpu, memory, config.history_window)
        if forecaster is not None:
            state.forecast_cpu_p90 = np.asarray(forecaster(state), dtype=np.float64)
        if observe is not None:
            observe(
                StepFeedback(
                    step=step,
                    placements=tuple(placed_now),
                    overloaded=over,
                    cpu_utilization=cpu_util,
                    memory_utilization=mem_util,
                    throttled_pods=np.where(cpu > cpu_cap, pods_on, 0),
                    pending=len(pending),
                ),
                state,
            )

    step_minutes = workload.step_seconds / 60.0
    placed = placed_step >= 0
    waits = (placed_step - workload.arrival) * step_minutes
    metrics = {
        "overload_node_minutes": float(overloaded_nodes.sum() * step_minutes),
        "mean_pending_minutes": float(waits[placed].mean()) if placed.any() else 0.0,
        "max_pending_minutes": float(waits[placed].max()) if placed.any() else 0.0,
        "pods_pending": int(((waits > 0) & placed).sum() + (~placed).sum()),
        "pods_never_placed": int((~placed).sum()),
        "pods": int(n_pods),
        "mean_cpu_utilization_nonempty": _nanmean(cpu_util_nonempty),
        "mean_memory_utilization_nonempty": _nanmean(mem_util_nonempty),
        "mean_nodes_used": float(nodes_used.mean()) if n_steps else 0.0,
        "max_nodes_used": int(nodes_used.max()) if n_steps else 0,
        "load_imbalance": float(imbalance.mean()) if n_steps else 0.0,
        "throttled_pod_steps": int(throttled.sum()),
        "steps": int(n_steps),
        "nodes": int(n_nodes),
        "step_seconds": int(workload.step_seconds),
        "simulation_seconds": time.perf_counter() - began,
    }
    node_names = np.asarray(cluster.nodes + ("",), dtype=object)
    assignments = pd.DataFrame(
        {
            "pod": workload.pods.astype(str),
            "node": node_names[placed_node],
            "arrival_time": workload.time_of(workload.arrival),
            "placed_time": _placed_times(workload, placed_step).array,
            "pending_minutes": np.where(placed, waits, np.nan),
        }
    )
    timeline = pd.DataFrame(
        {
            "time": workload.time_of(np.arange(n_steps)),
            "overloaded_nodes": overloaded_nodes,
            "pending_pods": pending_count,
            "placements": placements_made,
            "nodes_used": nodes_used,
            "cpu_utilization_nonempty": cpu_util_nonempty,
            "load_imbalance": imbalance,
            "throttled_pods": throttled,
        }
    )
    return SimulationResult(policy.name, metrics, assignments, timeline)


def _placed_times(workload: Workload, placed_step: np.ndarray) -> pd.Series:
    times = pd.Series(workload.time_of(np.maximum(placed_step, 0)))
    return times.where(placed_step >= 0)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else 0.0
