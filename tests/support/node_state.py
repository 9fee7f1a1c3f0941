"""A real-shaped node state snapshot of many nodes, in memory, from the synthetic generator."""

from __future__ import annotations

import pandas as pd

from components.features.engineering import latest_node_features
from components.generate.cluster import make_nodes, nodes_table
from components.generate.history import (
    HistoryConfig,
    generate_node,
    latent_factors,
    node_metrics_frame,
)


def synthetic_node_state(
    nodes: int, *, days: float = 1, step_seconds: int = 300, seed: int = 0, end_epoch: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(The node state snapshot at the history's end, indexed by node, as the online feature
    path computes it; the nodes table) of the synthetic cluster."""
    config = HistoryConfig(
        nodes=nodes, days=days, step_seconds=step_seconds, seed=seed, end_epoch=end_epoch
    )
    made = make_nodes(config.nodes, config.seed)
    factors = latent_factors(config)
    metrics = node_metrics_frame(config, [generate_node(config, node, factors) for node in made])
    snapshot = latest_node_features(metrics, metrics["timestamp"].max()).set_index("node")
    return snapshot, nodes_table(made)
