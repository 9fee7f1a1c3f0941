"""The trained DQN in the extender's process: its node state from the refreshed snapshot, and one
split forward pass per pod over the candidates.

The node state, the features and the pod's inputs all come from
:mod:`components.placement.dqn.inputs`, the module training and the KServe predictor use, so the
three see the same numbers for the same node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.placement.dqn.inputs import (
    POD_DEPENDENT_COLUMNS,
    NodeState,
    node_features,
    node_state_from_features,
    pod_dependent_features,
    pod_features,
)
from components.placement.policy import PodSpec
from scheduler_client.api import PodRequest
from scheduler_client.dqn_forward import PreparedNodes, SplitQNetwork
from scheduler_client.predictions import CacheState

_NO_POD = PodSpec("", 0.0, 0.0, 0)


def cache_node_state(state: CacheState) -> NodeState:
    """The policy's node state from one refresh: the snapshot's features on the inventory's
    allocatable, with the forecaster's P90 over its longest horizon as the P90 where a node has
    one (:func:`~components.placement.dqn.inputs.node_state_from_features`)."""
    snapshot = state.snapshot
    if snapshot is None:
        snapshot = pd.DataFrame(index=range(len(state.nodes)))
    p90 = [None if peak is None else peak[:, -1] for peak in (state.cpu_peak, state.memory_peak)]
    return node_state_from_features(snapshot, state.cpu_cores, state.memory_bytes, state.gpus, *p90)


def pod_spec(pod: PodRequest) -> PodSpec:
    return PodSpec(pod.key, pod.cpu_cores, float(pod.memory_bytes), pod.gpus)


@dataclass(frozen=True)
class PreparedDQN:
    """One refresh's node state and its pod-independent half through the input layers."""

    nodes: NodeState
    layers: PreparedNodes


class DQNPodScorer:
    """The trained DQN (``components.placement.dqn``) in-process.

    ``prepare`` (in the background, after each refresh) builds the node state
    (:func:`cache_node_state`) and runs the pod-independent node features of every node through
    the network's input layers; ``q_values`` adds the candidates' pod-dependent features and the
    pod's, and runs the rest (:class:`~scheduler_client.dqn_forward.SplitQNetwork`).
    """

    def __init__(self, network: Any):
        self.network = network.eval()
        self._split = SplitQNetwork(self.network, POD_DEPENDENT_COLUMNS)

    @classmethod
    def load(cls, path_or_uri: str | os.PathLike) -> DQNPodScorer:
        """From a DQN model folder or MLflow URI (``models:/placement-dqn@champion``)."""
        from components.placement.dqn.policy import load_dqn_network

        network, _ = load_dqn_network(path_or_uri)
        return cls(network)

    def prepare(self, state: CacheState) -> PreparedDQN:
        return self.prepare_nodes(cache_node_state(state))

    def prepare_nodes(self, nodes: NodeState) -> PreparedDQN:
        """The per-refresh half for a node state from any source."""
        return PreparedDQN(nodes, self._split.prepare(node_features(nodes, _NO_POD)))

    def q_values(self, pod: PodRequest, prepared: PreparedDQN, positions: np.ndarray) -> np.ndarray:
        spec = pod_spec(pod)
        dependent = pod_dependent_features(prepared.nodes.rows(positions), spec)
        return self._split.q_values(prepared.layers, positions, dependent, pod_features(spec))
