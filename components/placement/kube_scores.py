"""kube-scheduler's node-resources scores, as pure functions vectorised over nodes.

The project's single source of truth for what the default kube-scheduler would score: the
simulator's ``kube-default`` and ``most-allocated`` baselines and the extender's fallback both
call these. Formulas follow kubernetes ``pkg/scheduler/framework/plugins/noderesources``
(``least_allocated.go``, ``most_allocated.go``, ``balanced_allocation.go``,
``resource_allocation.go``) with the default resources cpu (weight 1) and memory (weight 1), and
the same integer arithmetic: CPU in millicores, memory in bytes, each score an int64 in 0..100.

* LeastAllocated: per resource ``(capacity - requested) * 100 // capacity`` (0 when requested
  exceeds capacity), then the weighted mean with integer division.
* MostAllocated: per resource ``min(requested, capacity) * 100 // capacity``, weighted mean.
* BalancedAllocation: per resource ``fraction = min(requested / capacity, 1)``; with cpu and
  memory ``std = |f_cpu - f_mem| / 2``; score ``int((1 - std) * 100)``.

``requested`` is what the node already holds plus the incoming pod. LeastAllocated and
MostAllocated count requests the non-zero way (``useRequested: false``): a container without a
CPU request counts as 100m and one without a memory request as 200 MiB
(``pkg/scheduler/util/pod_resources.go``), both for the node's pods and the incoming one.
BalancedAllocation counts the requests as written (``useRequested: true``) and is skipped for a
BestEffort pod (no CPU and no memory request; kubernetes issue 129138), which here means 0 on
every node. Here a pod is one container, so the defaults apply per pod.
"""

from __future__ import annotations

import numpy as np

MAX_NODE_SCORE = 100
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
DEFAULT_CPU_REQUEST_CORES = DEFAULT_MILLI_CPU_REQUEST / 1000
CPU_WEIGHT = 1
MEMORY_WEIGHT = 1

ArrayLike = np.ndarray | float


def milli_cpu(cores: ArrayLike) -> np.ndarray:
    """Cores as whole millicores (int64), the unit kube-scheduler computes in."""
    return np.rint(np.asarray(cores, dtype=np.float64) * 1000).astype(np.int64)


def whole_bytes(memory_bytes: ArrayLike) -> np.ndarray:
    """Bytes as int64."""
    return np.rint(np.asarray(memory_bytes, dtype=np.float64)).astype(np.int64)


def non_zero_requests(
    cpu_request_cores: ArrayLike, memory_request_bytes: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """The requests kube-scheduler scores with: 0 CPU becomes 100m, 0 memory becomes 200 MiB.

    Returns:
        (cpu cores, memory bytes) as float arrays.
    """
    cpu = np.asarray(cpu_request_cores, dtype=np.float64)
    memory = np.asarray(memory_request_bytes, dtype=np.float64)
    return (
        np.where(cpu > 0, cpu, DEFAULT_CPU_REQUEST_CORES),
        np.where(memory > 0, memory, float(DEFAULT_MEMORY_REQUEST)),
    )


def _least_requested(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    safe = np.where(capacity > 0, capacity, 1)
    score = (capacity - requested) * MAX_NODE_SCORE // safe
    return np.where((capacity == 0) | (requested > capacity), 0, score)


def _most_requested(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    safe = np.where(capacity > 0, capacity, 1)
    score = np.minimum(requested, capacity) * MAX_NODE_SCORE // safe
    return np.where(capacity == 0, 0, score)


def _weighted(cpu_score: np.ndarray, memory_score: np.ndarray) -> np.ndarray:
    total = cpu_score * CPU_WEIGHT + memory_score * MEMORY_WEIGHT
    return (total // (CPU_WEIGHT + MEMORY_WEIGHT)).astype(np.int64)


def _totals(node_cpu, node_memory, pod_cpu, pod_memory, *, non_zero: bool):
    if non_zero:
        pod_cpu, pod_memory = non_zero_requests(pod_cpu, pod_memory)
    return milli_cpu(np.asarray(node_cpu) + pod_cpu), whole_bytes(
        np.asarray(node_memory) + pod_memory
    )


def _resources_fit(
    score,
    allocatable_cpu_cores,
    allocatable_memory_bytes,
    nonzero_requested_cpu_cores,
    nonzero_requested_memory_bytes,
    pod_cpu_request_cores,
    pod_memory_request_bytes,
) -> np.ndarray:
    """NodeResourcesFit with the per-resource ``score`` (least or most requested), weighted."""
    cpu, memory = _totals(
        nonzero_requested_cpu_cores,
        nonzero_requested_memory_bytes,
        pod_cpu_request_cores,
        pod_memory_request_bytes,
        non_zero=True,
    )
    return _weighted(
        score(cpu, milli_cpu(allocatable_cpu_cores)),
        score(memory, whole_bytes(allocatable_memory_bytes)),
    )


def least_allocated_scores(
    allocatable_cpu_cores: np.ndarray,
    allocatable_memory_bytes: np.ndarray,
    nonzero_requested_cpu_cores: np.ndarray,
    nonzero_requested_memory_bytes: np.ndarray,
    pod_cpu_request_cores: float,
    pod_memory_request_bytes: float,
) -> np.ndarray:
    """NodeResourcesFit LeastAllocated, 0..100 per node (int64): emptier nodes score higher.

    Args:
        allocatable_cpu_cores, allocatable_memory_bytes: per-node allocatable.
        nonzero_requested_cpu_cores, nonzero_requested_memory_bytes: per node, the sum of its
            pods' requests with the non-zero defaults applied (see :func:`non_zero_requests`).
        pod_cpu_request_cores, pod_memory_request_bytes: the incoming pod's requests as written
            (0 for none); the non-zero defaults are applied here.
    """
    return _resources_fit(_least_requested, **locals())


def most_allocated_scores(*arguments: np.ndarray | float) -> np.ndarray:
    """NodeResourcesFit MostAllocated (bin packing), 0..100 per node: fuller nodes score higher.

    Arguments as in :func:`least_allocated_scores`.
    """
    return _resources_fit(_most_requested, *arguments)


def balanced_allocation_scores(
    allocatable_cpu_cores: np.ndarray,
    allocatable_memory_bytes: np.ndarray,
    requested_cpu_cores: np.ndarray,
    requested_memory_bytes: np.ndarray,
    pod_cpu_request_cores: float,
    pod_memory_request_bytes: float,
) -> np.ndarray:
    """NodeResourcesBalancedAllocation, 0..100 per node: ``int((1 - std(fractions)) * 100)``.

    A BestEffort pod (both requests 0) is skipped by the plugin: 0 on every node.

    Args:
        allocatable_cpu_cores, allocatable_memory_bytes: per-node allocatable.
        requested_cpu_cores, requested_memory_bytes: per node, the sum of its pods' requests
            as written (no non-zero defaults: BalancedAllocation uses ``useRequested``).
        pod_cpu_request_cores, pod_memory_request_bytes: the incoming pod's requests as written.
    """
    if pod_cpu_request_cores <= 0 and pod_memory_request_bytes <= 0:
        return np.zeros(np.shape(allocatable_cpu_cores), dtype=np.int64)
    cpu, memory = _totals(
        requested_cpu_cores,
        requested_memory_bytes,
        pod_cpu_request_cores,
        pod_memory_request_bytes,
        non_zero=False,
    )
    cpu_capacity = milli_cpu(allocatable_cpu_cores)
    memory_capacity = whole_bytes(allocatable_memory_bytes)
    cpu_fraction = np.minimum(cpu / np.where(cpu_capacity > 0, cpu_capacity, 1), 1.0)
    memory_fraction = np.minimum(memory / np.where(memory_capacity > 0, memory_capacity, 1), 1.0)
    both = (cpu_capacity > 0) & (memory_capacity > 0)
    std = np.where(both, np.abs(cpu_fraction - memory_fraction) / 2, 0.0)
    return ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)


def kube_default_scores(
    allocatable_cpu_cores: np.ndarray,
    allocatable_memory_bytes: np.ndarray,
    requested_cpu_cores: np.ndarray,
    requested_memory_bytes: np.ndarray,
    nonzero_requested_cpu_cores: np.ndarray,
    nonzero_requested_memory_bytes: np.ndarray,
    pod_cpu_request_cores: float,
    pod_memory_request_bytes: float,
) -> np.ndarray:
    """The default profile's resource scores: LeastAllocated + BalancedAllocation (0..200, int64).

    Both plugins carry weight 1 in the default KubeSchedulerConfiguration.
    """
    allocatable = (allocatable_cpu_cores, allocatable_memory_bytes)
    pod = (pod_cpu_request_cores, pod_memory_request_bytes)
    nonzero = (nonzero_requested_cpu_cores, nonzero_requested_memory_bytes)
    least = least_allocated_scores(*allocatable, *nonzero, *pod)
    return least + balanced_allocation_scores(
        *allocatable, requested_cpu_cores, requested_memory_bytes, *pod
    )
