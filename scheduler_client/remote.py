"""Clients of the served models over the Open Inference Protocol (v2 REST), as KServe serves them.

``POST {base}/v2/models/{name}/infer`` with ``{"inputs": [{"name", "shape", "datatype", "data"}]}``
(data flattened row-major; NaN sent as ``null``), answered with ``{"outputs": [...]}``. The
contract the predictors implement:

========================  ===============================================  =====================
model (default name)      inputs                                           outputs
========================  ===============================================  =====================
forecaster                ``features`` FP32 [n, F] (FEATURE_NAMES order)   ``cpu_p90``,
(node-load-forecaster)                                                     ``memory_p90`` FP32
                                                                           [n, horizons] (one
                                                                           may be absent: its
                                                                           current value
                                                                           stands in),
                                                                           ``horizon_seconds``
                                                                           FP32 [horizons]
anomaly detector          one FP32 [m] input per detector feature, named   ``score`` FP32 [m]
(node-anomaly-detector)   and ordered as the model's v2 metadata declares  (1 = alarm
                          them (``GET /v2/models/<name>``: its inputs of   threshold),
                          shape [-1]), and ``node`` BYTES [m]              ``alarm`` BOOL [m]
                                                                           (optional)
placement policy          ``node_state`` FP32 [k, 20] (NODE_STATE_COLUMNS: ``q_values`` FP32 [k]
(placement-dqn)           the record the DQN trained on), ``pod`` FP32
                          [1, 3] (POD_COLUMNS)
========================  ===============================================  =====================

The anomaly detector's features are not the forecaster's: they are the snapshot's anomaly
feature group (``components.features.anomaly_group``, the Feast view ``node_anomaly_features``).
The predictor reads the detector's metadata once (again after a failed call), sends the m nodes
whose declared features are all present and finite, and leaves the others unscored (score NaN,
no alarm: the filter does not drop a node for want of anomaly features).

Each call has its own time-out; connections are kept alive per thread.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
import pandas as pd

from components.errors import MlschedError
from components.features.definitions import FEATURE_NAMES
from components.model_contracts import (
    ANOMALY_MODEL,
    FORECAST_HORIZONS_OUTPUT,
    FORECASTER_MODEL,
    PLACEMENT_MODEL,
)
from scheduler_client.api import PodRequest
from scheduler_client.dqn_scorer import cache_node_state
from scheduler_client.predictions import CacheState, NodePredictions

FORECASTER = FORECASTER_MODEL
ANOMALY_DETECTOR = ANOMALY_MODEL
PLACEMENT_POLICY = PLACEMENT_MODEL
DEFAULT_HORIZONS_SECONDS = (300.0, 900.0, 1800.0)
_DTYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "BOOL": bool,
}


class InferenceError(MlschedError):
    """A model server that failed, timed out or answered outside the contract."""


class V2Client:
    """A minimal Open Inference Protocol v2 REST client with per-call time-outs.

    Args:
        base_url: ``http://host:port`` of the model server (KServe predictor or ingress).
        timeout_seconds: connect + read time-out of one call.
        headers: extra headers (e.g. ``Host`` for a KServe ingress, or authorisation).
    """

    def __init__(self, base_url: str, *, timeout_seconds: float = 2.0, headers: dict | None = None):
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise MlschedError(f"predictors URL {base_url!r}: use http://host:port")
        self.base_url = base_url.rstrip("/")
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._path = url.path.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            connection = kind(self._host, self._port, timeout=timeout)
            self._local.connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ):
        """One HTTP call; returns (status, parsed JSON or None)."""
        timeout = self.timeout_seconds if timeout is None else timeout
        for attempt in (0, 1):
            connection = self._connection(timeout)
            try:
                connection.request(method, self._path + path, body=body, headers=self.headers)
                response = connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self._drop()
                if attempt == 0:  # a kept-alive connection the server closed: retry once
                    continue
                raise InferenceError(f"{self.base_url}: connection failed") from None
            except (TimeoutError, OSError, http.client.HTTPException) as error:
                self._drop()
                raise InferenceError(
                    f"{self.base_url}{path}: {type(error).__name__}: {error}"
                ) from None
            try:
                document = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                document = None
            return response.status, document
        raise InferenceError(f"{self.base_url}: connection failed")  # pragma: no cover

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on named tensors; returns its outputs as arrays of their shapes.

        Boolean arrays go as BOOL, object (string) arrays as BYTES, everything else as FP32.
        """
        body = orjson.dumps(
            {"inputs": [_input_tensor(name, array) for name, array in inputs.items()]},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        status, document = self.request("POST", f"/v2/models/{model}/infer", body, timeout)
        if status != 200:
            detail = document.get("error") if isinstance(document, dict) else None
            raise InferenceError(f"{model}: HTTP {status}{f': {detail}' if detail else ''}")
        return parse_outputs(model, document)

    def metadata(self, model: str, timeout: float | None = None) -> dict:
        """The model's v2 metadata (``GET /v2/models/<model>``: name, inputs, outputs)."""
        status, document = self.request("GET", f"/v2/models/{model}", timeout=timeout)
        if status != 200 or not isinstance(document, dict):
            raise InferenceError(f"{model}: metadata HTTP {status}")
        return document

    def ready(self, model: str | None = None) -> bool:
        path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
        try:
            status, _ = self.request("GET", path)
        except InferenceError:
            return False
        return status == 200


def _input_tensor(name: str, array: np.ndarray) -> dict:
    if array.dtype == bool:
        datatype, data = "BOOL", np.ascontiguousarray(array).reshape(-1)
    elif array.dtype == object:
        datatype, data = "BYTES", [str(value) for value in array.reshape(-1)]
    else:
        datatype, data = "FP32", np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def declared_feature_inputs(model: str, metadata: Any) -> tuple[str, ...]:
    """The per-feature inputs a model's v2 metadata declares: its FP32 inputs of shape [-1], in
    the declared order.

    Raises:
        InferenceError: the metadata has no such input (a model without the columnar form).
    """
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not isinstance(inputs, list):
        raise InferenceError(f"{model}: the metadata has no 'inputs' list")
    names = tuple(
        str(item["name"])
        for item in inputs
        if isinstance(item, dict)
        and item.get("datatype") == "FP32"
        and item.get("shape") == [-1]
        and isinstance(item.get("name"), str)
    )
    if not names:
        raise InferenceError(
            f"{model}: the metadata declares no per-feature FP32 [-1] inputs; serve it with "
            "serving.predictors.NodeAnomalyModel (it names one input per feature)"
        )
    return names


def parse_outputs(model: str, document: Any) -> dict[str, np.ndarray]:
    """The ``outputs`` of a v2 inference answer as arrays, checked against their shapes."""
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise InferenceError(f"{model}: the answer has no 'outputs' list")
    outputs = {}
    for output in document["outputs"]:
        try:
            name, shape, datatype = output["name"], output["shape"], output["datatype"]
            dtype = _DTYPES[datatype]
            values = [np.nan if v is None else v for v in output["data"]]
            array = np.asarray(values, dtype=dtype).reshape(shape)
        except (KeyError, TypeError, ValueError) as error:
            raise InferenceError(f"{model}: malformed output tensor: {error}") from None
        outputs[name] = array
    return outputs


def _need(outputs: dict[str, np.ndarray], model: str, name: str, shape: tuple) -> np.ndarray:
    if name not in outputs:
        raise InferenceError(f"{model}: no output {name!r} (got {sorted(outputs)})")
    array = outputs[name]
    if array.shape != shape:
        raise InferenceError(f"{model}: output {name!r} has shape {array.shape}, expected {shape}")
    return array


def _persistence(snapshot: pd.DataFrame, resource: str, shape: tuple[int, int]) -> np.ndarray:
    """A resource the forecaster was not trained on: its current utilisation at every horizon."""
    column = f"{resource}_utilization"
    if column not in snapshot.columns:
        return np.full(shape, np.nan)
    now = snapshot[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.repeat(now[:, None], shape[1], axis=1)


def snapshot_features(snapshot: pd.DataFrame) -> np.ndarray:
    """The snapshot's features as float32 [n, F] in FEATURE_NAMES order (NaN where missing)."""
    columns = snapshot.reindex(columns=list(FEATURE_NAMES))
    return columns.to_numpy(dtype=np.float32, na_value=np.nan)


class RemoteNodePredictor:
    """:class:`~scheduler_client.predictions.NodePredictor` over the served forecaster and
    anomaly detector (two batched v2 calls per refresh; the detector's metadata once)."""

    def __init__(
        self,
        client: V2Client,
        *,
        forecaster: str = FORECASTER,
        anomaly_detector: str = ANOMALY_DETECTOR,
        horizons_seconds: Sequence[float] = DEFAULT_HORIZONS_SECONDS,
    ):
        self.client = client
        self.forecaster = forecaster
        self.anomaly_detector = anomaly_detector
        self.horizons_seconds = tuple(float(h) for h in horizons_seconds)
        self._anomaly_inputs: tuple[str, ...] | None = None

    def anomaly_inputs(self) -> tuple[str, ...]:
        """The detector's feature inputs, in its order (read from its metadata, then cached)."""
        if self._anomaly_inputs is None:
            metadata = self.client.metadata(self.anomaly_detector)
            self._anomaly_inputs = declared_feature_inputs(self.anomaly_detector, metadata)
        return self._anomaly_inputs

    def _anomaly(self, snapshot: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        n = len(snapshot)
        score = np.full(n, np.nan)
        alarm = np.zeros(n, dtype=bool)
        names = self.anomaly_inputs()
        columns = {
            name: snapshot[name].to_numpy(dtype=np.float32, na_value=np.nan)
            for name in names
            if name in snapshot.columns
        }
        if len(columns) < len(names):
            return score, alarm
        complete = np.logical_and.reduce([np.isfinite(c) for c in columns.values()])
        rows = np.flatnonzero(complete)
        if len(rows) == 0:
            return score, alarm
        inputs = {name: column[rows] for name, column in columns.items()}
        inputs["node"] = np.asarray(snapshot.index.astype(str), dtype=object)[rows]
        try:
            outputs = self.client.infer(self.anomaly_detector, inputs)
        except InferenceError:
            self._anomaly_inputs = None  # a redeployed model may declare other inputs
            raise
        m = len(rows)
        score[rows] = _need(outputs, self.anomaly_detector, "score", (m,))
        flags = outputs.get("alarm")
        if flags is None:
            flags = score[rows] >= 1.0
        elif flags.shape != (m,):
            raise InferenceError(f"{self.anomaly_detector}: output 'alarm' has shape {flags.shape}")
        alarm[rows] = np.asarray(flags, dtype=bool)
        return score, alarm

    def _horizons(self, forecast: dict[str, np.ndarray]) -> tuple[float, ...]:
        named = forecast.get(FORECAST_HORIZONS_OUTPUT)
        if named is None:
            return self.horizons_seconds
        horizons = tuple(float(h) for h in np.asarray(named).reshape(-1))
        if not horizons or list(horizons) != sorted(horizons):
            raise InferenceError(
                f"{self.forecaster}: output {FORECAST_HORIZONS_OUTPUT!r} must be ascending "
                f"horizons, got {horizons}"
            )
        return horizons

    def predict(self, snapshot: pd.DataFrame) -> NodePredictions:
        forecast = self.client.infer(self.forecaster, {"features": snapshot_features(snapshot)})
        horizons = self._horizons(forecast)
        shape = (len(snapshot), len(horizons))
        if "cpu_p90" not in forecast and "memory_p90" not in forecast:
            _need(forecast, self.forecaster, "cpu_p90", shape)
        peaks = {
            resource: _need(forecast, self.forecaster, f"{resource}_p90", shape).astype(np.float64)
            if f"{resource}_p90" in forecast
            else _persistence(snapshot, resource, shape)
            for resource in ("cpu", "memory")
        }
        score, alarm = self._anomaly(snapshot)
        return NodePredictions(
            nodes=tuple(str(node) for node in snapshot.index),
            horizons_seconds=horizons,
            cpu_p90=peaks["cpu"],
            memory_p90=peaks["memory"],
            anomaly_score=score,
            anomalous=alarm,
        )


class RemotePodScorer:
    """:class:`~scheduler_client.predictions.PodScorer` over the served placement policy: one v2
    call per scheduling request, with its own (short) time-out."""

    waits_on_network = True
    name = "remote"

    def __init__(
        self, client: V2Client, *, model: str = PLACEMENT_POLICY, timeout_seconds: float = 0.05
    ):
        self.client = client
        self.model = model
        self.timeout_seconds = timeout_seconds

    def prepare(self, state: CacheState) -> np.ndarray:
        return cache_node_state(state).values.astype(np.float32)

    def q_values(self, pod: PodRequest, prepared: np.ndarray, positions: np.ndarray) -> np.ndarray:
        pod_vector = np.array([[pod.cpu_cores, pod.memory_bytes, pod.gpus]], dtype=np.float32)
        rows = prepared[np.maximum(positions, 0)]
        outputs = self.client.infer(
            self.model, {"node_state": rows, "pod": pod_vector}, timeout=self.timeout_seconds
        )
        return _need(outputs, self.model, "q_values", (len(positions),))
