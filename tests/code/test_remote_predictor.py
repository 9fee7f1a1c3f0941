"""The extender's client of the served forecaster adapts to the champion's horizons and
resources, as the forecaster's v2 outputs name them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scheduler_client.remote import InferenceError, RemoteNodePredictor


class RecordedV2Answers:
    """Answers of a v2 model server, per model, as ``V2Client.infer`` returns them."""

    def __init__(self, answers: dict[str, dict[str, np.ndarray]]):
        self.answers = answers

    def infer(self, model: str, inputs: dict) -> dict[str, np.ndarray]:
        return self.answers[model]

    def metadata(self, model: str) -> dict:
        return {"name": model, "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}]}


SNAPSHOT = pd.DataFrame(
    {"cpu_utilization": [0.2, 0.7], "memory_utilization": [0.5, np.nan]},
    index=pd.Index(["a", "b"], name="node"),
)


def predictor(forecast: dict[str, np.ndarray]) -> RemoteNodePredictor:
    answers = {"node-load-forecaster": forecast, "node-anomaly-detector": {}}
    return RemoteNodePredictor(RecordedV2Answers(answers))


def test_horizons_come_from_the_forecasters_output_and_a_missing_resource_persists():
    forecast = {
        "cpu": np.array([[0.3], [0.6]], np.float32),
        "cpu_p90": np.array([[0.4], [0.8]], np.float32),
        "horizon_seconds": np.array([900.0], np.float32),
    }
    got = predictor(forecast).predict(SNAPSHOT)
    assert got.horizons_seconds == (900.0,)
    np.testing.assert_allclose(got.cpu_p90, [[0.4], [0.8]], rtol=1e-6)
    np.testing.assert_allclose(got.memory_p90, [[0.5], [np.nan]])


def test_without_named_horizons_the_default_three_are_expected():
    p90 = np.full((2, 3), 0.5, np.float32)
    got = predictor({"cpu_p90": p90, "memory_p90": p90}).predict(SNAPSHOT)
    assert got.horizons_seconds == (300.0, 900.0, 1800.0)
    with pytest.raises(InferenceError, match=r"'cpu_p90' has shape \(2, 1\), expected \(2, 3\)"):
        predictor({"cpu_p90": p90[:, :1]}).predict(SNAPSHOT)


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        ({"horizon_seconds": np.array([900.0, 300.0])}, "must be ascending"),
        ({"horizon_seconds": np.array([300.0])}, "no output 'cpu_p90'"),
    ],
)
def test_unusable_forecaster_answers_are_named(forecast, message):
    with pytest.raises(InferenceError, match=message):
        predictor(forecast).predict(SNAPSHOT)
