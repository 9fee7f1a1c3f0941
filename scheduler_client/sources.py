"""Node state snapshot sources, stand-in predictors, and the adapter for placement policies.

* :func:`feast_snapshot_source` reads the Feast online store (the production source);
  :func:`file_snapshot_source` re-reads a parquet snapshot file (tests, benchmarks).
* :class:`RecentUsagePredictor` is a statistical stand-in for the served models, not a model:
  P90 load from the node's recent mean, spread and trend, anomaly score from its z-scores. It
  lets the extender, its tests and its benchmark run before the KServe predictors exist.
* :class:`StandInQNetwork` is a fixed, seeded, untrained MLP with the DQN's shape (a shared
  per-node network over node state + pod): a stand-in for latency, not for decisions.
* :class:`PolicyPodScorer` plugs a placement heuristic of ``components.placement`` in as the
  extender's in-process pod scorer (the DQN's is :class:`scheduler_client.dqn_scorer.
  DQNPodScorer`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.errors import MlschedError
from components.model_contracts import NODE_STATE_COLUMNS, POD_COLUMNS
from scheduler_client.api import PodRequest
from scheduler_client.dqn_scorer import cache_node_state, pod_spec
from scheduler_client.predictions import CacheState, NodePredictions, SnapshotSource
from scheduler_client.remote import DEFAULT_HORIZONS_SECONDS

Z_P90 = 1.2816


def feast_snapshot_source(home: str | os.PathLike) -> SnapshotSource:
    """Snapshots from the Feast online store of ``feature_repo/`` applied in ``home`` (the folder
    of its registry and online store, e.g. ``mlsched features --feast-home``)."""
    from components.features.feast_store import open_feature_store, read_node_state_snapshot

    store = open_feature_store(home)
    return lambda nodes: read_node_state_snapshot(store, nodes)


def file_snapshot_source(path: str | os.PathLike) -> SnapshotSource:
    """Snapshots from a parquet file (``node`` index or column, feature columns), re-read when
    the file changes."""
    target = Path(path)
    cache: dict[str, Any] = {}

    def read(nodes: Sequence[str]) -> pd.DataFrame:
        stamp = target.stat().st_mtime_ns
        if cache.get("stamp") != stamp:
            frame = pd.read_parquet(target)
            if "node" in frame.columns:
                frame = frame.set_index("node")
            frame.index = frame.index.astype(str)
            cache.update(stamp=stamp, frame=frame)
        return cache["frame"].reindex(pd.Index(list(nodes), name="node"))

    if not target.is_file():
        raise MlschedError(f"{target}: no snapshot file")
    return read


def _get(snapshot: pd.DataFrame, name: str, fallback: np.ndarray | None = None) -> np.ndarray:
    if name in snapshot.columns:
        values = snapshot[name].to_numpy(dtype=np.float64, na_value=np.nan)
        if fallback is not None:
            values = np.where(np.isfinite(values), values, fallback)
        return values
    return np.full(len(snapshot), np.nan) if fallback is None else fallback


class RecentUsagePredictor:
    """Stand-in predictor from recent usage (no model).

    Per resource, ``P90(h) = ewma_5m + max(slope_1h, 0) x h + 1.2816 x std_1h`` (a normal P90
    around the recent level with its upward trend), clipped to [0, 1.5]; the anomaly score is
    ``max(|zscore_1h|) / z_alarm`` over CPU and memory, flagged at 1.
    """

    def __init__(
        self, horizons_seconds: Sequence[float] = DEFAULT_HORIZONS_SECONDS, z_alarm: float = 6.0
    ):
        self.horizons_seconds = tuple(float(h) for h in horizons_seconds)
        self.z_alarm = z_alarm

    def _p90(self, snapshot: pd.DataFrame, resource: str) -> np.ndarray:
        current = _get(snapshot, f"{resource}_utilization")
        level = _get(snapshot, f"{resource}_ewma_5m", current)
        spread = np.nan_to_num(_get(snapshot, f"{resource}_std_1h"), nan=0.0)
        slope = np.clip(np.nan_to_num(_get(snapshot, f"{resource}_slope_1h"), nan=0.0), 0, None)
        hours = np.asarray(self.horizons_seconds) / 3600.0
        p90 = level[:, None] + slope[:, None] * hours[None, :] + Z_P90 * spread[:, None]
        return np.clip(p90, 0.0, 1.5)

    def predict(self, snapshot: pd.DataFrame) -> NodePredictions:
        z = np.fmax(
            np.abs(_get(snapshot, "cpu_zscore_1h")), np.abs(_get(snapshot, "memory_zscore_1h"))
        )
        score = np.nan_to_num(z, nan=0.0) / self.z_alarm
        return NodePredictions(
            nodes=tuple(str(node) for node in snapshot.index),
            horizons_seconds=self.horizons_seconds,
            cpu_p90=self._p90(snapshot, "cpu"),
            memory_p90=self._p90(snapshot, "memory"),
            anomaly_score=score,
            anomalous=score >= 1.0,
        )


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


def metrics_snapshot(metrics: pd.DataFrame, at: pd.Timestamp | str) -> pd.DataFrame:
    """The node state snapshot at ``at`` computed from node metrics (the online feature path,
    :func:`components.features.engineering.latest_node_features`), indexed by node."""
    from components.features.engineering import latest_node_features

    return latest_node_features(metrics, at).set_index("node")


def synthetic_node_state(
    nodes: int, *, days: float = 1, step_seconds: int = 300, seed: int = 0, end_epoch: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic cluster's node state, in memory: (snapshot at the history's end, nodes
    table). For tests, benchmarks and demos that need a real-shaped snapshot of many nodes."""
    from components.generate.cluster import make_nodes, nodes_table
    from components.generate.history import (
        HistoryConfig,
        generate_node,
        latent_factors,
        node_metrics_frame,
    )

    config = HistoryConfig(
        nodes=nodes, days=days, step_seconds=step_seconds, seed=seed, end_epoch=end_epoch
    )
    made = make_nodes(config.nodes, config.seed)
    factors = latent_factors(config)
    metrics = node_metrics_frame(config, [generate_node(config, node, factors) for node in made])
    return metrics_snapshot(metrics, metrics["timestamp"].max()), nodes_table(made)
