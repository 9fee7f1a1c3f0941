"""Forecaster training against a real ``mlflow server``: logging, registry and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from components.contracts import write_node_metrics
from components.forecast import train
from components.forecast.dataset import build_forecast_dataset
from components.forecast.model import load_forecaster
from components.model_contracts import FORECASTER_MODEL
from tests.code.test_forecast import make_metrics

pytestmark = pytest.mark.integration

MODEL = FORECASTER_MODEL
FAST = ["--n-estimators", "30", "--max-train-rows", "3000", "--quiet"]


@pytest.fixture(scope="module")
def metrics_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("forecast-data")
    return write_node_metrics(make_metrics(nodes=3, days=3, step=300), folder / "metrics.csv")


def run_train(capsys, url: str, metrics: Path, folder: Path, *extra: str) -> dict[str, str]:
    """Train a candidate, then the pipeline's evaluate and promote stages on its result file;
    the printed figures, with ``promoted`` from the promote stage."""
    from components.pipeline_steps.steps import evaluate_step, promote_step

    result = folder / f"result-{len(list(folder.glob('result-*')))}.json"
    argv = ["--metrics", str(metrics), "--tracking-uri", url, "--register", *FAST, *extra]
    assert train.main([*argv, "--result-file", str(result)]) == 0
    lines = capsys.readouterr().out.splitlines()
    printed = dict(line.split("=", 1) for line in lines if "=" in line)
    evaluate_step({"forecaster": result}, url, folder / "decisions.json")
    promoted = promote_step(folder / "decisions.json", url)["forecaster"]["promoted"]
    return {**printed, "promoted": str(int(promoted))}


def test_training_logs_registers_and_gates(mlflow_server, metrics_file, capsys, tmp_path):
    printed = run_train(capsys, mlflow_server, metrics_file, tmp_path)
    assert float(printed["validation_mae"]) > 0 and "cpu_15m_skill" in printed
    assert printed["promoted"] == "1"

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["max_depth"] == "5" and len(run.data.tags["dataset_digest"]) == 16
    for name in ("validation_mae", "persistence_mae", "cpu_15m_seasonal_naive_mae"):
        assert name in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/forecast_vs_actual_cpu_15m.png",
        "plots/residuals_memory.png",
        "plots/feature_importance_cpu_15m.png",
    } <= artifacts
    decision_file = client.download_artifacts(
        run.info.run_id, "promotion/champion.json", str(tmp_path)
    )
    decision = json.loads(Path(decision_file).read_text())
    assert decision["promoted"] and set(decision["baselines"]) == {"persistence", "seasonal_naive"}

    forecaster = load_forecaster(f"models:/{MODEL}@champion", tracking_uri=mlflow_server)
    dataset = build_forecast_dataset(make_metrics(nodes=2, days=1.5, step=300, seed=5))
    features = dataset.features.tail(10).reset_index(drop=True)
    predicted = forecaster.predict(features)
    assert {"cpu_5m", "cpu_30m_p90", "memory_15m"} <= set(predicted.columns)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{champion.version}")
    assert model.metadata.signature is not None
    served = model.predict(features.drop(columns=["timestamp"]))
    assert served["cpu_15m"].to_numpy() == pytest.approx(predicted["cpu_15m"].to_numpy())

    # A worse candidate (a single shallow tree) is registered but never becomes champion.
    worse = run_train(
        capsys, mlflow_server, metrics_file, tmp_path, "--max-depth", "1", "--n-estimators", "1"
    )
    assert worse["promoted"] == "0"
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion.version
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 2
