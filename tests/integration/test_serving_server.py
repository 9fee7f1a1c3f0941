"""The predictors behind a real kserve ModelServer in a subprocess (``python -m serving serve``):
readiness, v1 and v2 over HTTP, the scheduler client's v2 calls, tritonclient as an independent
v2 client (JSON and binary tensors), and bad requests answered 400 while the server stays up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import requests

from components.contracts import NODE
from components.features.definitions import FEATURE_NAMES
from serving.predictors import (
    ANOMALY_DETECTOR,
    FORECASTER,
    PLACEMENT_POLICY,
    NodeAnomalyModel,
    NodeLoadForecasterModel,
    PlacementDqnModel,
)
from tests.code.test_serving_models import (
    GIB,
    call,
    node_state,
    outputs_of,
    tensor,
    tiny_models,
    v2_request,
)

pytestmark = pytest.mark.integration

MODELS = (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_POLICY)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    features = tiny_models().features.groupby(NODE).tail(2)
    matrix = features[list(FEATURE_NAMES)].to_numpy(np.float32)
    matrix[1, :10] = np.nan
    return matrix


def test_readiness_endpoints(model_server):
    assert requests.get(f"{model_server}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{model_server}/v2/health/ready", timeout=5).json() == {"ready": True}
    for name in MODELS:
        assert requests.get(f"{model_server}/v2/models/{name}/ready", timeout=5).status_code == 200
        assert requests.get(f"{model_server}/v1/models/{name}", timeout=5).json()["ready"] is True
        metadata = requests.get(f"{model_server}/v2/models/{name}", timeout=5).json()
        assert metadata["name"] == name and metadata["inputs"] and metadata["outputs"]
    assert (
        requests.get(f"{model_server}/v2/models/no-such-model/ready", timeout=5).status_code == 404
    )


def test_v2_forecaster_over_http_matches_in_process(model_server, rows):
    body = {"id": "r1", "inputs": [tensor("features", rows)]}
    response = requests.post(f"{model_server}/v2/models/{FORECASTER}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["model_name"] == FORECASTER and document["id"] == "r1"
    outputs = {o["name"]: o for o in document["outputs"]}
    assert outputs["cpu_p90"]["shape"] == [len(rows), 3]
    assert outputs["cpu_p90"]["datatype"] == "FP32"
    local = outputs_of(
        call(
            NodeLoadForecasterModel(model=tiny_models().forecaster),
            v2_request(FORECASTER, tensor("features", rows)),
        )
    )
    got = np.asarray(outputs["memory_p90"]["data"], np.float32).reshape(len(rows), 3)
    np.testing.assert_allclose(got, local["memory_p90"], rtol=1e-6)


def test_scheduler_client_v2_calls_get_the_contract_shapes(model_server, rows):
    from scheduler_client.remote import V2Client

    client = V2Client(model_server, timeout_seconds=30)
    assert client.ready() and all(client.ready(name) for name in MODELS)
    forecast = client.infer(FORECASTER, {"features": rows})
    assert forecast["cpu_p90"].shape == forecast["memory_p90"].shape == (len(rows), 3)
    state = node_state(6)
    pod = np.array([[2.0, 4 * GIB, 0.0]], np.float32)
    q = client.infer(PLACEMENT_POLICY, {"node_state": state, "pod": pod})["q_values"]
    local = call(
        PlacementDqnModel(model=tiny_models().dqn),
        v2_request(PLACEMENT_POLICY, tensor("node_state", state), tensor("pod", pod)),
    )
    np.testing.assert_allclose(q, outputs_of(local)["q_values"], rtol=1e-5)
    detector = NodeAnomalyModel(model=tiny_models().detector)
    anomaly_rows = tiny_models().anomaly_features[list(detector.feature_names)].tail(5)
    anomaly = client.infer(ANOMALY_DETECTOR, {"features": anomaly_rows.to_numpy(np.float32)})
    assert anomaly["score"].shape == anomaly["alarm"].shape == (5,)
    assert anomaly["alarm"].dtype == bool


def test_v1_over_http(model_server, rows):
    clean = np.nan_to_num(rows[:2]).tolist()
    response = requests.post(
        f"{model_server}/v1/models/{FORECASTER}:predict", json={"instances": clean}, timeout=30
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and "cpu_30m_p90" in predictions[0]
    instance = {"node_state": node_state(3).tolist(), "pod": [1.0, GIB, 0]}
    response = requests.post(
        f"{model_server}/v1/models/{PLACEMENT_POLICY}:predict",
        json={"instances": [instance]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"][0]) == 3


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_as_an_independent_v2_client(model_server, rows, binary):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=model_server.removeprefix("http://"))
    try:
        assert client.is_server_ready() and client.is_model_ready(FORECASTER)
        metadata = client.get_model_metadata(FORECASTER)
        assert metadata["inputs"][0]["shape"] == [-1, len(FEATURE_NAMES)]
        features = triton.InferInput("features", list(rows.shape), "FP32")
        features.set_data_from_numpy(rows, binary_data=binary)
        wanted = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("cpu_p90", "cpu")]
        result = client.infer(FORECASTER, [features], outputs=wanted)
        p90, point = result.as_numpy("cpu_p90"), result.as_numpy("cpu")
        assert p90.shape == point.shape == (len(rows), 3) and p90.dtype == np.float32
        assert np.isnan(p90[1]).all()  # no current CPU utilisation: no forecast, sent as null
        assert np.all(p90[~np.isnan(p90)] >= point[~np.isnan(point)])
        expected = tiny_models().forecaster.predict(pd.DataFrame(rows, columns=list(FEATURE_NAMES)))
        np.testing.assert_allclose(p90[:, 2], expected["cpu_30m_p90"], rtol=1e-6)
        state = node_state(4)
        inputs = [
            triton.InferInput("node_state", list(state.shape), "FP32"),
            triton.InferInput("pod", [1, 3], "FP32"),
        ]
        inputs[0].set_data_from_numpy(state, binary_data=binary)
        inputs[1].set_data_from_numpy(np.array([[1.0, GIB, 0.0]], np.float32), binary_data=binary)
        q = client.infer(PLACEMENT_POLICY, inputs).as_numpy("q_values")
        assert q.shape == (4,) and np.all(np.isfinite(q))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (
            FORECASTER,
            {"inputs": [tensor("other", np.zeros((1, len(FEATURE_NAMES))))]},
            "unknown input",
        ),
        (
            FORECASTER,
            {"inputs": [tensor("features", np.zeros((2, 5)))]},
            f"expected FP32 [n, {len(FEATURE_NAMES)}]",
        ),
        (
            FORECASTER,
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": [1, len(FEATURE_NAMES)],
                        "datatype": "BOOL",
                        "data": [1],
                    }
                ]
            },
            "features",
        ),
        (FORECASTER, {"outputs": []}, "invalid request body"),
        (FORECASTER, b"{not json", "invalid request body"),
        (PLACEMENT_POLICY, {"inputs": [tensor("pod", np.ones((1, 3)))]}, "missing input"),
        (
            ANOMALY_DETECTOR,
            {"inputs": [tensor("features", np.zeros((1, len(FEATURE_NAMES))))]},
            "expected FP32",
        ),
    ],
)
def test_bad_requests_get_400_with_a_message_and_the_server_stays_up(
    model_server, model, body, message
):
    url = f"{model_server}/v2/models/{model}/infer"
    if isinstance(body, bytes):
        response = requests.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=10
        )
    else:
        response = requests.post(url, json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert requests.get(f"{model_server}/v2/health/ready", timeout=5).status_code == 200


def test_bad_v1_request_gets_400(model_server):
    response = requests.post(
        f"{model_server}/v1/models/{FORECASTER}:predict",
        json={"instances": [[1.0, 2.0]]},
        timeout=10,
    )
    assert response.status_code == 400
    assert f"expected {len(FEATURE_NAMES)}" in response.json()["error"]
