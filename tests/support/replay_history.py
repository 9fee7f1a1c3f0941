"""The node history a replay starts from, for the replay tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

from components.contracts import write_node_metrics
from components.features.cli import build_features
from components.generate.cluster import make_nodes
from components.generate.history import (
    HistoryConfig,
    generate_node,
    latent_factors,
    node_metrics_frame,
)


def history_in_feast(folder: Path, nodes: int, end_epoch: int) -> Path:
    """Half a day of the generated nodes' history (nodes of ``make_nodes(nodes, seed=1)``) up to
    ``end_epoch``, applied and materialised into the Feast store ``folder / "feast"``."""
    history = HistoryConfig(nodes=nodes, days=0.5, step_seconds=60, seed=1, end_epoch=end_epoch)
    factors = latent_factors(history)
    made = [generate_node(history, node, factors) for node in make_nodes(nodes, seed=1)]
    write_node_metrics(node_metrics_frame(history, made), folder / "metrics.parquet")
    build_features(
        folder / "metrics.parquet", folder / "features.parquet", folder / "feast", anomaly=True
    )
    return folder / "feast"
