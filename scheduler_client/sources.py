"""Node state snapshot sources, stand-in predictors, and the adapter for placement policies.

* :func:`feast_snapshot_source` reads the Feast online store (the production source);
  :func:`file_snapshot_source` re-reads a parquet snapshot file (tests, benchmarks, replays).
* :class:`RecentUsagePredictor` is a statistical stand-in for the served models, not a model:
  P90 load from the node's recent mean, spread and trend, anomaly score from its z-scores. It
  lets the extender, its tests and its benchmark run before the KServe predictors exist.
* :class:`StandInQNetwork` is a fixed, seeded, untrained MLP with the DQN's shape (a shared
  per-node network over node state + pod): a stand-in for latency, not for decisions.
* :class:`PolicyPodScorer` plugs any placement policy of ``components.placement`` (the DQN
  included) in as the extender's in-process pod scorer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.errors import MlschedError
from scheduler_client.api import PodRequest
from scheduler_client.dqn_forward import PreparedNodes, SplitQNetwork
from scheduler_client.predictions import CacheState, NodePredictions, SnapshotSource
from scheduler_client.remote import DEFAULT_HORIZONS_SECONDS, node_state_matrix

Z_P90 = 1.2816


def feast_snapshot_source(repo_dir: str | os.PathLike) -> SnapshotSource:
    """Snapshots from the Feast online store of a rendered feature repository."""
    from components.features.feast_store import open_feature_store, read_node_state_snapshot

    store = open_feature_store(repo_dir)
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


class StandInQNetwork:
    """An untrained, seeded two-layer MLP shared over nodes: Q = MLP([node_state, pod]).

    Inputs are scaled (cores / 64, bytes / 256 GiB) so the activations stay in range. It has
    the DQN's cost shape (one batched forward pass per pod), not its judgement.
    """

    def __init__(self, hidden: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        inputs = 8 + 3
        self.w1 = rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)).astype(np.float32)
        self._scale = np.array(
            [1 / 64, 2**-38, 1 / 8, 1 / 64, 2**-38, 1 / 64, 2**-38, 1 / 64], np.float32
        )

    def forward(self, node_state: np.ndarray, pod: np.ndarray) -> np.ndarray:
        x = np.asarray(node_state, np.float32) * self._scale
        p = np.asarray(pod, np.float32).reshape(1, 3) * self._scale[[0, 1, 2]]
        joined = np.concatenate([x, np.repeat(p, len(x), axis=0)], axis=1)
        hidden = np.maximum(joined @ self.w1 + self.b1, 0)
        return (hidden @ self.w2).reshape(-1)


class QNetworkPodScorer:
    """In-process pod scorer over a network with ``forward(node_state, pod)`` (e.g.
    :class:`StandInQNetwork`)."""

    def __init__(self, network: Any):
        self.network = network

    def prepare(self, state: CacheState) -> np.ndarray:
        return node_state_matrix(state)

    def q_values(self, pod: PodRequest, prepared: np.ndarray, positions: np.ndarray) -> np.ndarray:
        pod_vector = np.array([pod.cpu_cores, pod.memory_bytes, pod.gpus], np.float32)
        return self.network.forward(prepared[positions], pod_vector)


class PolicyPodScorer:
    """Any ``components.placement`` policy (``make_policy("dqn", ...)`` included) as the pod
    scorer: ``prepare`` builds a ClusterState from the cache, ``q_values`` calls
    ``policy.score`` with the candidates as the feasible set."""

    def __init__(self, policy: Any):
        self.policy = policy

    def prepare(self, state: CacheState) -> Any:
        from components.placement.policy import ClusterState

        cluster = ClusterState.empty(state.nodes, state.cpu_cores, state.memory_bytes, state.gpus)
        cluster.cpu_requested = state.cpu_requested_ratio * state.cpu_cores
        cluster.memory_requested = state.memory_requested_ratio * state.memory_bytes
        cluster.cpu_requested_nonzero = cluster.cpu_requested.copy()
        cluster.memory_requested_nonzero = cluster.memory_requested.copy()
        usage = node_state_matrix(state).astype(np.float64)
        cluster.record_usage(usage[:, 5], usage[:, 6], window=1)
        cluster.forecast_cpu_p90 = usage[:, 7]
        return cluster

    def q_values(self, pod: PodRequest, prepared: Any, positions: np.ndarray) -> np.ndarray:
        from components.placement.policy import PodSpec

        spec = PodSpec(pod.key, pod.cpu_cores, float(pod.memory_bytes), pod.gpus)
        feasible = np.zeros(prepared.n_nodes, dtype=bool)
        feasible[positions] = True
        return np.asarray(self.policy.score(spec, prepared, feasible), dtype=np.float64)[positions]


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


def _feature(state: CacheState, name: str, fallback: np.ndarray) -> np.ndarray:
    if state.snapshot is None or name not in state.snapshot.columns:
        return fallback
    values = state.snapshot[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(values), values, fallback)


@dataclass(frozen=True)
class DQNNodeFeatures:
    """The DQN's node features of every node, split for the scheduling path: ``base`` holds the
    columns that do not depend on the pod (computed once per refresh), the other arrays what the
    pod-dependent columns (the DQN's ``POD_DEPENDENT_COLUMNS``) are computed from.

    :meth:`for_pod` equals ``components.placement.dqn.features.node_features`` on the rows.
    """

    snapshot: Any
    base: np.ndarray
    cpu_capacity: np.ndarray
    memory_capacity: np.ndarray
    cpu_before: np.ndarray
    cpu_long_before: np.ndarray
    memory_before: np.ndarray
    cpu_requested: np.ndarray
    memory_requested: np.ndarray

    @classmethod
    def build(cls, snapshot: Any) -> DQNNodeFeatures:
        from components.placement.dqn.features import node_features
        from components.placement.policy import PodSpec

        s = snapshot
        cpu_cap = np.asarray(s.cpu_capacity, dtype=np.float64)
        memory_cap = np.asarray(s.memory_capacity, dtype=np.float64)
        pending_cpu = s.cpu_pending_cores / cpu_cap
        pending_memory = s.memory_pending_bytes / memory_cap
        return cls(
            snapshot=snapshot,
            base=node_features(snapshot, PodSpec("", 0.0, 0.0, 0)),
            cpu_capacity=cpu_cap,
            memory_capacity=memory_cap,
            cpu_before=np.asarray(s.cpu_util_p90 + pending_cpu, dtype=np.float64),
            cpu_long_before=np.asarray(s.cpu_util_long_max + pending_cpu, dtype=np.float64),
            memory_before=np.asarray(s.memory_util_p90 + pending_memory, dtype=np.float64),
            cpu_requested=np.asarray(s.cpu_requested, dtype=np.float64),
            memory_requested=np.asarray(s.memory_requested, dtype=np.float64),
        )

    def for_pod(self, pod: Any, rows: np.ndarray) -> np.ndarray:
        """The node features of ``rows`` for placing ``pod`` (a PodSpec): (len(rows), F)
        float32, the same arithmetic as ``node_features`` on the pod-dependent columns."""
        from components.placement.dqn.features import POD_DEPENDENT_COLUMNS

        features = self.base[rows]
        features[:, POD_DEPENDENT_COLUMNS] = self.pod_dependent(pod, rows)
        return features

    def pod_dependent(self, pod: Any, rows: np.ndarray) -> np.ndarray:
        """The pod-dependent columns of ``rows`` for ``pod``: (len(rows), pod-dependent columns)."""
        from components.placement.dqn.features import FEATURE_CLIP, pod_dependent_features

        columns = pod_dependent_features(
            self.cpu_capacity[rows],
            self.memory_capacity[rows],
            self.cpu_before[rows],
            self.cpu_long_before[rows],
            self.memory_before[rows],
            self.cpu_requested[rows],
            self.memory_requested[rows],
            pod,
        )
        return np.clip(np.column_stack(columns), -FEATURE_CLIP, FEATURE_CLIP)


class DQNPodScorer:
    """The trained DQN (``components.placement.dqn``) in-process: one batched forward pass per
    pod over the candidates.

    ``prepare`` (in the background) builds the DQN's ``NodeSnapshot`` from the node state
    snapshot and the forecaster: utilisation now (``*_utilization``), mean/std/max over 1 h,
    long-window mean/max over 6 h (the DQN's long window), the forecaster's P90 over the longest
    horizon as the P90 (the snapshot's 1 h P95 where a node has no forecast), requested from the
    requested ratios, pods from ``pod_count``, and the pod-independent node features of every
    node (:class:`DQNNodeFeatures`). ``q_values`` completes the candidates' features for the pod
    and runs the network.
    """

    def __init__(self, network: Any):
        from components.placement.dqn.features import POD_DEPENDENT_COLUMNS

        self.network = network.eval()
        self._split = SplitQNetwork(self.network, POD_DEPENDENT_COLUMNS)
        self._features: tuple[DQNNodeFeatures, PreparedNodes] | None = None

    @classmethod
    def load(cls, path_or_uri: str | os.PathLike) -> DQNPodScorer:
        """From a DQN model folder or MLflow URI (``models:/placement-dqn@champion``)."""
        from components.placement.dqn.policy import load_dqn_network

        network, _ = load_dqn_network(path_or_uri)
        return cls(network)

    def prepare(self, state: CacheState) -> Any:
        from components.placement.dqn.features import NodeSnapshot

        n = len(state.nodes)
        zeros = np.zeros(n)
        cpu_now = np.nan_to_num(state.cpu_utilization, nan=0.0)
        memory_now = np.nan_to_num(state.memory_utilization, nan=0.0)

        def forecast(peak: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
            if peak is None:
                return fallback
            last = peak[:, -1]
            return np.where(np.isfinite(last), last, fallback)

        cpu_max_1h = _feature(state, "cpu_max_1h", cpu_now)
        snapshot = NodeSnapshot(
            cpu_capacity=state.cpu_cores,
            memory_capacity=state.memory_bytes,
            gpu_capacity=state.gpus,
            gpus_requested=np.zeros(n, dtype=np.int64),
            cpu_requested=state.cpu_requested_ratio * state.cpu_cores,
            memory_requested=state.memory_requested_ratio * state.memory_bytes,
            pod_count=_feature(state, "pod_count", zeros),
            cpu_util_now=cpu_now,
            cpu_util_mean=_feature(state, "cpu_mean_1h", cpu_now),
            cpu_util_std=_feature(state, "cpu_std_1h", zeros),
            cpu_util_p90=forecast(state.cpu_peak, _feature(state, "cpu_p95_1h", cpu_now)),
            cpu_util_max=cpu_max_1h,
            cpu_util_long_mean=_feature(state, "cpu_mean_6h", cpu_now),
            cpu_util_long_max=_feature(state, "cpu_max_6h", cpu_max_1h),
            memory_util_now=memory_now,
            memory_util_p90=forecast(
                state.memory_peak, _feature(state, "memory_p95_1h", memory_now)
            ),
            memory_util_long_max=_feature(state, "memory_max_6h", memory_now),
            cpu_pending_cores=zeros,
            memory_pending_bytes=zeros,
        )
        self._features = self._build(snapshot)
        return snapshot

    def _build(self, snapshot: Any) -> tuple[DQNNodeFeatures, PreparedNodes]:
        features = DQNNodeFeatures.build(snapshot)
        return features, self._split.prepare(features.base)

    def _node_features(self, prepared: Any) -> tuple[DQNNodeFeatures, PreparedNodes]:
        built = self._features
        if built is None or built[0].snapshot is not prepared:
            built = self._build(prepared)
            self._features = built
        return built

    def q_values(self, pod: PodRequest, prepared: Any, positions: np.ndarray) -> np.ndarray:
        from components.placement.dqn.features import pod_features
        from components.placement.policy import PodSpec

        spec = PodSpec(pod.key, pod.cpu_cores, float(pod.memory_bytes), pod.gpus)
        features, nodes = self._node_features(prepared)
        return self._split.q_values(
            nodes, positions, features.pod_dependent(spec, positions), pod_features(spec)
        )
