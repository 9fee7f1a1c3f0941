"""The permutation-invariant node-scoring network: one Q-value per node, masked to feasible ones.

Every node is scored by the same MLP from its own features, the pod's features and a cluster
context (mean and max over nodes of a shared node embedding), so the network serves clusters of
any size and reordering the nodes reorders the Q-values the same way.

The policy's score is ``prior_weight x prior + learned_weight x Q``: ``Q`` is the learned value
(what training fits), ``prior`` a greedy-predictive-style heuristic score computed from two of
the node features (:func:`~components.placement.dqn.inputs.heuristic_prior`). With the prior, the
learned part is a correction on top of a strong heuristic rather than a policy from scratch;
``prior_weight = 0, learned_weight = 1`` is the plain DQN. Both weights are stored beside the
weights, so every inference path scores the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from components.placement.dqn.inputs import PRIOR_COLUMNS, heuristic_prior

MASKED_Q = -1.0e9


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the scoring network (stored beside its weights)."""

    node_features: int
    pod_features: int
    hidden: int = 64
    embedding: int = 32
    prior_weight: float = 0.0
    learned_weight: float = 1.0

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class NodeScoringNetwork(nn.Module):
    """Q(s, node) for every node from (node features, pod features, cluster context).

    Shapes: ``nodes`` (batch, n, node_features), ``pod`` (batch, pod_features), ``valid`` and
    ``feasible`` (batch, n) booleans. ``valid`` marks real nodes (batches pad clusters of different
    sizes); the context pools over valid nodes only. Infeasible or padded nodes get
    :data:`MASKED_Q`.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Sequential(
            nn.Linear(config.node_features, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.embedding),
            nn.ReLU(),
        )
        joined = config.node_features + config.pod_features + 2 * config.embedding
        self.score = nn.Sequential(
            nn.Linear(joined, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, 1),
        )

    def context(self, nodes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean and max of the node embeddings over valid nodes: (batch, 2 * embedding)."""
        embedded = self.embed(nodes)
        weights = valid.unsqueeze(-1).to(embedded.dtype)
        count = weights.sum(dim=1).clamp(min=1.0)
        mean = (embedded * weights).sum(dim=1) / count
        maximum = embedded.masked_fill(~valid.unsqueeze(-1), 0.0).amax(dim=1)
        return torch.cat([mean, maximum], dim=-1)

    def forward(
        self,
        nodes: torch.Tensor,
        pod: torch.Tensor,
        feasible: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked policy scores (the served Q-values), shape (batch, n): the learned values mixed
        with the heuristic prior by the config's weights."""
        learned = self.learned(nodes, pod, feasible, valid)
        config = self.config
        if config.prior_weight == 0.0 and config.learned_weight == 1.0:
            return learned
        cpu, memory = PRIOR_COLUMNS
        prior = heuristic_prior(nodes[..., cpu], nodes[..., memory], maximum=torch.maximum)
        mixed = config.prior_weight * prior + config.learned_weight * learned
        return mixed.masked_fill(learned == MASKED_Q, MASKED_Q)

    def learned(
        self,
        nodes: torch.Tensor,
        pod: torch.Tensor,
        feasible: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked learned Q-values (the part training fits), shape (batch, n)."""
        if valid is None:
            valid = torch.ones(nodes.shape[:2], dtype=torch.bool, device=nodes.device)
        n = nodes.shape[1]
        context = self.context(nodes, valid)
        joined = torch.cat(
            [
                nodes,
                pod.unsqueeze(1).expand(-1, n, -1),
                context.unsqueeze(1).expand(-1, n, -1),
            ],
            dim=-1,
        )
        q = self.score(joined).squeeze(-1)
        return q.masked_fill(~(feasible & valid), MASKED_Q)


def with_weights(
    network: NodeScoringNetwork, prior_weight: float, learned_weight: float
) -> NodeScoringNetwork:
    """A copy of ``network`` (same learned weights) scoring with other mixing weights."""
    config = replace(network.config, prior_weight=prior_weight, learned_weight=learned_weight)
    mixed = NodeScoringNetwork(config)
    mixed.load_state_dict(network.state_dict())
    return mixed.train(network.training)
