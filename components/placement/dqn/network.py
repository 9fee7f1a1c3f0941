"""The permutation-invariant node-scoring network: one Q-value per node, masked to feasible ones.

Every node is scored by the same MLP from its own features, the pod's features and a cluster
context (mean and max over nodes of a shared node embedding), so the network serves clusters of
any size and reordering the nodes reorders the Q-values the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

MASKED_Q = -1.0e9


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the scoring network (stored beside its weights)."""

    node_features: int
    pod_features: int
    hidden: int = 64
    embedding: int = 32

    def to_dict(self) -> dict[str, int]:
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
        """Masked Q-values, shape (batch, n)."""
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
