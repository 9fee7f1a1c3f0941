"""What the DQN sees, built one way for training, the KServe predictor and the extender.

Every path goes through the :class:`NodeState` record, one row per node with the columns
:data:`~components.model_contracts.NODE_STATE_COLUMNS` (the served model's ``node_state`` input):

* the simulator's :class:`ClusterState` (training, evaluation) -> :func:`node_state_from_cluster`;
* the node features the extender reads from Feast -> :func:`node_state_from_features`;
* a record -> the network's inputs: :func:`policy_inputs` (for the extender's split forward
  pass, :func:`node_features` once per refresh and :func:`pod_dependent_features` per pod).

Node features are dimensionless (fractions of the node's capacity, log sizes, flags), so one
network serves nodes and clusters of any size. They include the node's real recent use (now,
window mean, std, P90, long-window mean and max), which the request-based heuristics ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION
from components.errors import MlschedError
from components.features.definitions import (
    CPU_REQUESTED_RATIO,
    MEMORY_REQUESTED_RATIO,
    POD_COUNT,
    WINDOWS,
)
from components.model_contracts import NODE_STATE_COLUMNS
from components.placement.policy import ClusterState, PodSpec, StepFeedback
from components.placement.profiles import cpu_use_guess

GIB = 1024.0**3
CPU_OVERLOAD = 0.90
MEMORY_OVERLOAD = 0.95
RECENT_WINDOW, LONG_WINDOW = "1h", "6h"
"""The feature windows read as the policy's recent and long windows (the simulator keeps its own
usage history for the recent one)."""
LONG_WINDOW_SECONDS = float(WINDOWS[LONG_WINDOW])

POD_DEPENDENT_FEATURE_NAMES = (
    "pod_cpu_ratio",
    "pod_memory_ratio",
    "cpu_after_p90_vs_threshold",
    "cpu_after_long_max_vs_threshold",
    "memory_after_vs_threshold",
    "cpu_headroom_cores",
    "memory_headroom_gib",
    "cpu_free_after_request",
    "memory_free_after_request",
    "cpu_after_pods_vs_threshold",
)
"""The node features that depend on the pod being placed (contiguous in NODE_FEATURE_NAMES)."""
PRIOR_LONG_PEAK_WEIGHT = 0.5
"""The prior judges a node's CPU load by ``(1 - w) x its recent P90 + w x its long-window (6 h)
peak``: a pod stays for hours (12 h on average in the families), so the load it will meet is
seen better over the longer window than over the last hour alone. Chosen on exploration draws
(seeds 100-159, 180 cells per real family, never the evaluation's seeds 0-19): against the P90
alone it cut overload by 8.4 % [4.6, 12.2] on fastStorage, 12.6 % on NAB and 1.5 % (not
distinguishable) on Rnd; on the synthetic family it changed nothing. Left out of any one real
family, the other two would have chosen it too."""
PRIOR_CORES_PER_POD = 0.3
"""The prior's guess of a not yet observed pod's CPU use: its workload's profile, else half its
request (:func:`~components.placement.profiles.cpu_use_guess`), plus 0.3 cores for every pod on
the node. Requests say little about use (the families' requests follow P95 use with Spearman
0.15-0.3), so every pod counts for a share of a core whatever it asks for: a node given many
small pods is expected busier than the requests say (chosen on exploration draws, seeds 10-17,
never on the evaluation's test windows)."""

_UTILISATION_COLUMNS = tuple(name for name in NODE_STATE_COLUMNS if "_util_" in name)
"""The record's utilisation columns, which are node features as they are (same names)."""

NODE_FEATURE_NAMES = (
    *_UTILISATION_COLUMNS,
    "cpu_pending_ratio",
    "memory_pending_ratio",
    "cpu_requested_ratio",
    "memory_requested_ratio",
    *POD_DEPENDENT_FEATURE_NAMES,
    "log_cpu_capacity",
    "log_memory_capacity",
    "has_gpus",
    "gpus_free_ratio",
    "empty",
    "pods_per_core",
)
POD_FEATURE_NAMES = (
    "log_cpu_request",
    "log_memory_request_gib",
    "gpus",
    "best_effort",
)
N_NODE_FEATURES = len(NODE_FEATURE_NAMES)
N_POD_FEATURES = len(POD_FEATURE_NAMES)
_FIRST_POD_DEPENDENT = NODE_FEATURE_NAMES.index(POD_DEPENDENT_FEATURE_NAMES[0])
POD_DEPENDENT_COLUMNS = slice(
    _FIRST_POD_DEPENDENT, _FIRST_POD_DEPENDENT + len(POD_DEPENDENT_FEATURE_NAMES)
)
"""Where the pod-dependent features sit in a node-feature row."""
FEATURE_CLIP = 10.0
_COLUMN = {name: i for i, name in enumerate(NODE_STATE_COLUMNS)}
PRIOR_COLUMNS = (
    NODE_FEATURE_NAMES.index("cpu_after_pods_vs_threshold"),
    NODE_FEATURE_NAMES.index("memory_after_vs_threshold"),
)
"""The node-feature columns the heuristic prior reads (both pod-dependent)."""


@dataclass(frozen=True)
class NodeState:
    """The per-node record the policy is given: ``values[i]`` is node i's NODE_STATE_COLUMNS
    (float64): capacities and requests in cores, bytes, GPUs and pods, utilisation as a fraction
    of capacity (now; over the recent window: mean, std, P90, max; over the long window: mean,
    max), and the requests placed since the usage was last observed (pending)."""

    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(NODE_STATE_COLUMNS):
            raise MlschedError(
                f"node state must have shape (nodes, {len(NODE_STATE_COLUMNS)}), got {values.shape}"
            )
        object.__setattr__(self, "values", values)

    @classmethod
    def from_columns(cls, **columns: np.ndarray | float) -> NodeState:
        """The record from one array (or scalar) per NODE_STATE_COLUMNS name."""
        if set(columns) != set(NODE_STATE_COLUMNS):
            missing = sorted(set(NODE_STATE_COLUMNS) - set(columns))
            raise MlschedError(
                f"node state: missing {missing}, unknown {sorted(set(columns) - set(_COLUMN))}"
            )
        arrays = [np.asarray(columns[name], dtype=np.float64) for name in NODE_STATE_COLUMNS]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        return cls(np.column_stack([np.broadcast_to(a, shape) for a in arrays]))

    def __getitem__(self, column: str) -> np.ndarray:
        return self.values[:, _COLUMN[column]]

    def rows(self, rows: np.ndarray) -> NodeState:
        return NodeState(self.values[rows])


class UsageTracker:
    """A longer window of per-node utilisation than the simulator's state keeps (ring buffer)."""

    def __init__(self, steps: int) -> None:
        self.steps = max(1, int(steps))
        self._cpu: np.ndarray | None = None
        self._memory: np.ndarray | None = None
        self._filled = 0
        self._next = 0

    @classmethod
    def for_step(cls, step_seconds: float) -> UsageTracker:
        return cls(int(round(LONG_WINDOW_SECONDS / max(step_seconds, 1.0))))

    def record(self, cpu_util: np.ndarray, memory_util: np.ndarray) -> None:
        if self._cpu is None or self._cpu.shape[1] != len(cpu_util):
            self._cpu = np.zeros((self.steps, len(cpu_util)))
            self._memory = np.zeros((self.steps, len(cpu_util)))
            self._filled = self._next = 0
        self._cpu[self._next] = cpu_util
        self._memory[self._next] = memory_util
        self._next = (self._next + 1) % self.steps
        self._filled = min(self._filled + 1, self.steps)

    def record_feedback(self, feedback: StepFeedback) -> None:
        """Record a step's utilisation as a live cluster shows it (the observation lag applied
        when the simulator has one), never the truth the rewards are computed from."""
        cpu = feedback.observed_cpu_utilization
        memory = feedback.observed_memory_utilization
        if cpu is not None and memory is not None:
            self.record(cpu, memory)

    def long_stats(self, n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cpu mean, cpu max, memory max) over the long window; zeros before any record."""
        if self._cpu is None or self._filled == 0 or self._cpu.shape[1] != n_nodes:
            zeros = np.zeros(n_nodes)
            return zeros, zeros, zeros
        cpu = self._cpu[: self._filled]
        return cpu.mean(axis=0), cpu.max(axis=0), self._memory[: self._filled].max(axis=0)


def p90(history: np.ndarray) -> np.ndarray:
    """Per-column 90th percentile with linear interpolation (numpy's default), faster."""
    ordered = np.sort(history, axis=0)
    position = 0.9 * (len(ordered) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def node_state_from_cluster(state: ClusterState, tracker: UsageTracker | None = None) -> NodeState:
    """The record from the simulator's state and the policy's long-window tracker (without a
    tracker, the state's own window stands in for the long one)."""
    cpu_cap, mem_cap = state.cpu_capacity, state.memory_capacity
    if len(state.cpu_usage_history):
        cpu_hist = state.cpu_usage_history / cpu_cap
        cpu_p90 = p90(cpu_hist)
        cpu_max = cpu_hist.max(axis=0)
        mem_p90 = p90(state.memory_usage_history / mem_cap)
    else:
        cpu_p90 = cpu_max = state.cpu_usage / cpu_cap
        mem_p90 = state.memory_usage / mem_cap
    if tracker is None:
        long_mean, long_max, mem_long_max = state.cpu_usage_mean / cpu_cap, cpu_max, mem_p90
    else:
        long_mean, long_max, mem_long_max = tracker.long_stats(state.n_nodes)
    return NodeState.from_columns(
        cpu_capacity_cores=cpu_cap,
        memory_capacity_bytes=mem_cap,
        gpu_capacity=state.gpu_capacity,
        gpus_requested=state.gpus_requested,
        cpu_requested_cores=state.cpu_requested,
        memory_requested_bytes=state.memory_requested,
        pod_count=state.pod_count,
        cpu_util_now=state.cpu_usage / cpu_cap,
        cpu_util_mean=state.cpu_usage_mean / cpu_cap,
        cpu_util_std=state.cpu_usage_std / cpu_cap,
        cpu_util_p90=cpu_p90,
        cpu_util_max=cpu_max,
        cpu_util_long_mean=long_mean,
        cpu_util_long_max=long_max,
        memory_util_now=state.memory_usage / mem_cap,
        memory_util_p90=mem_p90,
        memory_util_long_max=mem_long_max,
        cpu_pending_cores=state.cpu_requested_since_observed,
        memory_pending_bytes=state.memory_requested_since_observed,
        cpu_pending_use_cores=state.cpu_use_guess_since_observed,
    )


def node_state_from_features(
    features: pd.DataFrame,
    cpu_capacity_cores: np.ndarray,
    memory_capacity_bytes: np.ndarray,
    gpu_capacity: np.ndarray,
    cpu_p90: np.ndarray | None = None,
    memory_p90: np.ndarray | None = None,
) -> NodeState:
    """The record from node features (the Feast online features, one row per node) and the
    nodes' allocatable resources.

    Utilisation now is ``<r>_utilization`` (0 where unknown); the recent window is 1 h (mean,
    std, max), the long window 6 h (``cpu_mean_6h``, ``cpu_max_6h``, ``memory_max_6h``); the
    P90 is the forecast ``cpu_p90`` / ``memory_p90`` (fractions of capacity) where finite, else
    ``<r>_p95_1h``. A missing feature falls back to the nearest one (the 1 h max for the 6 h max,
    else the use now; std 0). Requests come from the requested ratios, pods from ``pod_count``;
    the features carry no GPU requests and nothing pending, so both are 0.
    """
    n = len(features)
    zeros = np.zeros(n)

    def feature(name: str, fallback: np.ndarray) -> np.ndarray:
        if name not in features.columns:
            return fallback
        values = features[name].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isfinite(values), values, fallback)

    def forecast(p90_now: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
        return fallback if p90_now is None else np.where(np.isfinite(p90_now), p90_now, fallback)

    cpu_cap = np.asarray(cpu_capacity_cores, dtype=np.float64)
    memory_cap = np.asarray(memory_capacity_bytes, dtype=np.float64)
    cpu_now = feature(CPU_UTILIZATION, zeros)
    memory_now = feature(MEMORY_UTILIZATION, zeros)
    cpu_max = feature(f"cpu_max_{RECENT_WINDOW}", cpu_now)
    return NodeState.from_columns(
        cpu_capacity_cores=cpu_cap,
        memory_capacity_bytes=memory_cap,
        gpu_capacity=gpu_capacity,
        gpus_requested=zeros,
        cpu_requested_cores=feature(CPU_REQUESTED_RATIO, zeros) * cpu_cap,
        memory_requested_bytes=feature(MEMORY_REQUESTED_RATIO, zeros) * memory_cap,
        pod_count=feature(POD_COUNT, zeros),
        cpu_util_now=cpu_now,
        cpu_util_mean=feature(f"cpu_mean_{RECENT_WINDOW}", cpu_now),
        cpu_util_std=feature(f"cpu_std_{RECENT_WINDOW}", zeros),
        cpu_util_p90=forecast(cpu_p90, feature(f"cpu_p95_{RECENT_WINDOW}", cpu_now)),
        cpu_util_max=cpu_max,
        cpu_util_long_mean=feature(f"cpu_mean_{LONG_WINDOW}", cpu_now),
        cpu_util_long_max=feature(f"cpu_max_{LONG_WINDOW}", cpu_max),
        memory_util_now=memory_now,
        memory_util_p90=forecast(memory_p90, feature(f"memory_p95_{RECENT_WINDOW}", memory_now)),
        memory_util_long_max=feature(f"memory_max_{LONG_WINDOW}", memory_now),
        cpu_pending_cores=zeros,
        memory_pending_bytes=zeros,
        cpu_pending_use_cores=zeros,
    )


def pod_features(pod: PodSpec) -> np.ndarray:
    """The pod's features, shape (N_POD_FEATURES,) float32."""
    return np.array(
        [
            np.log1p(pod.cpu_request_cores),
            np.log1p(pod.memory_request_bytes / GIB),
            pod.gpus / 4.0,
            float(pod.cpu_request_cores <= 0 and pod.memory_request_bytes <= 0),
        ],
        dtype=np.float32,
    )


def pod_dependent_features(nodes: NodeState, pod: PodSpec) -> np.ndarray:
    """The :data:`POD_DEPENDENT_FEATURE_NAMES` columns, (nodes, 10) float64 clipped: each node's
    load before the pod (P90, long-window max and memory P90, each plus what is pending) and its
    requests, with the pod added; last, the prior's CPU guess (:func:`prior_cpu_load` plus the
    pending pods' and the pod's guessed use, see :func:`heuristic_prior`)."""
    cpu_capacity, memory_capacity = nodes["cpu_capacity_cores"], nodes["memory_capacity_bytes"]
    pending_cpu = nodes["cpu_pending_cores"] / cpu_capacity
    pending_memory = nodes["memory_pending_bytes"] / memory_capacity
    pod_cpu = pod.nonzero_cpu_cores / cpu_capacity
    pod_mem = pod.nonzero_memory_bytes / memory_capacity
    cpu_after = (nodes["cpu_util_p90"] + pending_cpu) + pod_cpu
    cpu_long_after = (nodes["cpu_util_long_max"] + pending_cpu) + pod_cpu
    pod_use = (
        nodes["cpu_pending_use_cores"]
        + cpu_use_guess(pod.nonzero_cpu_cores, pod.expected_cpu_cores)
        + PRIOR_CORES_PER_POD * (nodes["pod_count"] + 1.0)
    ) / cpu_capacity
    mem_after = (nodes["memory_util_p90"] + pending_memory) + pod_mem
    columns = [
        pod_cpu,
        pod_mem,
        cpu_after / CPU_OVERLOAD,
        cpu_long_after / CPU_OVERLOAD,
        mem_after / MEMORY_OVERLOAD,
        (CPU_OVERLOAD - cpu_after) * cpu_capacity / 8.0,
        (MEMORY_OVERLOAD - mem_after) * memory_capacity / (32.0 * GIB),
        1.0 - (nodes["cpu_requested_cores"] + pod.cpu_request_cores) / cpu_capacity,
        1.0 - (nodes["memory_requested_bytes"] + pod.memory_request_bytes) / memory_capacity,
        (prior_cpu_load(nodes) + pod_use) / CPU_OVERLOAD,
    ]
    return np.clip(np.column_stack(columns), -FEATURE_CLIP, FEATURE_CLIP)


def node_features(nodes: NodeState, pod: PodSpec) -> np.ndarray:
    """Per-node features for placing ``pod``, shape (nodes, N_NODE_FEATURES) float32."""
    cpu_cap, mem_cap = nodes["cpu_capacity_cores"], nodes["memory_capacity_bytes"]
    gpu_cap = nodes["gpu_capacity"]
    pod_count = nodes["pod_count"]
    columns = [
        *(nodes[name] for name in _UTILISATION_COLUMNS),
        nodes["cpu_pending_cores"] / cpu_cap,
        nodes["memory_pending_bytes"] / mem_cap,
        nodes["cpu_requested_cores"] / cpu_cap,
        nodes["memory_requested_bytes"] / mem_cap,
        *pod_dependent_features(nodes, pod).T,
        np.log2(cpu_cap / 8.0) / 2.0,
        np.log2(mem_cap / (32.0 * GIB)) / 2.0,
        (gpu_cap > 0).astype(np.float64),
        (gpu_cap - nodes["gpus_requested"]) / np.maximum(gpu_cap, 1.0),
        (pod_count == 0).astype(np.float64),
        pod_count / cpu_cap,
    ]
    return np.clip(np.column_stack(columns), -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


def prior_cpu_load(nodes: NodeState) -> np.ndarray:
    """The node's CPU load as the prior judges it, a fraction of capacity
    (:data:`PRIOR_LONG_PEAK_WEIGHT`)."""
    weight = PRIOR_LONG_PEAK_WEIGHT
    return (1.0 - weight) * nodes["cpu_util_p90"] + weight * nodes["cpu_util_long_max"]


def heuristic_prior(cpu_after_vs_threshold, memory_after_vs_threshold, maximum=np.maximum):
    """The prior's score from its two node features (:data:`PRIOR_COLUMNS`): minus the larger
    of the node's predicted CPU and memory after the pod, each over its overload threshold
    (higher is better). The rule is ``greedy-predictive``'s (observed load plus what is placed
    but not yet observed), except that the node's CPU load weighs its 6-hour peak in
    (:func:`prior_cpu_load`) and a not yet observed pod's CPU use is its workload's profile, else
    guessed from its request (:func:`~components.placement.profiles.cpu_use_guess`), plus a
    share of a core per pod (:data:`PRIOR_CORES_PER_POD`). ``maximum`` is
    ``np.maximum`` or ``torch.maximum``: the network and the extender's numpy forward pass share
    this formula."""
    return -maximum(cpu_after_vs_threshold, memory_after_vs_threshold)


def policy_inputs(nodes: NodeState, pod: PodSpec) -> tuple[np.ndarray, np.ndarray]:
    """The network's inputs for placing ``pod`` on ``nodes``: (pod features (N_POD_FEATURES,),
    node features (nodes, N_NODE_FEATURES)), float32, in the order ``q_values`` takes them."""
    return pod_features(pod), node_features(nodes, pod)
