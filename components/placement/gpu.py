"""GPU-aware placement rules, applied by the simulator on top of every policy.

1. Filter: a pod asking for GPUs only fits nodes with that many whole GPUs free (part of
   :meth:`ClusterState.feasible`, as NodeResourcesFit does for extended resources).
2. GPU pods pack: when some feasible node already runs GPU pods, only those nodes stay
   candidates, so that untouched GPU nodes keep all their GPUs free for large jobs.
3. Non-GPU pods avoid GPU nodes: when some feasible node has no GPUs, GPU nodes are dropped.

Rules 2 and 3 narrow the feasible mask the policy sees and never empty it: when the preferred
set is empty, every feasible node stays a candidate.
"""

from __future__ import annotations

import numpy as np

from components.placement.policy import ClusterState, PodSpec


def gpu_preferred_nodes(
    pod_gpus: int, gpu_capacity: np.ndarray, gpus_requested: np.ndarray, feasible: np.ndarray
) -> np.ndarray:
    """Rules 2 and 3 on plain arrays (the simulator and the extender both call this): the
    feasible nodes a pod asking for ``pod_gpus`` GPUs should go to (a subset of ``feasible``)."""
    if pod_gpus > 0:
        preferred = feasible & (np.asarray(gpus_requested) > 0)
    else:
        preferred = feasible & (np.asarray(gpu_capacity) == 0)
    return preferred if preferred.any() else feasible


def gpu_aware_mask(pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
    """The feasible nodes the GPU rules leave for ``pod`` (a subset of ``feasible``)."""
    return gpu_preferred_nodes(pod.gpus, state.gpu_capacity, state.gpus_requested, feasible)
