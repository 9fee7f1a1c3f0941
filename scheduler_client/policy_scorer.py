"""Any registered placement policy as the extender's pod scorer: the DQN or a heuristic champion.

The placement model behind ``--placement-model`` (``models:/placement-dqn@champion`` or a folder)
is a DQN (``config.json`` + ``weights.pt``: :class:`~scheduler_client.dqn_scorer.DQNPodScorer`)
or a heuristic the gate chose (``policy.json``: :class:`HeuristicPodScorer`). A heuristic scores
the same node state record the DQN reads, built once per refresh from the node features and the
forecaster's P90 (:func:`~scheduler_client.dqn_scorer.cache_node_state`), with the pods in flight
added per request, through its own scoring function in ``components/placement/baselines.py``
(:func:`~components.placement.policy_spec.score_node_state`): the rule the gate evaluated.
"""

from __future__ import annotations

import os

import numpy as np

from components.placement.dqn.inputs import NodeState
from components.placement.policy_spec import PolicySpec, load_placement_model, score_node_state
from scheduler_client.api import PodRequest
from scheduler_client.dqn_scorer import DQNPodScorer, cache_node_state, pod_spec, with_inflight
from scheduler_client.ledger import InflightLoad
from scheduler_client.predictions import CacheState


class HeuristicPodScorer:
    """A registered heuristic (:class:`~components.placement.policy_spec.PolicySpec`) in-process;
    its scores stand where the DQN's Q-values would (min-max scaled over the candidates)."""

    counts_inflight = True

    def __init__(self, spec: PolicySpec):
        self.spec = spec
        self.policy = spec.build()

    @property
    def name(self) -> str:
        return self.spec.policy

    def prepare(self, state: CacheState) -> NodeState:
        return cache_node_state(state)

    def q_values(
        self,
        pod: PodRequest,
        prepared: NodeState,
        positions: np.ndarray,
        inflight: InflightLoad | None = None,
    ) -> np.ndarray:
        """The heuristic's scores of the candidates at ``positions``, the pods in flight added
        to their pending and requested columns."""
        nodes = prepared.rows(positions)
        if inflight is not None:
            nodes = with_inflight(nodes, inflight)
        return score_node_state(self.policy, nodes, pod_spec(pod))


def load_pod_scorer(path_or_uri: str | os.PathLike) -> DQNPodScorer | HeuristicPodScorer:
    """The scorer of the placement model at ``path_or_uri`` (folder or MLflow URI), whichever
    kind it is."""
    model = load_placement_model(path_or_uri)
    if isinstance(model, PolicySpec):
        return HeuristicPodScorer(model)
    network, _ = model
    return DQNPodScorer(network)
