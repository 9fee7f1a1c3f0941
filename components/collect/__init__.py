"""Collection of node history from Prometheus into the node-metrics contract.

Public API (imported on first use, so ``import components.collect.cli`` stays light)::

    collect_node_metrics(prometheus, start, end, step_seconds, output, config) -> CollectReport
    load_collect_config(path=None) -> CollectConfig      # None: the shipped queries.yaml
    FetchSettings(max_points, workers, attempts, backoff_seconds, timeout_seconds, compress)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.collect.collect import CollectReport, collect_node_metrics, missing_ranges
    from components.collect.config import (
        CollectConfig,
        QuerySpec,
        load_collect_config,
        parse_collect_config,
    )
    from components.collect.prometheus_range import FetchSettings, chunk_range, node_name

_EXPORTS = {
    "CollectReport": "collect",
    "collect_node_metrics": "collect",
    "fetch_node_metrics": "collect",
    "missing_ranges": "collect",
    "CollectConfig": "config",
    "QuerySpec": "config",
    "load_collect_config": "config",
    "parse_collect_config": "config",
    "FetchSettings": "prometheus_range",
    "chunk_range": "prometheus_range",
    "node_name": "prometheus_range",
}

__all__ = [
    "CollectConfig",
    "CollectReport",
    "FetchSettings",
    "QuerySpec",
    "chunk_range",
    "collect_node_metrics",
    "load_collect_config",
    "missing_ranges",
    "node_name",
    "parse_collect_config",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
