"""Node predictions, refreshed in the background in batch, read by the scheduling path.

Every ``period_seconds`` a :class:`PredictionCache` reads the node state snapshot (the Feast
online store's latest features, :func:`components.features.feast_store.read_node_state_snapshot`,
or any :data:`SnapshotSource`) for the inventory's nodes, asks a :class:`NodePredictor` for every
node's P90 load over the forecast horizons and its anomaly score, lets a :class:`PodScorer`
prepare its per-node state, and swaps the result in as one immutable :class:`CacheState`. A
scheduling request only indexes that state (and runs the pod scorer's forward pass).

A failed snapshot read or prediction keeps the previous state; :meth:`PredictionCache.
prediction_age_seconds` says how old the predictions are, and the extender stops using them once
they are older than its staleness limit. Freshness is also per node, from the data's own time:
:meth:`CacheState.usable` keeps a node's prediction only while the node's features (the
snapshot's ``timestamp``) are recent, so a source that stops changing goes stale node by node.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from components.drift import population_stability_index
from components.errors import MlschedError
from scheduler_client.api import PodRequest
from scheduler_client.inventory import (
    InventoryView,
    NodeInventory,
    index_positions,
    memoized_positions,
)
from scheduler_client.resilience import CircuitBreaker

log = logging.getLogger("scheduler_client.predictions")

CPU_REQUESTED_RATIO = "cpu_requested_ratio"
MEMORY_REQUESTED_RATIO = "memory_requested_ratio"
CPU_UTILIZATION = "cpu_utilization"
MEMORY_UTILIZATION = "memory_utilization"
GPUS_REQUESTED = "gpus_requested"
"""Optional node-state column: whole GPUs requested by the pods bound to the node (e.g. the sum
of kube-state-metrics' ``kube_pod_container_resource_requests{resource="nvidia_com_gpu"}``);
0 where the node state does not carry it."""
DRIFT_FEATURES = ("cpu_utilization", "memory_utilization", "cpu_mean_1h", "memory_mean_1h")
TIMESTAMP = "timestamp"

SnapshotSource = Callable[[Sequence[str]], pd.DataFrame]
"""Reads the node state snapshot of the given nodes: a frame indexed by node (in that order),
with ``timestamp`` and the feature columns (``read_node_state_snapshot``'s shape)."""


@dataclass(frozen=True)
class NodePredictions:
    """Per-node predictions, row ``i`` for ``nodes[i]``.

    Attributes:
        horizons_seconds: the forecast horizons, ascending (columns of the P90 arrays).
        cpu_p90, memory_p90: (nodes, horizons) predicted P90 utilisation (fraction of capacity).
        anomaly_score: (nodes,) 0 = normal, 1 = at the detector's alarm threshold.
        anomalous: (nodes,) the detector's alarm flag.
    """

    nodes: tuple[str, ...]
    horizons_seconds: tuple[float, ...]
    cpu_p90: np.ndarray
    memory_p90: np.ndarray
    anomaly_score: np.ndarray
    anomalous: np.ndarray

    def __post_init__(self) -> None:
        n, h = len(self.nodes), len(self.horizons_seconds)
        if h == 0 or list(self.horizons_seconds) != sorted(self.horizons_seconds):
            raise MlschedError("predictions: horizons must be a non-empty ascending list")
        for name in ("cpu_p90", "memory_p90"):
            if np.shape(getattr(self, name)) != (n, h):
                raise MlschedError(
                    f"predictions: {name} has shape {np.shape(getattr(self, name))}, "
                    f"expected ({n}, {h}) for {n} nodes and {h} horizons"
                )
        for name in ("anomaly_score", "anomalous"):
            if np.shape(getattr(self, name)) != (n,):
                shape = np.shape(getattr(self, name))
                raise MlschedError(f"predictions: {name} has shape {shape}, expected ({n},)")


@runtime_checkable
class NodePredictor(Protocol):
    """Turns a node state snapshot into :class:`NodePredictions` (one batch for all nodes)."""

    def predict(self, snapshot: pd.DataFrame) -> NodePredictions: ...


@runtime_checkable
class PodScorer(Protocol):
    """The placement policy's Q-values for one pod over candidate nodes.

    ``prepare`` runs in the background after each refresh and returns whatever per-node state
    the scorer wants (e.g. a ClusterState); ``q_values`` runs on the scheduling path: one
    batched forward pass over the candidates at ``positions`` (indices into ``state.nodes``).
    A scorer with ``waits_on_network = True`` is called off the server's event loop; the others
    (in-process, CPU-bound) are called on it, saving two thread hand-overs per request.
    """

    def prepare(self, state: CacheState) -> Any: ...

    def q_values(self, pod: PodRequest, prepared: Any, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CacheState:
    """One refresh's node state and predictions, aligned on ``nodes`` (immutable once built).

    Attributes:
        nodes, index: node names and name -> row.
        cpu_cores, memory_bytes, gpus: allocatable from the inventory at refresh time.
        cpu_requested_ratio, memory_requested_ratio: requested / allocatable from the snapshot
            (0 where unknown); what the fallback scores use.
        gpus_requested: GPUs requested by the node's bound pods, from the snapshot's optional
            ``gpus_requested`` (0 where unknown).
        cpu_utilization, memory_utilization: latest use from the snapshot (NaN where unknown).
        feature_time: (nodes,) epoch seconds of each node's features, the snapshot's
            ``timestamp`` (NaN where unknown; None or NaN for a snapshot without the column).
        snapshot_at: monotonic time of the snapshot read (None: never read).
        predictions_at: monotonic time of the predictions (None: none yet).
        cpu_peak, memory_peak: (nodes, horizons) running max of the P90 over the horizons, NaN
            rows where a node has no prediction.
        has_prediction: (nodes,) whether the row holds a finite prediction.
        prepared: the pod scorer's per-node state (None without a scorer or on failure).
        drift_psi: PSI of key features against the reference snapshot.
        snapshot: the node state snapshot, rows in ``nodes`` order (None: never read).
    """

    nodes: tuple[str, ...]
    index: dict[str, int]
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray
    gpus: np.ndarray
    cpu_requested_ratio: np.ndarray
    memory_requested_ratio: np.ndarray
    cpu_utilization: np.ndarray
    memory_utilization: np.ndarray
    gpus_requested: np.ndarray | None = None
    feature_time: np.ndarray | None = None
    snapshot_at: float | None = None
    predictions_at: float | None = None
    predictions: NodePredictions | None = None
    horizons_seconds: tuple[float, ...] = ()
    cpu_peak: np.ndarray | None = None
    memory_peak: np.ndarray | None = None
    anomaly_score: np.ndarray | None = None
    anomalous: np.ndarray | None = None
    has_prediction: np.ndarray | None = None
    prepared: Any = None
    drift_psi: dict[str, float] = field(default_factory=dict)
    snapshot: pd.DataFrame | None = None

    _positions: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def positions(self, names: Sequence[str]) -> np.ndarray:
        """Rows of ``names`` (-1 for a node this state does not hold; read-only)."""
        return memoized_positions(
            self._positions, names, lambda names: index_positions(self.index, names)
        )

    def usable(self, rows: np.ndarray, now: float, max_feature_age: float | None) -> np.ndarray:
        """Per row of ``rows``: whether the node has a finite prediction made from features at
        most ``max_feature_age`` seconds old at ``now`` (epoch seconds; None: any age). A row
        of -1 (a node this state does not hold) is never usable."""
        if self.has_prediction is None or not len(self.nodes):
            return np.zeros(len(rows), dtype=bool)
        take = np.maximum(rows, 0)
        usable = (rows >= 0) & self.has_prediction[take]
        if max_feature_age is not None:
            if self.feature_time is None:
                return np.zeros(len(rows), dtype=bool)
            with np.errstate(invalid="ignore"):
                usable &= now - self.feature_time[take] <= max_feature_age  # NaN: unknown age
        return usable


def _inventory_fields(view: InventoryView) -> dict[str, Any]:
    return {
        "nodes": view.names,
        "index": dict(view.index),
        "cpu_cores": view.cpu_cores,
        "memory_bytes": view.memory_bytes,
        "gpus": view.gpus,
    }


def empty_state(view: InventoryView) -> CacheState:
    n = len(view.names)
    return CacheState(
        **_inventory_fields(view),
        cpu_requested_ratio=np.zeros(n),
        memory_requested_ratio=np.zeros(n),
        cpu_utilization=np.full(n, np.nan),
        memory_utilization=np.full(n, np.nan),
        gpus_requested=np.zeros(n),
        feature_time=np.full(n, np.nan),
    )


def feature_times(snapshot: pd.DataFrame) -> np.ndarray:
    """Epoch seconds of each row's ``timestamp`` (NaN where missing or without the column)."""
    if TIMESTAMP not in snapshot.columns:
        return np.full(len(snapshot), np.nan)
    stamps = pd.to_datetime(snapshot[TIMESTAMP], utc=True, errors="coerce")
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _column(snapshot: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name not in snapshot.columns:
        return np.full(n, np.nan)
    return pd.to_numeric(snapshot[name], errors="coerce").to_numpy(dtype=np.float64)


def align_predictions(predictions: NodePredictions, nodes: Sequence[str]) -> dict[str, np.ndarray]:
    """Predictions re-ordered onto ``nodes`` (NaN/False rows for nodes they do not cover), with
    the running max over horizons."""
    n, h = len(nodes), len(predictions.horizons_seconds)
    where = {name: i for i, name in enumerate(predictions.nodes)}
    rows = np.fromiter((where.get(name, -1) for name in nodes), dtype=np.int64, count=n)
    found = rows >= 0
    take = np.where(found, rows, 0)

    def pick(values: np.ndarray, dtype, fill) -> np.ndarray:
        values = np.asarray(values, dtype=dtype)
        out = values[take] if len(values) else np.zeros((n, *values.shape[1:]), dtype)
        out[~found] = fill
        return out

    cpu = pick(predictions.cpu_p90, np.float64, np.nan).reshape(n, h)
    memory = pick(predictions.memory_p90, np.float64, np.nan).reshape(n, h)
    score = pick(predictions.anomaly_score, np.float64, np.nan)
    alarm = pick(predictions.anomalous, bool, False)
    has = found & np.isfinite(cpu).all(axis=1) & np.isfinite(memory).all(axis=1)
    return {
        "cpu_peak": np.maximum.accumulate(np.nan_to_num(cpu, nan=np.inf), axis=1),
        "memory_peak": np.maximum.accumulate(np.nan_to_num(memory, nan=np.inf), axis=1),
        "anomaly_score": np.nan_to_num(score, nan=0.0),
        "anomalous": alarm,
        "has_prediction": has,
    }


class PredictionCache:
    """Refreshes a :class:`CacheState` in the background; the scheduling path reads
    :attr:`state` without locking.

    Args:
        inventory: the nodes to predict for (its current names at each refresh).
        snapshot_source: reads the node state snapshot; None keeps every node's state empty.
        predictor: the batch node predictor; None means fallback-only.
        pod_scorer: optional per-pod scorer (the DQN) whose ``prepare`` runs after a refresh.
        period_seconds: time between refreshes.
        breaker: circuit breaker around the predictor (and the snapshot read).
        reference: a snapshot to measure feature drift against (default: the first one read).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        inventory: NodeInventory,
        snapshot_source: SnapshotSource | None,
        predictor: NodePredictor | None,
        *,
        pod_scorer: PodScorer | None = None,
        period_seconds: float = 15.0,
        breaker: CircuitBreaker | None = None,
        reference: pd.DataFrame | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if period_seconds <= 0:
            raise MlschedError(f"refresh period must be positive, got {period_seconds}")
        self.inventory = inventory
        self.snapshot_source = snapshot_source
        self.predictor = predictor
        self.pod_scorer = pod_scorer
        self.period_seconds = float(period_seconds)
        self.breaker = breaker or CircuitBreaker("predictors")
        self._reference = reference
        self._clock = clock
        self._state = empty_state(inventory.view)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self.refreshes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.on_refresh: Callable[[PredictionCache, bool, float], None] | None = None

    @property
    def state(self) -> CacheState:
        return self._state

    def prediction_age_seconds(self) -> float | None:
        at = self._state.predictions_at
        return None if at is None else self._clock() - at

    def snapshot_age_seconds(self) -> float | None:
        at = self._state.snapshot_at
        return None if at is None else self._clock() - at

    def refresh(self) -> bool:
        """Read the snapshot, predict, prepare the scorer, swap the state in; True on success.

        A failure keeps the previous snapshot and predictions (they age) and is kept in
        :attr:`last_error`; it never raises.
        """
        with self._refresh_lock:
            began = self._clock()
            ok = self._refresh()
            self.refreshes += 1
            if not ok:
                self.failures += 1
            if self.on_refresh is not None:
                self.on_refresh(self, ok, self._clock() - began)
            return ok

    def _refresh(self) -> bool:
        view = self.inventory.view
        previous = self._state
        names = view.names
        n = len(names)
        snapshot = None
        fields: dict[str, Any] = {}
        if self.snapshot_source is not None:
            try:
                snapshot = self.snapshot_source(names)
                snapshot = snapshot.reindex(pd.Index(names, name=snapshot.index.name))
            except Exception as error:  # the source is down: keep what we had
                self.last_error = f"snapshot: {type(error).__name__}: {error}"
                log.warning("snapshot read failed", extra={"fields": {"error": self.last_error}})
                return False
            fields.update(
                snapshot_at=self._clock(),
                cpu_requested_ratio=np.nan_to_num(_column(snapshot, CPU_REQUESTED_RATIO, n)),
                memory_requested_ratio=np.nan_to_num(_column(snapshot, MEMORY_REQUESTED_RATIO, n)),
                cpu_utilization=_column(snapshot, CPU_UTILIZATION, n),
                memory_utilization=_column(snapshot, MEMORY_UTILIZATION, n),
                gpus_requested=np.nan_to_num(_column(snapshot, GPUS_REQUESTED, n)),
                feature_time=feature_times(snapshot),
                snapshot=snapshot,
            )
            if self._reference is None:
                self._reference = snapshot
            fields["drift_psi"] = {
                name: population_stability_index(
                    _column(self._reference, name, len(self._reference)),
                    _column(snapshot, name, n),
                )
                for name in DRIFT_FEATURES
                if name in snapshot.columns
            }
        else:
            fields.update(_carry_over(previous, names))
        ok = True
        if self.predictor is not None and snapshot is not None:
            if self.breaker.allow():
                try:
                    predictions = self.predictor.predict(snapshot)
                except Exception as error:
                    self.breaker.record_failure()
                    self.last_error = f"predictor: {type(error).__name__}: {error}"
                    log.warning("prediction failed", extra={"fields": {"error": self.last_error}})
                    ok = False
                else:
                    self.breaker.record_success()
                    fields.update(align_predictions(predictions, names))
                    fields.update(
                        predictions=predictions,
                        predictions_at=self._clock(),
                        horizons_seconds=predictions.horizons_seconds,
                    )
            else:
                self.last_error = "predictor: circuit open"
                ok = False
        if "predictions" not in fields:
            fields.update(_carry_predictions(previous, names))
        state = CacheState(**_inventory_fields(view), **{**_carry_over(previous, names), **fields})
        if self.pod_scorer is not None and state.predictions is not None:
            try:
                state = dataclasses.replace(state, prepared=self.pod_scorer.prepare(state))
            except Exception as error:
                self.last_error = f"pod scorer prepare: {type(error).__name__}: {error}"
                log.warning("pod scorer prepare failed", extra={"fields": {"error": str(error)}})
                ok = False
        self._state = state
        if ok:
            self.last_error = None
        return ok

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.period_seconds)

    def start(self) -> PredictionCache:
        """Start the background thread (refreshes at once, then every period)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-cache", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> PredictionCache:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _remap(previous: CacheState, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = previous.positions(names)
    return rows, rows >= 0


def _carry_over(previous: CacheState, names: tuple[str, ...]) -> dict[str, Any]:
    """The previous snapshot-derived arrays on the new node order (nodes new to it: unknown)."""
    if previous.nodes == names:
        return {
            "snapshot": previous.snapshot,
            "snapshot_at": previous.snapshot_at,
            "cpu_requested_ratio": previous.cpu_requested_ratio,
            "memory_requested_ratio": previous.memory_requested_ratio,
            "cpu_utilization": previous.cpu_utilization,
            "memory_utilization": previous.memory_utilization,
            "gpus_requested": previous.gpus_requested,
            "feature_time": previous.feature_time,
            "drift_psi": previous.drift_psi,
        }
    rows, found = _remap(previous, names)
    take = np.where(found, rows, 0)

    def move(values: np.ndarray, fill: float) -> np.ndarray:
        out = values[take] if len(values) else np.zeros(len(names))
        return np.where(found, out, fill)

    snapshot = previous.snapshot
    if snapshot is not None:
        snapshot = snapshot.reindex(pd.Index(names, name=snapshot.index.name))
    return {
        "snapshot": snapshot,
        "snapshot_at": previous.snapshot_at,
        "cpu_requested_ratio": move(previous.cpu_requested_ratio, 0.0),
        "memory_requested_ratio": move(previous.memory_requested_ratio, 0.0),
        "cpu_utilization": move(previous.cpu_utilization, np.nan),
        "memory_utilization": move(previous.memory_utilization, np.nan),
        "gpus_requested": None
        if previous.gpus_requested is None
        else move(previous.gpus_requested, 0.0),
        "feature_time": None
        if previous.feature_time is None
        else move(previous.feature_time, np.nan),
        "drift_psi": previous.drift_psi,
    }


def _carry_predictions(previous: CacheState, names: tuple[str, ...]) -> dict[str, Any]:
    if previous.predictions is None:
        return {}
    carried = align_predictions(previous.predictions, names)
    carried.update(
        predictions=previous.predictions,
        predictions_at=previous.predictions_at,
        horizons_seconds=previous.horizons_seconds,
    )
    return carried
