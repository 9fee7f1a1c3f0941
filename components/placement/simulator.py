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

What a policy sees (``ClusterState``) is what a live cluster would show: requests (and pods placed,
released) at once, node *use* only after ``SimulationConfig.observation_lag_seconds`` (scrape
interval + feature refresh + prediction refresh). A step's use is the mean over that step, so the
freshest sample a policy can hold is the step just ended, whose midpoint is half a step old; a
live pipeline adds the lag. The lag is therefore applied in whole steps, ``k = floor(lag / step +
1/2)`` (nearest): at step ``t`` the policy sees the use of steps ``<= t - 1 - k`` (history, mean,
std, the optional forecast), and the pods placed after step ``t - 1 - k`` that still run count in
``placed_since_observed`` / ``*_requested_since_observed`` (requests known, use not yet).

* 60 s steps (the generator), lag 60 s: ``k = 1``; pods placed at step ``t`` show up in the use a
  policy sees from step ``t + 2`` on (at ``t + 1`` they count by their requests only).
* 300 s steps (the real traces), lag 60 s: ``k = 0``: a 5-minute sample is already 150 s old at
  its midpoint when the step ends, more than a minute's lag adds; ``k = 1`` would make it 450 s.
* ``observation_lag_seconds=0``: ``k = 0``, the use of the step just ended.

A policy's ``observe`` gets each step's true use (for rewards) and the observed one.

With ``SimulationConfig.workload_profiles``, every pod a policy scores also carries its
workload's profile (:mod:`~components.placement.profiles`): the mean CPU per pod its workload's
running pods showed in the observed steps of the last hour (and, for a window cut from a longer
draw, in the hour before it), as a live cluster's per-pod metrics would.

Metrics (``SimulationResult.metrics``): ``overload_node_minutes`` (node-steps with real CPU >
90 % or memory > 95 % of capacity, in minutes), ``mean_pending_minutes`` and
``max_pending_minutes`` (placed pods), ``pods_pending`` (pods that ever waited, including those
never placed), ``pods_never_placed``, ``mean_cpu_utilization_nonempty`` and
``mean_memory_utilization_nonempty`` (of nodes running pods), ``mean_nodes_used``,
``max_nodes_used``, ``load_imbalance`` (mean over steps of the std of node CPU utilisation),
``throttled_pod_steps`` (pods on a node whose CPU demand exceeds its capacity, per step).
Herding: a burst is ``BURST_MIN_REPLICAS`` (5) or more pods of one owner (ReplicaSet) arriving in
the same step; its share is the largest number of its pods placed on one node over its size;
``max_burst_share`` and ``mean_burst_share`` over the run's bursts (0 when it has none),
``bursts`` how many.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.placement.gpu import gpu_aware_mask
from components.placement.policy import ClusterState, PlacementPolicy, StepFeedback
from components.placement.profiles import WorkloadProfiles, workload_of
from components.placement.workload import Cluster, Workload

Forecaster = Callable[[ClusterState], np.ndarray]


BURST_MIN_REPLICAS = 5
DEFAULT_OBSERVATION_LAG_SECONDS = 60.0


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the replay.

    Attributes:
        history_window: observed steps kept in the state's usage history (Trimaran's window).
        cpu_overload, memory_overload: the overload thresholds (fractions of capacity).
        gpu_aware: apply the GPU packing / avoidance rules to every policy.
        observation_lag_seconds: how old the node use a policy sees is (scrape interval +
            feature refresh + prediction refresh); applied in whole steps, see the module doc.
        workload_profiles: keep each workload's recent use per pod from the observed use of its
            pods (and what ran before a window, ``Workload.recent_workload_use``), and hand it
            to policies on every pod they score (``PodSpec.expected_cpu_cores``).
    """

    history_window: int = 15
    cpu_overload: float = 0.90
    memory_overload: float = 0.95
    gpu_aware: bool = True
    observation_lag_seconds: float = DEFAULT_OBSERVATION_LAG_SECONDS
    workload_profiles: bool = False


def observation_lag_steps(lag_seconds: float, step_seconds: float) -> int:
    """The lag in whole steps: the nearest to ``lag_seconds / step_seconds`` (halves up)."""
    if lag_seconds < 0:
        raise ValueError(f"observation lag must be >= 0 s, got {lag_seconds:g}")
    return int(np.floor(lag_seconds / step_seconds + 0.5))


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
    lag = observation_lag_steps(config.observation_lag_seconds, workload.step_seconds)

    placed_node = np.full(n_pods, -1, dtype=np.int64)
    placed_step = np.full(n_pods, -1, dtype=np.int64)
    ends = np.full(n_pods, np.iinfo(np.int64).max, dtype=np.int64)
    arrivals = np.searchsorted(workload.arrival, np.arange(n_steps + 1))
    specs: dict[int, object] = {}
    pending: list[int] = []
    running = np.zeros(0, dtype=np.int64)
    # A pod that did not fit cannot fit before some pod leaves (requests only grow in between):
    # it is checked again only after a release. Same placements, fewer filter calls.
    releases = 0
    refused_at: dict[int, int] = {}
    # (step, cpu use, memory use, pods placed, workload use) of the steps not yet visible to
    # the policy.
    unseen: list[tuple] = []
    profiles = _ProfileFeed(workload, state) if config.workload_profiles else None

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
            ended = ends[running] <= step
            if ended.any():
                gone = running[ended]
                state.release(
                    placed_node[gone],
                    workload.cpu_request[gone],
                    workload.memory_request[gone],
                    workload.gpus[gone].astype(np.float64),
                )
                running = running[~ended]
                releases += 1
        pending.extend(range(arrivals[step], arrivals[step + 1]))

        placed_now: list[tuple[str, int]] = []
        placed_specs: list[tuple[object, int, int]] = []
        waiting: list[int] = []
        new_running: list[int] = []
        for pod in pending:
            if refused_at.get(pod) == releases:
                waiting.append(pod)
                continue
            spec = specs.get(pod)
            if spec is None:
                spec = specs[pod] = workload.pod_spec(pod)
            spec = state.profiled(spec)
            feasible = state.feasible(spec)
            if not feasible.any():
                refused_at[pod] = releases
                waiting.append(pod)
                continue
            candidates = gpu_aware_mask(spec, state, feasible) if config.gpu_aware else feasible
            node = choose_node(policy.score(spec, state, candidates), candidates, tie_rng)
            state.place(spec, node)
            placed_node[pod], placed_step[pod] = node, step
            ends[pod] = step + workload.length[pod]
            refused_at.pop(pod, None)
            new_running.append(pod)
            placed_now.append((spec.pod, node))
            placed_specs.append((spec, node, pod))
        pending = waiting
        if new_running:
            running = np.concatenate([running, np.asarray(new_running, dtype=np.int64)])
        placements_made[step] = len(new_running)

        rows = workload.offset[running] + (step - placed_step[running])
        where = placed_node[running]
        pod_cpu = workload.cpu_usage[rows]
        cpu = np.bincount(where, pod_cpu, n_nodes)
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

        sample = profiles.sample(running, pod_cpu) if profiles is not None else None
        unseen.append((step, cpu, memory, placed_specs, sample))
        if len(unseen) > lag:
            seen_step, seen_cpu, seen_memory, _, seen_sample = unseen.pop(0)
            if profiles is not None:
                profiles.add(seen_step, seen_sample)
            state.record_usage(
                seen_cpu, seen_memory, config.history_window, _still_running(unseen, ends, step)
            )
            if forecaster is not None:
                state.forecast_cpu_p90 = np.asarray(forecaster(state), dtype=np.float64)
        else:
            state.set_placed_since_observed(_still_running(unseen, ends, step))
        if observe is not None:
            observed = state.observations > 0 and len(state.cpu_usage_history) > 0
            observe(
                StepFeedback(
                    step=step,
                    placements=tuple(placed_now),
                    overloaded=over,
                    cpu_utilization=cpu_util,
                    memory_utilization=mem_util,
                    throttled_pods=np.where(cpu > cpu_cap, pods_on, 0),
                    pending=len(pending),
                    observed_cpu_utilization=state.cpu_utilization if observed else None,
                    observed_memory_utilization=state.memory_utilization if observed else None,
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
        **burst_shares(workload, placed_node),
        "steps": int(n_steps),
        "nodes": int(n_nodes),
        "step_seconds": int(workload.step_seconds),
        "observation_lag_steps": lag,
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


def _still_running(unseen, ends: np.ndarray, step: int) -> list:
    """(spec, node) of the pods placed in the unseen steps that still run at ``step + 1``."""
    return [
        (spec, node)
        for _, _, _, placed, _ in unseen
        for spec, node, pod in placed
        if ends[pod] > step + 1
    ]


class _ProfileFeed:
    """Feeds the state's workload profiles: each observed step's use of every workload's running
    pods, after what ran before the window."""

    def __init__(self, workload: Workload, state: ClusterState) -> None:
        names = np.array([workload_of(str(owner)) for owner in workload.owner], dtype=object)
        codes, uniques = pd.factorize(names)
        self.names = np.asarray(uniques, dtype=object)
        self.codes = np.where(names == "", -1, codes)
        self.step_seconds = float(workload.step_seconds)
        self.profiles = state.workload_profiles = WorkloadProfiles()
        recent = workload.recent_workload_use
        if recent is not None:
            for step, name, cpu, pods in zip(
                recent.step, recent.workload, recent.cpu_cores, recent.pods, strict=True
            ):
                self.profiles.add(float(step) * self.step_seconds, name, float(cpu), int(pods))

    def sample(self, running: np.ndarray, pod_cpu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = self.codes[running]
        owned = codes >= 0
        n = len(self.names)
        return (
            np.bincount(codes[owned], pod_cpu[owned], n),
            np.bincount(codes[owned], minlength=n),
        )

    def add(self, step: int, sample: tuple[np.ndarray, np.ndarray]) -> None:
        cpu, pods = sample
        at = step * self.step_seconds
        for index in np.flatnonzero(pods):
            self.profiles.add(at, self.names[index], float(cpu[index]), int(pods[index]))


def burst_shares(workload: Workload, placed_node: np.ndarray) -> dict[str, float]:
    """Herding: per burst (>= ``BURST_MIN_REPLICAS`` pods of one owner arriving in one step), the
    largest number of its pods on one node over its size; the max and mean over bursts."""
    owners = np.asarray(workload.owner, dtype=object)
    named = owners != ""
    if not named.any():
        return {"max_burst_share": 0.0, "mean_burst_share": 0.0, "bursts": 0}
    frame = pd.DataFrame(
        {"owner": owners[named], "arrival": workload.arrival[named], "node": placed_node[named]}
    )
    size = frame.groupby(["owner", "arrival"]).size()
    on_node = frame[frame["node"] >= 0].groupby(["owner", "arrival", "node"]).size()
    largest = on_node.groupby(level=["owner", "arrival"]).max().reindex(size.index, fill_value=0)
    burst = size >= BURST_MIN_REPLICAS
    shares = (largest[burst] / size[burst]).to_numpy(dtype=np.float64)
    if len(shares) == 0:
        return {"max_burst_share": 0.0, "mean_burst_share": 0.0, "bursts": 0}
    return {
        "max_burst_share": float(shares.max()),
        "mean_burst_share": float(shares.mean()),
        "bursts": int(len(shares)),
    }


def _placed_times(workload: Workload, placed_step: np.ndarray) -> pd.Series:
    times = pd.Series(workload.time_of(np.maximum(placed_step, 0)))
    return times.where(placed_step >= 0)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else 0.0
