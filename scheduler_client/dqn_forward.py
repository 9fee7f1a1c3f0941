"""The DQN's forward pass for one pod on the scheduling path, in numpy, with its pod-independent
half computed once per refresh.

:class:`~components.placement.dqn.network.NodeScoringNetwork` scores every candidate from its
node features, the pod's features and a context pooled over the candidates' embeddings. Its two
input layers (``embed.0`` and ``score.0``) are linear in the node features, and most node
features do not depend on the pod: :meth:`SplitQNetwork.prepare` multiplies those columns once
per refresh, and :meth:`SplitQNetwork.q_values` adds only the pod-dependent columns, the pod and
the context, then runs the remaining small layers, and mixes in the heuristic prior with the
network's weights (``prior_weight``, ``learned_weight``). The result equals the torch forward pass
with every candidate valid and feasible, to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from components.placement.dqn.inputs import PRIOR_COLUMNS, heuristic_prior


@dataclass(frozen=True)
class PreparedNodes:
    """The pod-independent part of both input layers for every node: (nodes, hidden) each."""

    embed: np.ndarray
    score: np.ndarray


class SplitQNetwork:
    """The weights of a ``NodeScoringNetwork`` as float32 arrays, split by input column.

    Args:
        network: the trained torch module (``embed`` and ``score`` sequentials of linear and
            ReLU layers).
        pod_columns: the node-feature columns that depend on the pod.
    """

    def __init__(self, network: Any, pod_columns: slice):
        weights = {
            name: value.detach().cpu().numpy().astype(np.float32)
            for name, value in network.state_dict().items()
        }
        n_node = network.config.node_features
        n_pod = network.config.pod_features
        static = np.ones(n_node, dtype=bool)
        static[pod_columns] = False
        self._static = static
        embed_in = weights["embed.0.weight"].T
        score_in = weights["score.0.weight"].T
        self.embed_static = np.ascontiguousarray(embed_in[static])
        self.embed_pod_columns = np.ascontiguousarray(embed_in[pod_columns])
        self.embed_bias = weights["embed.0.bias"]
        self.embed_out = np.ascontiguousarray(weights["embed.2.weight"].T)
        self.embed_out_bias = weights["embed.2.bias"]
        self.score_static = np.ascontiguousarray(score_in[:n_node][static])
        self.score_pod_columns = np.ascontiguousarray(score_in[:n_node][pod_columns])
        self.score_pod = np.ascontiguousarray(score_in[n_node : n_node + n_pod])
        self.score_context = np.ascontiguousarray(score_in[n_node + n_pod :])
        self.score_bias = weights["score.0.bias"]
        self.hidden = np.ascontiguousarray(weights["score.2.weight"].T)
        self.hidden_bias = weights["score.2.bias"]
        self.out = np.ascontiguousarray(weights["score.4.weight"].T)
        self.out_bias = weights["score.4.bias"]
        self.prior_weight = np.float32(getattr(network.config, "prior_weight", 0.0))
        self.learned_weight = np.float32(getattr(network.config, "learned_weight", 1.0))
        self._prior = [column - pod_columns.start for column in PRIOR_COLUMNS]
        if self.prior_weight and not all(
            0 <= c < pod_columns.stop - pod_columns.start for c in self._prior
        ):
            raise ValueError("the heuristic prior's columns must be among the per-pod columns")

    def prepare(self, node_features: np.ndarray) -> PreparedNodes:
        """The pod-independent columns of every node's features through both input layers."""
        static = np.asarray(node_features, dtype=np.float32)[:, self._static]
        return PreparedNodes(
            embed=static @ self.embed_static + self.embed_bias,
            score=static @ self.score_static + self.score_bias,
        )

    def q_values(
        self,
        prepared: PreparedNodes,
        rows: np.ndarray,
        pod_dependent: np.ndarray,
        pod_features: np.ndarray,
    ) -> np.ndarray:
        """Q-values of the candidate ``rows`` for one pod: (len(rows),) float32.

        Args:
            prepared: :meth:`prepare` of all nodes' features.
            rows: the candidates' positions in those features.
            pod_dependent: the candidates' pod-dependent columns, (len(rows), columns).
            pod_features: the pod's features, (pod_features,).
        """
        dependent = np.asarray(pod_dependent, dtype=np.float32)
        embedded = np.maximum(prepared.embed[rows] + dependent @ self.embed_pod_columns, 0.0)
        embedded = np.maximum(embedded @ self.embed_out + self.embed_out_bias, 0.0)
        context = np.concatenate([embedded.mean(axis=0), embedded.max(axis=0)])
        shared = np.asarray(pod_features, dtype=np.float32) @ self.score_pod
        shared = shared + context @ self.score_context
        hidden = np.maximum(prepared.score[rows] + dependent @ self.score_pod_columns + shared, 0.0)
        hidden = np.maximum(hidden @ self.hidden + self.hidden_bias, 0.0)
        learned = (hidden @ self.out + self.out_bias).reshape(-1)
        if self.prior_weight == 0 and self.learned_weight == 1:
            return learned
        prior = heuristic_prior(dependent[:, self._prior[0]], dependent[:, self._prior[1]])
        return self.prior_weight * prior + self.learned_weight * learned
