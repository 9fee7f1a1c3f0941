"""KServe predictors for the three models, speaking v1 (``instances``) and v2 (Open Inference
Protocol), batched. The tensor contract is the one :mod:`scheduler_client.remote` sends; see
``serving/README.md`` for every request and response shape.

Each predictor takes a loaded model (``model=``, as kserve's xgbserver does, e.g. in tests) or a
``source`` (``models:/<name>@champion`` with a ``tracking_uri``, or a local folder) that
:meth:`load` reads. Bad requests raise :class:`kserve.errors.InvalidInput` (HTTP 400).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import kserve
import numpy as np
import pandas as pd
from kserve import InferRequest, InferResponse
from kserve.errors import InvalidInput

from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.definitions import FEATURE_NAMES
from components.model_contracts import (
    ANOMALY_MODEL,
    FORECAST_HORIZONS_OUTPUT,
    FORECASTER_MODEL,
    NODE_STATE_COLUMNS,
    PLACEMENT_MODEL,
    POD_COLUMNS,
)
from serving.loading import find_folder, load_via_local_copy
from serving.tensors import (
    TensorSpec,
    check_shape,
    numeric,
    v1_array,
    v1_instances,
    v1_matrix,
    v2_datatypes,
    v2_inputs,
    v2_response,
)

FORECASTER = FORECASTER_MODEL
ANOMALY_DETECTOR = ANOMALY_MODEL
PLACEMENT_POLICY = PLACEMENT_MODEL
_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")
_CAPACITIES = ("cpu_capacity_cores", "memory_capacity_bytes")


class ServedModel(kserve.Model):
    """Shared plumbing: loading, readiness, v1/v2 dispatch and metadata.

    Subclasses set :attr:`default_name`, implement :meth:`load_model`, :meth:`input_specs`,
    :meth:`output_specs`, :meth:`infer` (named float arrays in, named arrays out) and
    :meth:`predict_v1`.
    """

    default_name: ClassVar[str]

    def __init__(
        self,
        name: str | None = None,
        model: Any | None = None,
        *,
        source: str | os.PathLike | None = None,
        tracking_uri: str | None = None,
    ):
        super().__init__(name or self.default_name)
        if model is None and source is None:
            raise MlschedError(f"model {self.name}: pass a loaded model or a source to load from")
        self.model = model
        self.source = source
        self.tracking_uri = tracking_uri
        self.ready = model is not None

    @classmethod
    def load_model(cls, source: str | os.PathLike, tracking_uri: str | None = None) -> Any:
        raise NotImplementedError

    def load(self) -> bool:
        """Read the model from :attr:`source` unless one was injected; marks the model ready.

        Raises:
            MlschedError: nothing loadable at the source.
        """
        if self.model is None:
            self.model = self.load_model(self.source, self.tracking_uri)
        self.ready = True
        return self.ready

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` CPU threads per request (a no-op unless the model has its own knob)."""

    def input_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    def output_specs(self) -> tuple[TensorSpec, ...]:
        raise NotImplementedError

    def get_input_types(self) -> list[dict]:
        return [spec.metadata() for spec in self.input_specs()] if self.model is not None else []

    def get_output_types(self) -> list[dict]:
        return [spec.metadata() for spec in self.output_specs()] if self.model is not None else []

    def infer(self, arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict:
        raise NotImplementedError

    def predict_v1(self, instances: list) -> list:
        raise NotImplementedError

    def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            arrays = v2_inputs(self.name, payload)
            known = {spec.name for spec in self.input_specs()}
            unknown = sorted(set(arrays) - known)
            if unknown:
                raise InvalidInput(
                    f"model {self.name}: unknown input(s) {unknown}; expected {sorted(known)}"
                )
            outputs = self.infer(arrays, v2_datatypes(payload))
            return v2_response(self.name, payload, outputs)
        return {"predictions": self.predict_v1(v1_instances(self.name, payload))}


class NodeLoadForecasterModel(ServedModel):
    """The load forecaster (:class:`components.forecast.model.LoadForecaster`).

    v2: ``features`` FP32 [n, F] (the model's F feature names, FEATURE_NAMES order; NaN or
    ``null`` where missing) -> per resource ``<r>`` and ``<r>_p90`` FP32 [n, horizons] (predicted
    utilisation, a fraction of capacity; the model's horizons in order, :attr:`horizons_seconds`)
    and ``horizon_seconds`` FP32 [horizons] naming them.
    v1: ``instances`` of F numbers or ``{feature: value}`` -> one object per row
    ``{"cpu_5m": .., "cpu_5m_p90": .., ...}``.
    """

    default_name = FORECASTER

    @classmethod
    def load_model(cls, source: str | os.PathLike, tracking_uri: str | None = None) -> Any:
        from components.forecast.model import load_forecaster

        return load_via_local_copy(source, load_forecaster, tracking_uri=tracking_uri)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "feature_names", FEATURE_NAMES))

    def set_threads(self, threads: int) -> None:
        for booster in getattr(self.model, "boosters", {}).values():
            booster.set_param({"nthread": int(threads)})

    @property
    def horizons_seconds(self) -> tuple[int, ...]:
        return tuple(int(h.seconds) for h in self.model.horizons)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("features", "FP32", (-1, len(self.feature_names))),)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        width = len(self.model.horizons)
        return (
            *(
                TensorSpec(f"{resource}{suffix}", "FP32", (-1, width))
                for resource in self.model.resources
                for suffix in ("", "_p90")
            ),
            TensorSpec(FORECAST_HORIZONS_OUTPUT, "FP32", (width,)),
        )

    def _forecast(self, matrix: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(matrix, columns=list(self.feature_names), copy=False)
        return self.model.predict(frame)

    def infer(self, arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict:
        matrix = numeric(self.name, arrays, self.input_specs()[0], datatypes)
        predicted = self._forecast(matrix)
        outputs = {}
        for resource in self.model.resources:
            for suffix in ("", "_p90"):
                columns = [f"{resource}_{h.name}{suffix}" for h in self.model.horizons]
                outputs[f"{resource}{suffix}"] = predicted[columns].to_numpy(dtype=np.float32)
        outputs[FORECAST_HORIZONS_OUTPUT] = np.asarray(self.horizons_seconds, dtype=np.float32)
        return outputs

    def predict_v1(self, instances: list) -> list:
        matrix = v1_matrix(self.name, instances, self.feature_names)
        predicted = self._forecast(matrix)
        columns = [c for c in self.model.output_columns if c in predicted.columns]
        values = predicted[columns].to_numpy(dtype=np.float64)
        return [dict(zip(columns, map(float, row), strict=True)) for row in values]


class NodeAnomalyModel(ServedModel):
    """The node anomaly detector (:class:`components.anomaly.detector.AnomalyDetector`).

    v2: the detector's own features, either as ``features`` FP32 [n, k] (in ``feature_names``
    order) or as one FP32 [n] input per feature, named after it (the columnar form the extender
    sends: the model's metadata lists these inputs, so a client learns the names and their order
    from ``GET /v2/models/<name>``); optional ``node`` BYTES [n] (per-node standardisation;
    pooled without it) and ``timestamp`` FP64 [n] (epoch seconds; rows of a node within the
    smoothing window are averaged; without it, every row is scored on its own) -> ``score`` FP32
    [n] (1 = the alarm threshold), ``raw_score`` FP32 [n] (the detector's own scale) and
    ``alarm`` BOOL [n].
    v1: ``instances`` of ``{feature: value, ..., "node": name, "timestamp": seconds}`` or lists
    of k numbers -> ``{"score", "raw_score", "alarm"}`` per row.
    """

    default_name = ANOMALY_DETECTOR

    @classmethod
    def load_model(cls, source: str | os.PathLike, tracking_uri: str | None = None) -> Any:
        from components.anomaly.model import DETECTOR_FILE, load_anomaly_detector

        def read(path: Path):
            if path.is_dir() and not (path / DETECTOR_FILE).is_file():
                try:
                    path = find_folder(path, DETECTOR_FILE)
                except MlschedError:
                    path = find_folder(path, "MLmodel")
            return load_anomaly_detector(path)

        return load_via_local_copy(source, read, tracking_uri=tracking_uri)

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = getattr(self.model, "feature_names", None)
        if names is None:
            names = self.model.ensemble.feature_names
        return tuple(names)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        names = self.feature_names
        return (
            TensorSpec("features", "FP32", (-1, len(names))),
            TensorSpec("node", "BYTES", (-1,), required=False),
            TensorSpec("timestamp", "FP64", (-1,), required=False),
            *(TensorSpec(name, "FP32", (-1,), required=False) for name in names),
        )

    def _matrix(
        self, arrays: dict[str, np.ndarray], datatypes: dict[str, str], spec: TensorSpec
    ) -> np.ndarray:
        """The feature matrix from ``features`` [n, k] or from one [n] input per feature."""
        names = self.feature_names
        given = [name for name in names if name in arrays]
        if not given:
            return numeric(self.name, arrays, spec, datatypes)
        if spec.name in arrays:
            raise InvalidInput(
                f"model {self.name}: send either {spec.name!r} {spec.describe()} or one FP32 [n] "
                f"input per feature, not both"
            )
        missing = [name for name in names if name not in arrays]
        if missing:
            raise InvalidInput(
                f"model {self.name}: missing feature input(s) {missing}; the columnar form needs "
                f"one FP32 [n] input per feature: {list(names)}"
            )
        columns = [
            numeric(self.name, arrays, TensorSpec(name, "FP32", (-1,)), datatypes) for name in names
        ]
        lengths = {len(column) for column in columns}
        if len(lengths) > 1:
            raise InvalidInput(
                f"model {self.name}: the feature inputs have different lengths {sorted(lengths)}"
            )
        return np.stack(columns, axis=1)

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return (
            TensorSpec("score", "FP32", (-1,)),
            TensorSpec("raw_score", "FP32", (-1,)),
            TensorSpec("alarm", "BOOL", (-1,)),
        )

    def _score(
        self, matrix: np.ndarray, nodes: np.ndarray | None, seconds: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        n = len(matrix)
        if nodes is None:
            nodes = np.array([f"row-{i}" for i in range(n)], dtype=object)
        if seconds is None:
            stamps = _EPOCH + pd.to_timedelta(np.arange(n), unit="D")
        else:
            if not np.all(np.isfinite(seconds)):
                raise InvalidInput(f"model {self.name}: 'timestamp' must be finite epoch seconds")
            stamps = pd.to_datetime(seconds, unit="s", utc=True)
        frame = pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=list(self.feature_names))
        frame.insert(0, NODE, nodes.astype(str))
        frame.insert(1, TIMESTAMP, pd.DatetimeIndex(stamps))
        scored = self.model.score(frame)
        order = np.lexsort((frame[TIMESTAMP].to_numpy(), frame[NODE].to_numpy()))
        raw = np.empty(n, dtype=np.float64)
        alarm = np.empty(n, dtype=bool)
        raw[order] = scored["score"].to_numpy(dtype=np.float64)
        alarm[order] = scored["alarm"].to_numpy(dtype=bool)
        threshold = float(self.model.threshold)
        scale = max(abs(threshold), 1e-9)
        return {
            "score": (1.0 + (raw - threshold) / scale).astype(np.float32),
            "raw_score": raw.astype(np.float32),
            "alarm": alarm,
        }

    def infer(self, arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict:
        specs = self.input_specs()
        matrix = self._matrix(arrays, datatypes, specs[0])
        nodes = arrays.get("node")
        if nodes is not None:
            if datatypes.get("node") != "BYTES":
                raise InvalidInput(f"model {self.name}: input 'node' must be BYTES (node names)")
            check_shape(self.name, specs[1], nodes.shape)
        seconds = arrays.get("timestamp")
        if seconds is not None:
            if datatypes.get("timestamp") not in ("FP64", "INT64"):
                raise InvalidInput(
                    f"model {self.name}: input 'timestamp' must be FP64 or INT64 epoch seconds"
                )
            check_shape(self.name, specs[2], seconds.shape)
            seconds = np.asarray(seconds, dtype=np.float64)
        for name, values in (("node", nodes), ("timestamp", seconds)):
            if values is not None and len(values) != len(matrix):
                raise InvalidInput(
                    f"model {self.name}: input {name!r} has {len(values)} rows, "
                    f"'features' has {len(matrix)}"
                )
        return self._score(matrix, nodes, seconds)

    def predict_v1(self, instances: list) -> list:
        nodes, seconds, rows = [], [], []
        for index, instance in enumerate(instances):
            if isinstance(instance, dict):
                instance = dict(instance)
                nodes.append(instance.pop("node", None))
                seconds.append(instance.pop("timestamp", None))
            rows.append(instance)
            if nodes and nodes[-1] is not None and not isinstance(nodes[-1], str):
                raise InvalidInput(f"model {self.name}: instance {index}: 'node' must be a string")
        matrix = v1_matrix(self.name, rows, self.feature_names)
        node_array = None
        if nodes and any(node is not None for node in nodes):
            node_array = np.array(
                [node if node is not None else f"row-{i}" for i, node in enumerate(nodes)],
                dtype=object,
            )
        time_array = None
        if seconds and all(s is not None for s in seconds) and len(seconds) == len(rows):
            try:
                time_array = np.array(seconds, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"model {self.name}: 'timestamp' must be epoch seconds (numbers)"
                ) from None
        out = self._score(matrix, node_array, time_array)
        return [
            {"score": float(s), "raw_score": float(r), "alarm": bool(a)}
            for s, r, a in zip(out["score"], out["raw_score"], out["alarm"], strict=True)
        ]


class PlacementDqnModel(ServedModel):
    """The placement model's registered version: the DQN policy
    (:class:`components.placement.dqn.policy.DQNPolicy`) or a heuristic champion the gate chose
    (``policy.json``, :class:`components.placement.policy_spec.PolicySpec`), which answers the
    ``node_state`` form with its own scores in place of Q-values (the native form is the DQN's).

    v2, the extender's form: ``node_state`` FP32 [k, 20] or [b, k, 20] (NODE_STATE_COLUMNS, the
    per-node record the DQN was trained on), and ``pod`` FP32 [1, 3] or [b, 3] (POD_COLUMNS),
    optional ``feasible`` BOOL [k] or [b, k] -> ``q_values`` FP32 [k] or [b, k]. The record
    becomes the network's inputs through ``components.placement.dqn.inputs.policy_inputs``, as
    in training.
    v2, the native form: ``node_features`` FP32 [k, 29] or [b, k, 29] and ``pod_features`` FP32
    [1, 4] or [b, 4] (the DQN's own features), same output.
    v1: ``instances`` of ``{"node_state": [[19 numbers] x k], "pod": [3 numbers]}`` (or
    ``node_features``/``pod_features``) -> one list of k Q-values per instance.
    """

    default_name = PLACEMENT_POLICY

    @classmethod
    def load_model(cls, source: str | os.PathLike, tracking_uri: str | None = None) -> Any:
        from components.placement.policy_spec import find_policy_spec, read_policy_spec

        def load(path: Path) -> Any:
            spec = find_policy_spec(path)
            if spec is not None:
                return read_policy_spec(spec)
            from components.placement.dqn.policy import CONFIG_FILE, WEIGHTS_FILE, load_dqn_policy

            return load_dqn_policy(find_folder(path, CONFIG_FILE, WEIGHTS_FILE))

        return load_via_local_copy(source, load, tracking_uri=tracking_uri)

    @staticmethod
    def _sizes() -> tuple[int, int]:
        from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES

        return N_NODE_FEATURES, N_POD_FEATURES

    def input_specs(self) -> tuple[TensorSpec, ...]:
        node_width, pod_width = self._sizes()
        return (
            TensorSpec("node_state", "FP32", (-1, len(NODE_STATE_COLUMNS)), required=False),
            TensorSpec("pod", "FP32", (-1, len(POD_COLUMNS)), required=False),
            TensorSpec("feasible", "BOOL", (-1,), required=False),
            TensorSpec("node_features", "FP32", (-1, node_width), required=False),
            TensorSpec("pod_features", "FP32", (-1, pod_width), required=False),
        )

    def output_specs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("q_values", "FP32", (-1,)),)

    def infer(self, arrays: dict[str, np.ndarray], datatypes: dict[str, str]) -> dict:
        for name, datatype in datatypes.items():
            if name == "feasible" and datatype != "BOOL":
                raise InvalidInput(f"model {self.name}: input 'feasible' must be BOOL")
            if name != "feasible" and datatype in ("BOOL", "BYTES"):
                raise InvalidInput(
                    f"model {self.name}: input {name!r} has datatype {datatype}, expected FP32"
                )
        native = "node_features" in arrays or "pod_features" in arrays
        if native:
            first, second = "node_features", "pod_features"
        else:
            first, second = "node_state", "pod"
        for name in (first, second):
            if name not in arrays:
                raise InvalidInput(
                    f"model {self.name}: missing input {name!r}; send node_state "
                    f"[k, {len(NODE_STATE_COLUMNS)}] + pod [1, {len(POD_COLUMNS)}], or "
                    f"node_features [k, {self._sizes()[0]}] + pod_features "
                    f"[1, {self._sizes()[1]}]; got {sorted(arrays) or 'no inputs'}"
                )
        nodes = np.asarray(arrays[first], dtype=np.float32)
        pods = np.asarray(arrays[second], dtype=np.float32)
        feasible = arrays.get("feasible")
        return {
            "q_values": self._q_values(nodes, pods, feasible, native=native, names=(first, second))
        }

    def _q_values(
        self,
        nodes: np.ndarray,
        pods: np.ndarray,
        feasible: np.ndarray | None,
        *,
        native: bool,
        names: tuple[str, str],
    ) -> np.ndarray:
        node_width, pod_width = (
            self._sizes() if native else (len(NODE_STATE_COLUMNS), len(POD_COLUMNS))
        )
        single = nodes.ndim == 2
        batch = nodes[None] if single else nodes
        if batch.ndim != 3 or batch.shape[2] != node_width:
            raise InvalidInput(
                f"model {self.name}: input {names[0]!r} has shape {list(nodes.shape)}, "
                f"expected FP32 [k, {node_width}] or [b, k, {node_width}]"
            )
        b, k = batch.shape[:2]
        pods = pods.reshape(1, -1) if pods.ndim == 1 else pods
        if pods.ndim != 2 or pods.shape[1] != pod_width or pods.shape[0] not in (1, b):
            raise InvalidInput(
                f"model {self.name}: input {names[1]!r} has shape {list(pods.shape)}, "
                f"expected FP32 [1, {pod_width}]" + ("" if single else f" or [{b}, {pod_width}]")
            )
        pods = np.array(np.broadcast_to(pods, (b, pod_width)))
        mask = None
        if feasible is not None:
            mask = np.asarray(feasible, dtype=bool)
            if mask.shape not in ((k,), (b, k)):
                raise InvalidInput(
                    f"model {self.name}: input 'feasible' has shape {list(mask.shape)}, "
                    f"expected BOOL [{k}]" + ("" if single else f" or [{b}, {k}]")
                )
            mask = np.broadcast_to(mask, (b, k))
        if k == 0:
            out = np.zeros((b, 0), dtype=np.float32)
            return out[0] if single else out
        from components.placement.policy_spec import PolicySpec

        if isinstance(self.model, PolicySpec):
            if native:
                raise InvalidInput(
                    f"model {self.name}: serves the heuristic {self.model.policy}, which scores "
                    f"node_state [k, {len(NODE_STATE_COLUMNS)}] + pod, not the DQN's features"
                )
            values = self._heuristic_scores(batch, self._pod_specs(batch, pods), mask)
            return values[0] if single else values
        if native:
            node_features, pod_features = batch, pods
        else:
            node_features, pod_features = self._features_from_state(batch, pods)
        values = self.model.q_values(pod_features, node_features, mask)
        values = np.asarray(values, dtype=np.float32).reshape(b, k)
        return values[0] if single else values

    def _heuristic_scores(self, batch: np.ndarray, specs: list, mask: np.ndarray | None):
        """The served heuristic's scores per batch item (infeasible nodes at the DQN's masked
        value, so a client ranks both kinds alike)."""
        from components.placement.dqn.inputs import NodeState
        from components.placement.dqn.network import MASKED_Q
        from components.placement.policy_spec import score_node_state

        policy = self.model.build()
        values = np.stack(
            [
                score_node_state(policy, NodeState(state.astype(np.float64)), spec)
                for state, spec in zip(batch, specs, strict=True)
            ]
        ).astype(np.float32)
        return values if mask is None else np.where(mask, values, np.float32(MASKED_Q))

    def _features_from_state(
        self, batch: np.ndarray, pods: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        from components.placement.dqn.inputs import NodeState, policy_inputs

        pod_rows, node_rows = [], []
        for state, spec in zip(batch, self._pod_specs(batch, pods), strict=True):
            pod_row, node_row = policy_inputs(NodeState(state), spec)
            pod_rows.append(pod_row)
            node_rows.append(node_row)
        return np.stack(node_rows), np.stack(pod_rows)

    def _pod_specs(self, batch: np.ndarray, pods: np.ndarray) -> list:
        """The pods of a ``node_state`` request, after checking both inputs' values."""
        from components.placement.policy import PodSpec

        bad = ~np.isfinite(pods).all(axis=1) | (pods < 0).any(axis=1)
        if bad.any():
            raise InvalidInput(
                f"model {self.name}: pod row {int(np.argmax(bad))}: requests must be finite and "
                f"non-negative ({', '.join(POD_COLUMNS)})"
            )
        capacity = batch[:, :, [NODE_STATE_COLUMNS.index(name) for name in _CAPACITIES]]
        bad_nodes = ~np.isfinite(batch).all(axis=2) | ~(capacity > 0).all(axis=2)
        if bad_nodes.any():
            where = np.argwhere(bad_nodes)[0]
            raise InvalidInput(
                f"model {self.name}: node_state row {int(where[-1])}"
                + (f" of batch item {int(where[0])}" if len(batch) > 1 else "")
                + f": values must be finite, {' and '.join(_CAPACITIES)} must be positive"
            )
        return [
            PodSpec("request", float(pod[0]), float(pod[1]), int(round(float(pod[2]))))
            for pod in pods
        ]

    def predict_v1(self, instances: list) -> list:
        node_width, pod_width = self._sizes()
        out = []
        for index, instance in enumerate(instances):
            where = f"instance {index}"
            if not isinstance(instance, dict):
                raise InvalidInput(
                    f"model {self.name}: {where} must be an object with 'node_state' and 'pod'"
                )
            native = "node_features" in instance
            names = ("node_features", "pod_features") if native else ("node_state", "pod")
            width = node_width if native else len(NODE_STATE_COLUMNS)
            pod_size = pod_width if native else len(POD_COLUMNS)
            nodes = v1_array(
                self.name, where, instance.get(names[0]), TensorSpec(names[0], "FP32", (-1, width))
            )
            pod = v1_array(
                self.name, where, instance.get(names[1]), TensorSpec(names[1], "FP32", (pod_size,))
            )
            feasible = instance.get("feasible")
            if feasible is not None:
                if not isinstance(feasible, list) or not all(isinstance(v, bool) for v in feasible):
                    raise InvalidInput(f"model {self.name}: {where}: 'feasible' must be booleans")
                feasible = np.array(feasible, dtype=bool)
            values = self._q_values(nodes, pod[None], feasible, native=native, names=names)
            out.append([float(v) for v in values])
        return out


MODEL_CLASSES: dict[str, type[ServedModel]] = {
    FORECASTER: NodeLoadForecasterModel,
    ANOMALY_DETECTOR: NodeAnomalyModel,
    PLACEMENT_POLICY: PlacementDqnModel,
}
