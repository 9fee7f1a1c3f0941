"""The simulator's live cluster state as the extender's node state, in the Feast online store.

:class:`NodeMetricsRecorder` keeps, per simulated step, the node-metrics row of every node (real
CPU and memory use over capacity, pods, requested ratios: the columns of
:mod:`components.contracts` and :data:`components.features.definitions.EXTRA_COLUMNS`).
:class:`SnapshotWriter` turns the recent window of those rows into node features with
:func:`components.features.engineering.latest_node_features` (the online feature path), joins the
anomaly feature group per node (:func:`components.features.anomaly_group.latest_anomaly_features`,
the Feast view the served detector reads) and writes them into the Feast online store the
extender reads (its ``--feast-repo``), stamped with the simulated time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.features import definitions as d
from components.features.anomaly_group import latest_anomaly_features
from components.features.anomaly_statistics import LOOKBACK_SECONDS as ANOMALY_LOOKBACK_SECONDS
from components.features.engineering import latest_node_features
from components.features.feast_store import write_online_features
from components.placement.policy import ClusterState

if TYPE_CHECKING:
    from feast import FeatureStore

MAX_OBSERVED_UTILIZATION = 1.0
"""A node cannot report more use than its capacity; the simulator's demand can exceed it."""


class NodeMetricsRecorder:
    """Per-step node-metrics rows of the simulated cluster, in memory."""

    def __init__(self, nodes: tuple[str, ...] | list[str]):
        self.nodes = np.asarray([str(n) for n in nodes], dtype=object)
        self._stamps: list[pd.Timestamp] = []
        self._rows: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._rows.clear()

    def record(
        self,
        at: pd.Timestamp,
        cpu_utilization: np.ndarray,
        memory_utilization: np.ndarray,
        state: ClusterState,
    ) -> None:
        """One step's rows: real use over capacity (clipped to what a node can report), pod
        count and requested ratios from ``state``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu_requested = np.where(
                state.cpu_capacity > 0, state.cpu_requested / state.cpu_capacity, 0.0
            )
            memory_requested = np.where(
                state.memory_capacity > 0, state.memory_requested / state.memory_capacity, 0.0
            )
        self._stamps.append(pd.Timestamp(at))
        self._rows.append(
            np.stack(
                [
                    np.clip(cpu_utilization, 0.0, MAX_OBSERVED_UTILIZATION),
                    np.clip(memory_utilization, 0.0, MAX_OBSERVED_UTILIZATION),
                    state.pod_count.astype(np.float64),
                    cpu_requested,
                    memory_requested,
                ]
            )
        )

    def frame(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The node-metrics table of the recorded steps after ``since`` (all when None)."""
        keep = [i for i, stamp in enumerate(self._stamps) if since is None or stamp > since]
        n = len(self.nodes)
        if not keep:
            return pd.DataFrame(
                {
                    TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
                    NODE: pd.Series(dtype=object),
                    **{name: pd.Series(dtype=np.float64) for name in _VALUE_COLUMNS},
                }
            )
        values = np.concatenate([self._rows[i] for i in keep], axis=1)
        stamps = pd.DatetimeIndex([self._stamps[i] for i in keep])
        frame = pd.DataFrame(
            {
                TIMESTAMP: stamps.repeat(n),
                NODE: np.tile(self.nodes, len(keep)),
            }
        )
        for i, name in enumerate(_VALUE_COLUMNS):
            frame[name] = values[i]
        return frame


_VALUE_COLUMNS = (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    d.POD_COUNT,
    d.CPU_REQUESTED_RATIO,
    d.MEMORY_REQUESTED_RATIO,
)


def snapshot_from_metrics(
    metrics: pd.DataFrame,
    at: pd.Timestamp,
    nodes: tuple[str, ...] | list[str],
    step_seconds: int,
    lookback_seconds: int = d.ONLINE_LOOKBACK_SECONDS,
    anomaly_lookback_seconds: int = ANOMALY_LOOKBACK_SECONDS,
) -> pd.DataFrame:
    """The node features and anomaly features at ``at`` (one row per node in ``nodes``,
    ``node`` a column; nodes without a recent sample get NaN features)."""
    index = pd.Index([str(n) for n in nodes], name=NODE)
    features = latest_node_features(metrics, at, step_seconds, lookback_seconds=lookback_seconds)
    features = features.set_index(NODE).reindex(index)
    anomaly = latest_anomaly_features(
        metrics, at, step_seconds, lookback_seconds=anomaly_lookback_seconds
    )
    anomaly = anomaly.drop(columns=TIMESTAMP).set_index(NODE).reindex(index)
    return features.join(anomaly).reset_index()


def empty_cluster_snapshot(
    nodes: tuple[str, ...] | list[str], at: pd.Timestamp, step_seconds: int
) -> pd.DataFrame:
    """The snapshot of an idle, empty cluster at ``at`` (the replay's starting state)."""
    n = len(nodes)
    metrics = pd.DataFrame(
        {
            TIMESTAMP: pd.DatetimeIndex([pd.Timestamp(at)] * n),
            NODE: [str(node) for node in nodes],
            **{name: np.zeros(n) for name in _VALUE_COLUMNS},
        }
    )
    return snapshot_from_metrics(metrics, pd.Timestamp(at), nodes, step_seconds)


class SnapshotWriter:
    """Writes the recorder's recent window into the Feast online store as the node state.

    Args:
        store: the applied Feast store the extender reads.
        recorder: the node-metrics rows so far.
        step_seconds: the simulator's step (the features' scrape interval).
        lookback_seconds: history handed to the node feature computation.
        anomaly_lookback_seconds: history handed to the anomaly feature computation.
    """

    def __init__(
        self,
        store: FeatureStore,
        recorder: NodeMetricsRecorder,
        step_seconds: int,
        lookback_seconds: int = d.ONLINE_LOOKBACK_SECONDS,
        anomaly_lookback_seconds: int = ANOMALY_LOOKBACK_SECONDS,
    ):
        self.store = store
        self.recorder = recorder
        self.step_seconds = int(step_seconds)
        self.lookback_seconds = int(lookback_seconds)
        self.anomaly_lookback_seconds = int(anomaly_lookback_seconds)
        self.writes = 0
        self.seconds: list[float] = []

    def publish(self, snapshot: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
        """Write ``snapshot`` (one row per node, ``node`` a column) as the state at ``at``."""
        began = time.perf_counter()
        stamped = snapshot.assign(**{TIMESTAMP: pd.Timestamp(at)})
        write_online_features(self.store, stamped)
        self.writes += 1
        self.seconds.append(time.perf_counter() - began)
        return stamped

    def write(self, at: pd.Timestamp) -> pd.DataFrame:
        """Compute the state at ``at`` from the recorded window and write it; returns it."""
        began = time.perf_counter()
        longest = max(self.lookback_seconds, self.anomaly_lookback_seconds)
        since = pd.Timestamp(at) - pd.Timedelta(seconds=longest)
        snapshot = snapshot_from_metrics(
            self.recorder.frame(since),
            pd.Timestamp(at),
            tuple(self.recorder.nodes),
            self.step_seconds,
            self.lookback_seconds,
            self.anomaly_lookback_seconds,
        )
        stamped = self.publish(snapshot, at)
        self.seconds[-1] = time.perf_counter() - began
        return stamped
