"""The pipeline's evaluate stage given ``evaluation_data``: the forecaster and the anomaly
detector, their baselines and the champion are all scored on the evaluation traces and the gate
decides on those figures, which go, with their plots, to the candidate's MLflow run (a real
local MLflow store: SQLite and its artifact folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.anomaly import train as anomaly_train
from components.contracts import write_node_metrics
from components.datasets.evaluation_sets import shared_data_root
from components.forecast import train as forecast_train
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.model_contracts import ANOMALY_MODEL, FORECASTER_MODEL
from components.pipeline_steps.steps import evaluate_step
from tests.code.test_forecast import make_metrics

pytestmark = pytest.mark.integration

FORECAST_FAST = ["--n-estimators=30", "--resources=cpu", "--horizons=15m", "--quiet"]
SHARED = shared_data_root()
NAB = "nab-ec2-cpu"
needs_nab = pytest.mark.skipif(
    not (SHARED / NAB).is_dir(),
    reason=f"needs the shared real traces ({SHARED}/{NAB}); absent here",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A local MLflow store, forecast training data and a tiny generated (labelled) cluster."""
    root = tmp_path_factory.mktemp("evaluation-data")
    metrics = write_node_metrics(make_metrics(nodes=3, days=3, step=300), root / "metrics.csv")
    end = int(pd.Timestamp("2026-03-03T00:00:00Z").timestamp())
    config = HistoryConfig(nodes=3, days=2, step_seconds=60, seed=3, end_epoch=end)
    generate_synthetic_cluster(
        config, root / "synthetic", workload_days=0.1, openmetrics=False, progress=False
    )
    return {
        "uri": f"sqlite:///{root / 'mlflow.db'}",
        "metrics": metrics,
        "cluster": SyntheticDataset(root / "synthetic"),
        "root": root,
    }


def train_forecaster(store: dict, name: str, *extra: str) -> Path:
    result = store["root"] / f"{name}.json"
    argv = ["--metrics", str(store["metrics"]), "--tracking-uri", store["uri"], "--register"]
    assert forecast_train.main([*argv, *FORECAST_FAST, *extra, "--result-file", str(result)]) == 0
    return result


def train_detector(store: dict, name: str) -> Path:
    cluster, result = store["cluster"], store["root"] / f"{name}.json"
    argv = ["--metrics", str(cluster.node_metrics), "--labels", str(cluster.anomaly_labels)]
    argv += ["--tracking-uri", store["uri"], "--register", "--n-estimators=20"]
    assert anomaly_train.main([*argv, "--result-file", str(result)]) == 0
    return result


def decide(store: dict, results: dict, evaluation_data: str = "") -> dict:
    output = store["root"] / "decisions.json"
    return evaluate_step(results, store["uri"], output, evaluation_data=evaluation_data)


def test_a_candidate_that_wins_on_its_data_but_loses_on_the_evaluation_data_is_kept(
    store, tmp_path
):
    result = train_forecaster(store, "forecaster-steady")
    on_held_out = decide(store, {"forecaster": result})["forecaster"]
    assert on_held_out["promoted"] and on_held_out["evaluated_on"] == ""
    # Steady machines: persistence is exact there, so no model can beat it.
    steady = tmp_path / "steady-fleet"
    stamps = pd.date_range("2026-02-01", periods=3 * 288, freq="5min", tz="UTC")
    frame = pd.concat(
        pd.DataFrame(
            {
                "timestamp": stamps,
                "node": f"vm-{i}",
                "cpu_utilization": 0.2 + 0.1 * i,
                "memory_utilization": 0.5,
            }
        )
        for i in range(2)
    )
    write_node_metrics(frame, steady / "node_metrics.csv")
    decided = decide(store, {"forecaster": result}, str(steady))["forecaster"]
    assert not decided["promoted"] and not decided["beats_baselines"]
    assert decided["baselines"]["persistence"] == 0.0 and decided["candidate"] > 0.0
    assert decided["reason"].startswith("on real trace steady-fleet")
    assert "baseline persistence=0" in decided["reason"]
    run = MlflowClient(store["uri"]).get_run(json.loads(result.read_text())["run_id"])
    assert run.data.metrics["steady-fleet_persistence_mae"] == 0.0


def test_the_champion_is_rescored_on_the_evaluation_data(store, tmp_path):
    from components.datasets.evaluation_sets import load_evaluation_set, parse_evaluation_data
    from components.forecast.model import load_forecaster
    from components.forecast.real_trace import score_on_trace

    client = MlflowClient(store["uri"], registry_uri=store["uri"])
    champion = json.loads(train_forecaster(store, "forecaster-held").read_text())
    client.set_registered_model_alias(FORECASTER_MODEL, "champion", champion["registered_version"])
    result = train_forecaster(store, "forecaster-shallow", "--max-depth=2")
    other = tmp_path / "other-fleet"  # machines like the training ones, never seen
    write_node_metrics(make_metrics(nodes=2, days=3, step=300, seed=7), other / "node_metrics.csv")
    decided = decide(store, {"forecaster": result}, str(other))["forecaster"]

    (evaluation_set,) = parse_evaluation_data(str(other))
    trace = load_evaluation_set(evaluation_set)
    uri = f"models:/{FORECASTER_MODEL}/{champion['registered_version']}"
    held = score_on_trace(load_forecaster(uri), trace.metrics, trace.resources)
    assert decided["beats_baselines"], decided["reason"]
    assert decided["champion_version"] == champion["registered_version"]
    assert decided["champion"] == pytest.approx(held.report["summary"]["model_mean_mae"])
    assert decided["promoted"] == (decided["candidate"] < decided["champion"])
    assert decided["reason"].startswith("on real trace other-fleet")
    candidate_run = client.get_run(json.loads(result.read_text())["run_id"])
    logged = candidate_run.data.metrics["champion_other-fleet_validation_mae"]
    assert logged == pytest.approx(decided["champion"])


@needs_nab
def test_real_traces_decide_for_both_models_and_their_figures_are_logged(store, tmp_path):
    from components.anomaly.model import load_anomaly_detector
    from components.anomaly.real_trace import score_on_trace as score_detector
    from components.datasets.evaluation_sets import load_evaluation_set, parse_evaluation_data
    from components.forecast.model import load_forecaster
    from components.forecast.real_trace import score_on_trace as score_forecaster

    client = MlflowClient(store["uri"], registry_uri=store["uri"])
    champion = json.loads(train_forecaster(store, "forecaster-champion").read_text())
    # A champion whatever its figures (the registry's state before this candidate came).
    client.set_registered_model_alias(FORECASTER_MODEL, "champion", champion["registered_version"])
    forecaster = train_forecaster(store, "forecaster-candidate", "--max-depth=2")
    detector = train_detector(store, "anomaly-candidate")
    decided = decide(store, {"forecaster": forecaster, "anomaly": detector}, NAB)

    (nab,) = parse_evaluation_data(NAB)
    trace = load_evaluation_set(nab)
    candidate = json.loads(forecaster.read_text())
    ours = score_forecaster(load_forecaster(candidate["model_uri"]), trace.metrics, ("cpu",))
    theirs = score_forecaster(
        load_forecaster(f"models:/{FORECASTER_MODEL}/{champion['registered_version']}"),
        trace.metrics,
        ("cpu",),
    )
    figures = decided["forecaster"]
    assert figures["evaluated_on"].startswith(f"real trace {NAB}")
    assert figures["reason"].startswith(f"on real trace {NAB}")
    summary = ours.report["summary"]
    assert figures["candidate"] == pytest.approx(summary["model_mean_mae"])
    assert figures["candidate"] != pytest.approx(candidate["value"])  # not its own held-out
    assert figures["baselines"]["persistence"] == pytest.approx(summary["persistence_mean_mae"])
    if figures["beats_baselines"]:
        champion_mae = theirs.report["summary"]["model_mean_mae"]
        assert figures["champion"] == pytest.approx(champion_mae)
        assert figures["promoted"] == (figures["candidate"] < champion_mae)
    else:
        assert not figures["promoted"] and "does not beat baseline" in figures["reason"]

    anomaly = decided["anomaly"]
    result = json.loads(detector.read_text())
    scores = score_detector(
        load_anomaly_detector(f"models:/{ANOMALY_MODEL}/{result['registered_version']}"),
        trace.metrics,
        trace.labels,
        trace.resources,
    )
    f1 = scores.report["overall"]["event_f1"] or 0.0
    assert anomaly["candidate"] == pytest.approx(f1)
    assert anomaly["reason"].startswith(f"on real trace {NAB}")
    assert scores.report["data"]["nodes"] == 8
    point_fpr = scores.report["overall"]["point_fpr"]
    assert point_fpr < 0.1, "thresholds calibrated on the trace's unlabelled first part"

    logged = client.get_run(candidate["run_id"])
    assert logged.data.metrics[f"{NAB}_validation_mae"] == pytest.approx(figures["candidate"])
    if figures["champion"] is not None:
        assert f"champion_{NAB}_validation_mae" in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(candidate["run_id"], f"traces/{NAB}")}
    assert f"traces/{NAB}/forecast_vs_actual_cpu_15m.png" in artifacts
    detector_run = client.get_run(result["run_id"])
    assert np.isfinite(detector_run.data.metrics[f"{NAB}_point_fpr"])
    assert any(k.startswith(f"{NAB}_node_") for k in detector_run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], f"traces/{NAB}")}
    assert {
        f"traces/{NAB}/anomaly_score_timeline.png",
        f"traces/{NAB}/report.json",
    } <= artifacts
