"""The anomaly training entrypoint against a real MLflow tracking server: logging, registry and
the promotion gate."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest

from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.model_contracts import ANOMALY_MODEL

pytestmark = pytest.mark.integration

MODEL = ANOMALY_MODEL
END = int(pd.Timestamp("2026-01-05T00:00:00Z").timestamp())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> SyntheticDataset:
    root = tmp_path_factory.mktemp("anomaly-data") / "cluster"
    config = HistoryConfig(
        nodes=3, days=3, step_seconds=120, seed=11, end_epoch=END, anomalies_per_node_day=1.0
    )
    generate_synthetic_cluster(config, root, workload_days=1, openmetrics=False, progress=False)
    return SyntheticDataset(root)


def train(dataset: SyntheticDataset, url: str, tmp: Path, *extra: str) -> dict[str, str]:
    """Train a candidate, then the pipeline's evaluate and promote stages on its result file:
    the printed figures, the result file's ids and the promote stage's verdict."""
    import json

    from components.anomaly.train import main
    from components.pipeline_steps.steps import evaluate_step, promote_step

    number = len(list(tmp.iterdir()))
    result = tmp / f"result-{number}.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(
            [
                "--metrics",
                str(dataset.node_metrics),
                "--labels",
                str(dataset.anomaly_labels),
                "--tracking-uri",
                url,
                "--n-estimators",
                "20",
                "--register",
                "--result-file",
                str(result),
                *extra,
            ]
        )
    text = buffer.getvalue()
    (tmp / f"out-{number}.txt").write_text(text)
    assert code == 0, text
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    document = json.loads(result.read_text())
    values |= {k: document[k] for k in ("run_id", "registered_version")}
    evaluate_step({"anomaly": result}, url, tmp / "decisions.json")
    promoted = promote_step(tmp / "decisions.json", url)["anomaly"]["promoted"]
    return {**values, "promoted": str(promoted).lower()}


def test_training_logs_registers_and_gates(mlflow_server, dataset, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from components.anomaly.model import load_anomaly_detector
    from components.contracts import read_node_metrics
    from components.model_contracts import ANOMALY_DETECTOR

    first = train(dataset, mlflow_server, tmp_path)
    for name in ("event_precision", "window_recall", "point_fpr", "event_f1"):
        assert name in first and f"baseline_{name}" in first
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(first["run_id"])
    assert float(run.data.metrics["window_recall"]) == pytest.approx(
        float(first["window_recall"]), abs=1e-6
    )
    assert "baseline_event_f1" in run.data.metrics
    assert run.data.params["n_estimators"] == "20"
    assert len(run.data.tags["dataset_digest"]) == 16
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert "plots/anomaly_score_timeline.png" in artifacts
    assert client.list_artifacts(first["run_id"], "promotion")
    assert run.data.tags["promotion.promoted"] == first["promoted"]

    version = first["registered_version"]
    promoted = first["promoted"] == "true"
    f1, baseline_f1 = float(first["event_f1"]), float(first["baseline_event_f1"])
    # the gate's false-positive ceiling holds whatever the F1
    within = float(first["point_fpr"]) <= dict(ANOMALY_DETECTOR.ceilings)["point_fpr"]
    assert promoted == (f1 > baseline_f1 and within)
    if promoted:
        assert client.get_model_version_by_alias(MODEL, "champion").version == version

    # A candidate that raises no event (F1 = 0) never beats the baseline or the champion.
    worse = train(dataset, mlflow_server, tmp_path, "--min-duration-seconds", str(30 * 86_400))
    assert float(worse["event_f1"]) == 0.0
    assert worse["promoted"] == "false"
    if promoted:
        assert client.get_model_version_by_alias(MODEL, "champion").version == version

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    detector = load_anomaly_detector(f"models:/{MODEL}/{version}")
    metrics = read_node_metrics(dataset.node_metrics)
    scored = detector.score(metrics[metrics["node"] == metrics["node"].iloc[0]])
    assert list(scored.columns) == ["node", "timestamp", "score", "alarm"]
    assert len(scored) == int((metrics["node"] == metrics["node"].iloc[0]).sum())
