"""What the DQN sees: per-node features joined with the pod's, built from the cluster state.

Node features are dimensionless (fractions of the node's capacity, log sizes, flags), so one
network serves nodes and clusters of any size. They include the node's real recent use (now,
window mean, std, P90, long-window mean and max), which the request-based heuristics ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.placement.policy import ClusterState, PodSpec

GIB = 1024.0**3
CPU_OVERLOAD = 0.90
MEMORY_OVERLOAD = 0.95
LONG_WINDOW_SECONDS = 6 * 3600.0

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
)
"""The node features that depend on the pod being placed (contiguous in NODE_FEATURE_NAMES)."""

NODE_FEATURE_NAMES = (
    "cpu_util_now",
    "cpu_util_mean",
    "cpu_util_std",
    "cpu_util_p90",
    "cpu_util_max",
    "cpu_util_long_mean",
    "cpu_util_long_max",
    "memory_util_now",
    "memory_util_p90",
    "memory_util_long_max",
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


@dataclass(frozen=True)
class NodeSnapshot:
    """Per-node arrays the features are computed from (cores, bytes, fractions of capacity).

    Built from the simulator's :class:`ClusterState` by :func:`snapshot_from_state`, or from live
    metrics by a serving layer.
    """

    cpu_capacity: np.ndarray
    memory_capacity: np.ndarray
    gpu_capacity: np.ndarray
    gpus_requested: np.ndarray
    cpu_requested: np.ndarray
    memory_requested: np.ndarray
    pod_count: np.ndarray
    cpu_util_now: np.ndarray
    cpu_util_mean: np.ndarray
    cpu_util_std: np.ndarray
    cpu_util_p90: np.ndarray
    cpu_util_max: np.ndarray
    cpu_util_long_mean: np.ndarray
    cpu_util_long_max: np.ndarray
    memory_util_now: np.ndarray
    memory_util_p90: np.ndarray
    memory_util_long_max: np.ndarray
    cpu_pending_cores: np.ndarray
    memory_pending_bytes: np.ndarray


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

    def reset(self) -> None:
        self._cpu = self._memory = None
        self._filled = self._next = 0

    def record(self, cpu_util: np.ndarray, memory_util: np.ndarray) -> None:
        if self._cpu is None or self._cpu.shape[1] != len(cpu_util):
            self._cpu = np.zeros((self.steps, len(cpu_util)))
            self._memory = np.zeros((self.steps, len(cpu_util)))
            self._filled = self._next = 0
        self._cpu[self._next] = cpu_util
        self._memory[self._next] = memory_util
        self._next = (self._next + 1) % self.steps
        self._filled = min(self._filled + 1, self.steps)

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


def snapshot_from_state(state: ClusterState, tracker: UsageTracker | None = None) -> NodeSnapshot:
    """The feature inputs from the simulator's state (and the policy's long-window tracker)."""
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
    return NodeSnapshot(
        cpu_capacity=cpu_cap,
        memory_capacity=mem_cap,
        gpu_capacity=state.gpu_capacity,
        gpus_requested=state.gpus_requested,
        cpu_requested=state.cpu_requested,
        memory_requested=state.memory_requested,
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


def pod_dependent_features(
    cpu_capacity: np.ndarray,
    memory_capacity: np.ndarray,
    cpu_before: np.ndarray,
    cpu_long_before: np.ndarray,
    memory_before: np.ndarray,
    cpu_requested: np.ndarray,
    memory_requested: np.ndarray,
    pod: PodSpec,
) -> list[np.ndarray]:
    """The :data:`POD_DEPENDENT_FEATURE_NAMES` columns, unclipped, from each node's load before
    the pod (P90, long-window max and memory P90, each plus pending pods, as utilisation) and
    its requests."""
    pod_cpu = pod.nonzero_cpu_cores / cpu_capacity
    pod_mem = pod.nonzero_memory_bytes / memory_capacity
    cpu_after = cpu_before + pod_cpu
    mem_after = memory_before + pod_mem
    return [
        pod_cpu,
        pod_mem,
        cpu_after / CPU_OVERLOAD,
        (cpu_long_before + pod_cpu) / CPU_OVERLOAD,
        mem_after / MEMORY_OVERLOAD,
        (CPU_OVERLOAD - cpu_after) * cpu_capacity / 8.0,
        (MEMORY_OVERLOAD - mem_after) * memory_capacity / (32.0 * GIB),
        1.0 - (cpu_requested + pod.cpu_request_cores) / cpu_capacity,
        1.0 - (memory_requested + pod.memory_request_bytes) / memory_capacity,
    ]


def node_features(snapshot: NodeSnapshot, pod: PodSpec) -> np.ndarray:
    """Per-node features for placing ``pod``, shape (n, N_NODE_FEATURES) float32."""
    s = snapshot
    cpu_cap, mem_cap = s.cpu_capacity, s.memory_capacity
    pending_cpu = s.cpu_pending_cores / cpu_cap
    pending_mem = s.memory_pending_bytes / mem_cap
    gpu_cap = np.asarray(s.gpu_capacity, dtype=np.float64)
    columns = [
        s.cpu_util_now,
        s.cpu_util_mean,
        s.cpu_util_std,
        s.cpu_util_p90,
        s.cpu_util_max,
        s.cpu_util_long_mean,
        s.cpu_util_long_max,
        s.memory_util_now,
        s.memory_util_p90,
        s.memory_util_long_max,
        pending_cpu,
        pending_mem,
        s.cpu_requested / cpu_cap,
        s.memory_requested / mem_cap,
        *pod_dependent_features(
            cpu_cap,
            mem_cap,
            s.cpu_util_p90 + pending_cpu,
            s.cpu_util_long_max + pending_cpu,
            s.memory_util_p90 + pending_mem,
            s.cpu_requested,
            s.memory_requested,
            pod,
        ),
        np.log2(cpu_cap / 8.0) / 2.0,
        np.log2(mem_cap / (32.0 * GIB)) / 2.0,
        (gpu_cap > 0).astype(np.float64),
        (gpu_cap - s.gpus_requested) / np.maximum(gpu_cap, 1.0),
        (s.pod_count == 0).astype(np.float64),
        s.pod_count / cpu_cap,
    ]
    matrix = np.column_stack([np.broadcast_to(c, cpu_cap.shape) for c in columns])
    return np.clip(matrix, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
