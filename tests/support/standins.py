"""Pod scorers for tests and benchmarks: an untrained network of the DQN's shape and the
placement heuristics, plugged in where the extender takes a pod scorer.

* :class:`StandInQNetwork` is a fixed, seeded, untrained MLP with the DQN's shape (a shared
  per-node network over node state + pod): a stand-in for latency, not for decisions.
* :class:`QNetworkPodScorer` scores in-process with such a network.
* :class:`PolicyPodScorer` plugs a placement heuristic of ``components.placement`` in as the
  extender's in-process pod scorer (the DQN's is :class:`scheduler_client.dqn_scorer.
  DQNPodScorer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.errors import MlschedError
from components.model_contracts import NODE_STATE_COLUMNS, POD_COLUMNS
from scheduler_client.api import PodRequest
from scheduler_client.dqn_scorer import cache_node_state, pod_spec
from scheduler_client.predictions import CacheState


def _input_scale(column: str) -> float:
    if column.endswith("_cores"):
        return 1 / 64
    if column.endswith("_bytes"):
        return 2**-38
    return 1 / 8 if "gpu" in column or column == "pod_count" else 1.0


class StandInQNetwork:
    """An untrained, seeded two-layer MLP shared over nodes: Q = MLP([node_state, pod]).

    The node state is the DQN's (``NODE_STATE_COLUMNS``), the pod ``POD_COLUMNS``; inputs are
    scaled (cores / 64, bytes / 256 GiB, GPUs and pods / 8) so the activations stay in range. It
    has the DQN's cost shape (one batched forward pass per pod), not its judgement.
    """

    def __init__(self, hidden: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        inputs = len(NODE_STATE_COLUMNS) + len(POD_COLUMNS)
        self.w1 = rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)).astype(np.float32)
        self._node_scale, self._pod_scale = (
            np.array([_input_scale(name) for name in columns], np.float32)
            for columns in (NODE_STATE_COLUMNS, POD_COLUMNS)
        )

    def forward(self, node_state: np.ndarray, pod: np.ndarray) -> np.ndarray:
        x = np.asarray(node_state, np.float32) * self._node_scale
        p = np.asarray(pod, np.float32).reshape(1, len(POD_COLUMNS)) * self._pod_scale
        joined = np.concatenate([x, np.repeat(p, len(x), axis=0)], axis=1)
        hidden = np.maximum(joined @ self.w1 + self.b1, 0)
        return (hidden @ self.w2).reshape(-1)


class QNetworkPodScorer:
    """In-process pod scorer over a network with ``forward(node_state, pod)`` (e.g.
    :class:`StandInQNetwork`), given the DQN's node state (``NODE_STATE_COLUMNS``)."""

    def __init__(self, network: Any):
        self.network = network

    def prepare(self, state: CacheState) -> np.ndarray:
        return cache_node_state(state).values.astype(np.float32)

    def q_values(self, pod: PodRequest, prepared: np.ndarray, positions: np.ndarray) -> np.ndarray:
        pod_vector = np.array([pod.cpu_cores, pod.memory_bytes, pod.gpus], np.float32)
        return self.network.forward(prepared[positions], pod_vector)


class PolicyPodScorer:
    """A ``components.placement`` heuristic as the pod scorer: ``prepare`` builds a ClusterState
    from the cache, ``q_values`` calls ``policy.score`` with the candidates as the feasible set.
    The DQN is refused: its inputs need a usage history this state lacks (use
    :class:`~scheduler_client.dqn_scorer.DQNPodScorer`)."""

    def __init__(self, policy: Any):
        if getattr(policy, "name", None) == "dqn":
            raise MlschedError("the DQN scores in-process through DQNPodScorer (--pod-scorer dqn)")
        self.policy = policy

    def prepare(self, state: CacheState) -> Any:
        from components.placement.policy import ClusterState

        cluster = ClusterState.empty(state.nodes, state.cpu_cores, state.memory_bytes, state.gpus)
        cluster.cpu_requested = state.cpu_requested_ratio * state.cpu_cores
        cluster.memory_requested = state.memory_requested_ratio * state.memory_bytes
        cluster.cpu_requested_nonzero = cluster.cpu_requested.copy()
        cluster.memory_requested_nonzero = cluster.memory_requested.copy()
        cpu_usage = np.nan_to_num(state.cpu_utilization, nan=0.0) * state.cpu_cores
        memory_usage = np.nan_to_num(state.memory_utilization, nan=0.0) * state.memory_bytes
        cluster.record_usage(cpu_usage, memory_usage, window=1)
        peak = state.cpu_peak[:, -1] if state.cpu_peak is not None else np.zeros(len(cpu_usage))
        cluster.forecast_cpu_p90 = np.where(np.isfinite(peak), peak, 0.0) * state.cpu_cores
        return cluster

    def q_values(self, pod: PodRequest, prepared: Any, positions: np.ndarray) -> np.ndarray:
        feasible = np.zeros(prepared.n_nodes, dtype=bool)
        feasible[positions] = True
        scores = self.policy.score(pod_spec(pod), prepared, feasible)
        return np.asarray(scores, dtype=np.float64)[positions]
