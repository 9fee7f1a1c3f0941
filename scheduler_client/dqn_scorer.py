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

from components.model_contracts import NODE_STATE_COLUMNS
from components.placement.dqn.inputs import (
    N_NODE_FEATURES,
    NODE_FEATURE_NAMES,
    NodeState,
    node_features,
    node_state_from_features,
    pod_features,
)
from components.placement.policy import PodSpec
from scheduler_client.api import PodRequest
from scheduler_client.dqn_forward import PreparedNodes, SplitQNetwork
from scheduler_client.ledger import InflightLoad
from scheduler_client.predictions import CacheState

_NO_POD = PodSpec("", 0.0, 0.0, 0)
PER_REQUEST_COLUMNS = slice(NODE_FEATURE_NAMES.index("cpu_pending_ratio"), N_NODE_FEATURES)
"""The node-feature columns computed per request: from the pending and requested ratios on,
everything the pods in flight move (GPUs free, the pod count) and the pod-dependent features."""
_INFLIGHT_COLUMNS = {
    NODE_STATE_COLUMNS.index(column): field
    for column, field in (
        ("cpu_pending_cores", "cpu_cores"),
        ("memory_pending_bytes", "memory_bytes"),
        ("cpu_requested_cores", "cpu_request_cores"),
        ("memory_requested_bytes", "memory_request_bytes"),
        ("gpus_requested", "gpus"),
        ("cpu_pending_use_cores", "cpu_use_guess"),
    )
}

_POD_COUNT_COLUMN = NODE_STATE_COLUMNS.index("pod_count")


def cache_node_state(state: CacheState) -> NodeState:
    """The policy's node state from one refresh: the snapshot's features on the inventory's
    allocatable, with the forecaster's P90 over its longest horizon as the P90 where a node has
    one (:func:`~components.placement.dqn.inputs.node_state_from_features`)."""
    snapshot = state.snapshot
    if snapshot is None:
        snapshot = pd.DataFrame(index=range(len(state.nodes)))
    p90 = [None if peak is None else peak[:, -1] for peak in (state.cpu_peak, state.memory_peak)]
    return node_state_from_features(snapshot, state.cpu_cores, state.memory_bytes, state.gpus, *p90)


def with_inflight(nodes: NodeState, inflight: InflightLoad) -> NodeState:
    """The record with the pods in flight as pending (their estimated use), requested (GPUs
    too) and counted on their nodes, as the simulator's state has its just-placed pods in
    training."""
    values = nodes.values.copy()
    for column, field in _INFLIGHT_COLUMNS.items():
        added = getattr(inflight, field)
        if added is not None:
            values[:, column] += added
    if inflight.pods is not None:
        values[:, _POD_COUNT_COLUMN] += inflight.pods
    return NodeState(values)


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

    counts_inflight = True
    name = "dqn"

    def __init__(self, network: Any):
        self.network = network.eval()
        self._split = SplitQNetwork(self.network, PER_REQUEST_COLUMNS)

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

    def q_values(
        self,
        pod: PodRequest,
        prepared: PreparedDQN,
        positions: np.ndarray,
        inflight: InflightLoad | None = None,
    ) -> np.ndarray:
        """Q-values of the candidates at ``positions``; ``inflight`` (aligned on them) adds the
        pods in flight to their pending and requested columns."""
        spec = pod_spec(pod)
        nodes = prepared.nodes.rows(positions)
        if inflight is not None:
            nodes = with_inflight(nodes, inflight)
        per_request = node_features(nodes, spec)[:, PER_REQUEST_COLUMNS]
        return self._split.q_values(prepared.layers, positions, per_request, pod_features(spec))
