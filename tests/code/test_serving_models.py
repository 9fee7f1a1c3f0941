"""KServe predictors with real models trained in seconds on a tiny synthetic cluster: v1 and v2
inference through kserve's own request path, loading from folders and the MLflow registry, and
bad requests answered with InvalidInput (HTTP 400)."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kserve import InferRequest
from kserve.errors import InvalidInput
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from components.anomaly.ensemble import member_features
from components.contracts import NODE, TIMESTAMP
from components.features.definitions import FEATURE_NAMES
from serving.predictors import (
    ANOMALY_DETECTOR,
    FORECASTER,
    PLACEMENT_POLICY,
    NodeAnomalyModel,
    NodeLoadForecasterModel,
    PlacementDqnModel,
)

END_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
GIB = 1024.0**3


@dataclass
class TinyModels:
    forecaster: object
    detector: object
    dqn: object
    features: pd.DataFrame  # the node features (+ node, timestamp)
    anomaly_features: pd.DataFrame  # the detector's own features (+ node, timestamp)


@functools.cache
def tiny_models() -> TinyModels:
    """A forecaster, an anomaly detector and a DQN trained on 4 nodes x 2 days (~15 s)."""
    from components.anomaly.detector import fit_detector
    from components.anomaly.ensemble import EnsembleConfig
    from components.contracts import validate_nodes_table, validate_workload_trace
    from components.features.anomaly_statistics import anomaly_features
    from components.forecast.dataset import build_forecast_dataset, time_split
    from components.forecast.model import ForecastParams, train_forecaster
    from components.generate.cluster import make_nodes, nodes_table
    from components.generate.history import (
        HistoryConfig,
        generate_node,
        latent_factors,
        node_metrics_frame,
    )
    from components.generate.workload import WorkloadConfig, generate_workload
    from components.placement.dqn.training import TrainConfig, train_dqn
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    config = HistoryConfig(nodes=4, days=2, step_seconds=300, seed=1, end_epoch=END_EPOCH)
    factors = latent_factors(config)
    histories = [generate_node(config, node, factors) for node in make_nodes(4, config.seed)]
    metrics = node_metrics_frame(config, histories)
    dataset = build_forecast_dataset(metrics, ("5m", "15m", "30m"), step_seconds=300)
    params = ForecastParams(
        n_estimators=8,
        max_depth=3,
        n_jobs=1,
        early_stopping_rounds=3,
        quantile_early_stopping_rounds=3,
    )
    forecaster = train_forecaster(dataset, time_split(dataset, 0.7), params, progress=False)
    detector_features = anomaly_features(metrics, step_seconds=300)
    detector = fit_detector(
        detector_features, EnsembleConfig(n_estimators=10, max_samples=64), 0.01, 300
    )
    nodes = validate_nodes_table(nodes_table(make_nodes(4, seed=2)))
    trace = generate_workload(WorkloadConfig(END_EPOCH, 0.05, 60, 2), nodes)
    trained = train_dqn(
        workload_from_trace(validate_workload_trace(trace)),
        cluster_from_nodes(nodes),
        TrainConfig(episodes=2, validate_every=2, hidden=16, embedding=8, window_seconds=1800),
    )
    return TinyModels(forecaster, detector, trained.policy(), dataset.features, detector_features)


def save_tiny_models(root: Path) -> Path:
    """Each tiny model saved in its own format under ``root/<served model name>``."""
    from components.anomaly.model import save_detector
    from components.placement.dqn.policy import save_dqn_model

    models = tiny_models()
    models.forecaster.save(root / FORECASTER)
    save_detector(models.detector, root / ANOMALY_DETECTOR)
    save_dqn_model(models.dqn.network, root / PLACEMENT_POLICY)
    return root


def node_state(k: int, seed: int = 0) -> np.ndarray:
    """k plausible rows of NODE_STATE_COLUMNS (float32)."""
    from components.model_contracts import NODE_STATE_COLUMNS
    from components.placement.dqn.inputs import NodeState

    rng = np.random.default_rng(seed)
    cpu = rng.choice([4.0, 8.0, 16.0, 32.0], k)
    memory = cpu * 4 * GIB
    gpus = rng.choice([0.0, 0.0, 0.0, 4.0], k)
    columns = {name: rng.uniform(0.05, 0.95, k) for name in NODE_STATE_COLUMNS}  # utilisation
    columns.update(
        cpu_capacity_cores=cpu,
        memory_capacity_bytes=memory,
        gpu_capacity=gpus,
        gpus_requested=np.minimum(gpus, rng.integers(0, 3, k)),
        cpu_requested_cores=rng.uniform(0.0, 0.9, k) * cpu,
        memory_requested_bytes=rng.uniform(0.0, 0.9, k) * memory,
        pod_count=rng.integers(0, 30, k),
        cpu_pending_cores=rng.uniform(0.0, 0.2, k) * cpu,
        memory_pending_bytes=rng.uniform(0.0, 0.2, k) * memory,
    )
    return NodeState.from_columns(**columns).values.astype(np.float32)


def tensor(name: str, array: np.ndarray, datatype: str | None = None) -> dict:
    array = np.asarray(array)
    if datatype is None:
        datatype = "BOOL" if array.dtype == bool else "FP32"
    data = [None if isinstance(v, float) and np.isnan(v) else v for v in array.ravel().tolist()]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def v2_request(model: str, *inputs: dict) -> InferRequest:
    """A v2 request decoded exactly as kserve's REST endpoint decodes a JSON body."""
    body = InferenceRequest.model_validate({"id": "t", "inputs": list(inputs)})
    return InferRequest.from_inference_request(body, model)


def call(model, payload):
    """Through kserve's Model.__call__ (preprocess -> validate -> predict -> postprocess)."""
    response, _ = asyncio.run(model(payload, {}))
    return response


def outputs_of(response) -> dict[str, np.ndarray]:
    """Outputs as the scheduler client parses the REST JSON of a v2 response."""
    from scheduler_client.remote import parse_outputs

    document, _ = response.to_rest()
    return parse_outputs(response.model_name, document)


@pytest.fixture(scope="module")
def models() -> TinyModels:
    return tiny_models()


@pytest.fixture(scope="module")
def feature_rows(models) -> pd.DataFrame:
    """The last feature row of each node plus rows with missing values (NaN)."""
    last = models.features.groupby(NODE).tail(3).reset_index(drop=True)
    return last


def test_forecaster_v2_batch_matches_the_model_and_keeps_nan(models, feature_rows):
    served = NodeLoadForecasterModel(model=models.forecaster)
    assert served.ready and served.name == FORECASTER
    matrix = feature_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    matrix[0, 5] = np.nan  # a missing feature travels as null
    response = call(served, v2_request(FORECASTER, tensor("features", matrix)))
    outputs = outputs_of(response)
    assert set(outputs) == {"cpu", "cpu_p90", "memory", "memory_p90", "horizon_seconds"}
    assert outputs["horizon_seconds"].tolist() == [300.0, 900.0, 1800.0]
    frame = pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
    expected = models.forecaster.predict(frame)
    for resource in ("cpu", "memory"):
        for suffix in ("", "_p90"):
            got = outputs[f"{resource}{suffix}"]
            assert got.shape == (len(matrix), 3)
            want = expected[[f"{resource}_{h}{suffix}" for h in ("5m", "15m", "30m")]]
            np.testing.assert_allclose(got, want.to_numpy(np.float32), rtol=1e-6)
    assert np.all(outputs["cpu_p90"] >= outputs["cpu"])
    assert [h for h in served.horizons_seconds] == [300, 900, 1800]


def test_forecaster_v1_accepts_lists_and_objects(models, feature_rows):
    served = NodeLoadForecasterModel(model=models.forecaster)
    matrix = feature_rows[list(FEATURE_NAMES)].to_numpy(np.float64)[:2]
    as_list = call(served, {"instances": matrix.tolist()})
    as_objects = call(
        served, {"instances": [dict(zip(FEATURE_NAMES, row, strict=True)) for row in matrix]}
    )
    assert as_list == as_objects
    predictions = as_list["predictions"]
    assert len(predictions) == 2
    expected = models.forecaster.predict(pd.DataFrame(matrix, columns=list(FEATURE_NAMES)))
    assert predictions[1]["memory_30m_p90"] == pytest.approx(expected["memory_30m_p90"][1])
    assert set(predictions[0]) == set(models.forecaster.output_columns)


def test_anomaly_v2_scores_like_the_detector_in_the_callers_row_order(models):
    served = NodeAnomalyModel(model=models.detector)
    names = list(served.feature_names)
    rows = models.anomaly_features.groupby(NODE).tail(2).sample(frac=1.0, random_state=3)
    matrix = rows[names].to_numpy(np.float32)
    nodes = rows[NODE].astype(str).to_numpy(dtype=object)
    seconds = rows[TIMESTAMP].astype("int64").to_numpy() / 1e9
    response = call(
        served,
        v2_request(
            ANOMALY_DETECTOR,
            tensor("features", matrix),
            {"name": "node", "shape": [len(nodes)], "datatype": "BYTES", "data": list(nodes)},
            tensor("timestamp", seconds, "FP64"),
        ),
    )
    outputs = outputs_of(response)
    frame = pd.DataFrame(matrix.astype(np.float64), columns=names)
    frame.insert(0, NODE, nodes.astype(str))
    frame.insert(1, TIMESTAMP, pd.to_datetime(seconds, unit="s", utc=True))
    expected = models.detector.score(frame).set_index([NODE, TIMESTAMP])
    keys = list(zip(frame[NODE], frame[TIMESTAMP], strict=True))
    want_raw = expected.loc[keys, "score"].to_numpy()
    np.testing.assert_allclose(outputs["raw_score"], want_raw, rtol=1e-5)
    np.testing.assert_array_equal(outputs["alarm"], expected.loc[keys, "alarm"].to_numpy())
    threshold = models.detector.threshold
    np.testing.assert_allclose(
        outputs["score"], 1 + (want_raw - threshold) / abs(threshold), rtol=1e-5
    )
    assert outputs["score"].shape == (len(rows),)


def test_anomaly_v1_without_node_names_scores_each_row_alone(models):
    served = NodeAnomalyModel(model=models.detector)
    names = list(served.feature_names)
    rows = models.anomaly_features.tail(3)
    one_by_one = [
        call(served, {"instances": [rows[names].iloc[i].tolist()]})["predictions"][0]
        for i in range(3)
    ]
    batch = call(served, {"instances": rows[names].to_numpy().tolist()})["predictions"]
    for single, batched in zip(one_by_one, batch, strict=True):
        assert single["raw_score"] == pytest.approx(batched["raw_score"], rel=1e-5)
        assert single["alarm"] == batched["alarm"] == (single["score"] > 1.0)


def test_dqn_v2_node_state_matches_the_policy_on_the_record(models):
    from components.placement.dqn.inputs import NodeState, policy_inputs
    from components.placement.dqn.network import MASKED_Q
    from components.placement.policy import PodSpec

    served = PlacementDqnModel(model=models.dqn)
    state = node_state(7)
    pod = np.array([[1.5, 2 * GIB, 0.0]], dtype=np.float32)
    feasible = np.array([True] * 6 + [False])
    response = call(
        served,
        v2_request(
            PLACEMENT_POLICY,
            tensor("node_state", state),
            tensor("pod", pod),
            tensor("feasible", feasible),
        ),
    )
    q = outputs_of(response)["q_values"]
    assert q.shape == (7,)
    spec = PodSpec("request", 1.5, 2 * GIB, 0)
    want = models.dqn.q_values(*policy_inputs(NodeState(state), spec), feasible)
    np.testing.assert_allclose(q, want, rtol=1e-5)
    assert q[6] == pytest.approx(MASKED_Q)
    assert np.all(np.isfinite(q[:6])) and np.all(q[:6] > MASKED_Q / 2)


def test_dqn_v2_batches_pods_and_accepts_native_features(models):
    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES

    served = PlacementDqnModel(model=models.dqn)
    states = np.stack([node_state(5, seed=1), node_state(5, seed=2)])
    pods = np.array([[0.5, GIB, 0.0], [4.0, 8 * GIB, 1.0]], dtype=np.float32)
    batched = outputs_of(
        call(
            served,
            v2_request(PLACEMENT_POLICY, tensor("node_state", states), tensor("pod", pods)),
        )
    )["q_values"]
    assert batched.shape == (2, 5)
    for i in range(2):
        single = outputs_of(
            call(
                served,
                v2_request(
                    PLACEMENT_POLICY,
                    tensor("node_state", states[i]),
                    tensor("pod", pods[i : i + 1]),
                ),
            )
        )["q_values"]
        np.testing.assert_allclose(batched[i], single, rtol=1e-5)
    rng = np.random.default_rng(0)
    nodes = rng.uniform(-1, 1, (6, N_NODE_FEATURES)).astype(np.float32)
    pod = rng.uniform(0, 1, (1, N_POD_FEATURES)).astype(np.float32)
    native = outputs_of(
        call(
            served,
            v2_request(
                PLACEMENT_POLICY, tensor("node_features", nodes), tensor("pod_features", pod)
            ),
        )
    )["q_values"]
    np.testing.assert_allclose(native, models.dqn.q_values(pod[0], nodes), rtol=1e-5)
    v1 = call(served, {"instances": [{"node_state": states[0].tolist(), "pod": pods[0].tolist()}]})
    np.testing.assert_allclose(v1["predictions"][0], batched[0], rtol=1e-5)


def test_models_load_from_saved_folders_and_report_readiness(models, tmp_path, feature_rows):
    root = save_tiny_models(tmp_path)
    loaded = [
        NodeLoadForecasterModel(source=root / FORECASTER),
        NodeAnomalyModel(source=root / ANOMALY_DETECTOR),
        PlacementDqnModel(source=root / PLACEMENT_POLICY),
    ]
    for model in loaded:
        assert not model.ready and not asyncio.run(model.healthy())
        assert model.load() and asyncio.run(model.healthy())
        assert model.get_input_types() and model.get_output_types()
    matrix = feature_rows[list(FEATURE_NAMES)].to_numpy(np.float32)
    request = v2_request(FORECASTER, tensor("features", matrix))
    loaded[0].set_threads(1)
    fresh = outputs_of(call(loaded[0], request))
    injected = outputs_of(call(NodeLoadForecasterModel(model=models.forecaster), request))
    np.testing.assert_allclose(fresh["cpu_p90"], injected["cpu_p90"], rtol=1e-6)
    assert loaded[1].model.threshold == pytest.approx(models.detector.threshold)
    state, pod = node_state(4), np.array([[1.0, GIB, 0.0]], np.float32)
    request = v2_request(PLACEMENT_POLICY, tensor("node_state", state), tensor("pod", pod))
    np.testing.assert_allclose(
        outputs_of(call(loaded[2], request))["q_values"],
        outputs_of(call(PlacementDqnModel(model=models.dqn), request))["q_values"],
        rtol=1e-6,
    )


def test_a_missing_folder_is_a_clear_error(tmp_path):
    from components.errors import MlschedError

    model = PlacementDqnModel(source=tmp_path / "nothing-here")
    with pytest.raises(MlschedError, match="nothing-here"):
        model.load()
    assert not model.ready


def test_models_load_from_the_mlflow_registry_champion_alias(models, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from serving.manifests import champion_uri

    root = save_tiny_models(tmp_path / "saved")
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("serving", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    for name in (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_POLICY):
        client.log_artifacts(run.info.run_id, str(root / name), artifact_path=name)
        client.create_registered_model(name)
        version = client.create_model_version(
            name, f"runs:/{run.info.run_id}/{name}", run_id=run.info.run_id
        )
        client.set_registered_model_alias(name, "champion", version.version)
    client.set_terminated(run.info.run_id)
    assert mlflow.get_tracking_uri() != tracking_uri  # nothing global was set
    for cls in (NodeLoadForecasterModel, NodeAnomalyModel, PlacementDqnModel):
        served = cls(source=f"models:/{cls.default_name}@champion", tracking_uri=tracking_uri)
        assert served.load() and served.ready
    assert champion_uri(client, FORECASTER) == f"models:/{FORECASTER}/1"


# The detector's feature vector width (default resources, as the tiny detector is fitted).
ANOMALY_WIDTH = len(
    {name: None for names in member_features(("cpu", "memory")).values() for name in names}
)

BAD_V2 = [
    (FORECASTER, [], "missing input 'features'"),
    (
        FORECASTER,
        [tensor("features", np.zeros((2, 96)))],
        rf"shape \[2, 96\], expected FP32 \[n, {len(FEATURE_NAMES)}\]",
    ),
    (FORECASTER, [tensor("features", np.zeros(97))], r"shape \[97\]"),
    (
        FORECASTER,
        [{"name": "features", "shape": [1, 97], "datatype": "BYTES", "data": ["x"] * 97}],
        "datatype BYTES",
    ),
    (
        FORECASTER,
        [{"name": "features", "shape": [2, 97], "datatype": "FP32", "data": [0.0] * 97}],
        "does not fit",
    ),
    (
        FORECASTER,
        [{"name": "features", "shape": [1, 97], "datatype": "FP32", "data": ["a"] * 97}],
        "does not fit",
    ),
    (FORECASTER, [tensor("features", np.zeros((1, 97))), tensor("extra", np.zeros(1))], "unknown"),
    (
        ANOMALY_DETECTOR,
        [tensor("features", np.zeros((1, 3)))],
        rf"expected FP32 \[n, {ANOMALY_WIDTH}\]",
    ),
    (
        ANOMALY_DETECTOR,
        [
            tensor("features", np.zeros((2, ANOMALY_WIDTH))),
            tensor("timestamp", np.zeros(3), "FP64"),
        ],
        "'timestamp' has 3 rows",
    ),
    (PLACEMENT_POLICY, [tensor("node_state", node_state(3))], "missing input 'pod'"),
    (
        PLACEMENT_POLICY,
        [tensor("node_state", node_state(3)), tensor("pod", np.ones((1, 2)))],
        r"'pod' has shape \[1, 2\]",
    ),
    (
        PLACEMENT_POLICY,
        [tensor("node_state", np.zeros_like(node_state(3))), tensor("pod", np.ones((1, 3)))],
        "must be positive",
    ),
    (
        PLACEMENT_POLICY,
        [
            tensor("node_state", node_state(3)),
            tensor("pod", np.ones((1, 3))),
            tensor("feasible", np.ones(2, bool)),
        ],
        "'feasible' has shape",
    ),
    (
        PLACEMENT_POLICY,
        [tensor("node_state", node_state(3)), tensor("pod", np.array([[1.0, -1.0, 0.0]]))],
        "non-negative",
    ),
]


@pytest.mark.parametrize(("name", "inputs", "message"), BAD_V2)
def test_bad_v2_requests_raise_invalid_input(models, name, inputs, message):
    served = {
        FORECASTER: NodeLoadForecasterModel(model=models.forecaster),
        ANOMALY_DETECTOR: NodeAnomalyModel(model=models.detector),
        PLACEMENT_POLICY: PlacementDqnModel(model=models.dqn),
    }[name]
    with pytest.raises(InvalidInput, match=message) as error:
        call(served, v2_request(name, *inputs))
    assert name in str(error.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"inputs": []}, "'instances' list"),
        ({"instances": [[0.0] * 5]}, f"5 values, expected {len(FEATURE_NAMES)}"),
        ({"instances": [{"no_such_feature": 1.0}]}, "unknown field"),
        ({"instances": [["x"] * len(FEATURE_NAMES)]}, "numbers or null"),
        ({"instances": ["row"]}, "must be a list"),
    ],
)
def test_bad_v1_requests_raise_invalid_input(models, payload, message):
    served = NodeLoadForecasterModel(model=models.forecaster)
    with pytest.raises(InvalidInput, match=message):
        call(served, payload)


def test_bad_v1_dqn_instance_raises_invalid_input(models):
    served = PlacementDqnModel(model=models.dqn)
    with pytest.raises(
        InvalidInput, match=r"instance 0: .*'pod' has shape \[1\], expected FP32 \[3\]"
    ):
        call(served, {"instances": [{"node_state": node_state(2).tolist(), "pod": [1.0]}]})


def test_serve_flags_pick_the_model_sources(tmp_path):
    import argparse

    from components.errors import MlschedError
    from serving.cli import add_serve_parser, model_sources

    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))

    def sources(*argv: str) -> dict[str, str]:
        return model_sources(parser.parse_args(["serve", *argv]))

    assert sources() == {
        name: f"models:/{name}@champion"
        for name in (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_POLICY)
    }
    assert sources("--alias", "canary", "--model", PLACEMENT_POLICY) == {
        PLACEMENT_POLICY: f"models:/{PLACEMENT_POLICY}@canary"
    }
    (tmp_path / FORECASTER).mkdir()
    (tmp_path / PLACEMENT_POLICY).mkdir()
    assert sources("--models-from", str(tmp_path)) == {
        FORECASTER: str(tmp_path / FORECASTER),
        PLACEMENT_POLICY: str(tmp_path / PLACEMENT_POLICY),
    }
    with pytest.raises(MlschedError, match="no folder node-anomaly-detector/"):
        sources("--models-from", str(tmp_path), "--model", ANOMALY_DETECTOR)
    with pytest.raises(MlschedError, match="no such folder"):
        sources("--models-from", str(tmp_path / "absent"))
    with pytest.raises(SystemExit):
        sources("--model-uri", "no-equals-sign")


def test_a_heuristic_champion_serves_its_scores_on_the_node_state(tmp_path):
    from components.placement.dqn.inputs import NodeState
    from components.placement.dqn.network import MASKED_Q
    from components.placement.policy import PodSpec, make_policy
    from components.placement.policy_spec import PolicySpec, save_policy_spec, score_node_state

    save_policy_spec(PolicySpec("trimaran-tlp", {"target_percent": 50.0}), tmp_path / "policy")
    served = PlacementDqnModel(source=tmp_path)
    assert served.load()
    state = node_state(5)
    feasible = np.array([True, True, False, True, True])
    pod = np.array([[2.0, 4 * GIB, 0.0]], dtype=np.float32)
    request = v2_request(
        PLACEMENT_POLICY,
        tensor("node_state", state),
        tensor("pod", pod),
        tensor("feasible", feasible),
    )
    scores = outputs_of(call(served, request))["q_values"]
    policy = make_policy("trimaran-tlp", target_percent=50.0)
    want = score_node_state(
        policy, NodeState(state.astype(np.float64)), PodSpec("request", 2.0, 4 * GIB)
    )
    np.testing.assert_allclose(scores[feasible], want[feasible], rtol=1e-6)
    assert scores[2] == pytest.approx(MASKED_Q)
    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES

    native = v2_request(
        PLACEMENT_POLICY,
        tensor("node_features", np.zeros((2, N_NODE_FEATURES), np.float32)),
        tensor("pod_features", np.zeros((1, N_POD_FEATURES), np.float32)),
    )
    with pytest.raises(InvalidInput, match="serves the heuristic trimaran-tlp"):
        call(served, native)
