"""The training pipeline run locally by kfp.local (SubprocessRunner) on a tiny synthetic cluster.

Every stage runs for real: the gate, features and Feast, the three training entrypoints against a
real MLflow (SQLite store), registration and promotion, and the serving manifests. Bad data
must stop the run at the gate, before anything is trained or registered. The champions it
registers are then served (``mlsched stack serve``: model server + extender) and a day of pods is
replayed through the extender, as ``make run`` ends.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.contracts import CPU_UTILIZATION, NODE, read_node_metrics
from components.errors import MlschedError
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.harness.stack.serving import ServingConfig, serving_down, serving_status, serving_up
from components.model_contracts import REGISTERED_MODELS
from components.tracking.gate import registry_state
from pipelines.run import run_local, synthetic_arguments

pytestmark = pytest.mark.integration

END = int(pd.Timestamp("2026-03-03T00:00:00Z").timestamp())
FAST_ARGS = {
    "forecaster_args": ["--n-estimators=30", "--resources=cpu", "--horizons=15m"],
    "anomaly_args": ["--n-estimators=20"],
    "placement_args": ["--episodes=2", "--time-budget=5", "--eval-seeds=1"],
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "synthetic"
    config = HistoryConfig(nodes=3, days=2, step_seconds=60, seed=3, end_epoch=END)
    generate_synthetic_cluster(
        config, root, workload_days=1, workload_step_seconds=120, openmetrics=False, progress=False
    )
    return root


def _arguments(data: Path, tmp_path: Path) -> dict:
    return {
        **synthetic_arguments(data),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        **FAST_ARGS,
    }


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """One pipeline run on the tiny data; its arguments, run and working folder."""
    folder = tmp_path_factory.mktemp("trained")
    arguments = _arguments(tiny_data, folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        run = run_local("training", arguments, pipeline_root=folder / "runs")
    return {"arguments": arguments, "run": run, "folder": folder}


def test_training_pipeline_runs_every_stage_and_registers_the_models(trained):
    from mlflow import MlflowClient

    arguments, run = trained["arguments"], trained["run"]
    assert run.run_dir is not None
    result = json.loads(
        (
            run.run_dir / "validate-node-metrics" / "validation" / "validation_result.json"
        ).read_text()
    )
    assert result["success"] is True
    tables = list(run.run_dir.glob("build-node-features/feature_table/node_features.parquet"))
    assert len(tables) == 1 and pq.read_metadata(tables[0]).num_rows > 0
    client = MlflowClient(arguments["tracking_uri"], registry_uri=arguments["tracking_uri"])
    state = registry_state(client, REGISTERED_MODELS)
    assert all(s["versions"] >= 1 for s in state.values()), state
    registry = json.loads((run.run_dir / "promote-candidates" / "registry").read_text())
    assert set(registry) == {"forecaster", "anomaly", "placement"}
    decisions = json.loads((run.run_dir / "evaluate-candidates" / "decisions").read_text())
    for kind, entry in registry.items():
        assert entry.get("candidate_version") is not None, kind
        assert entry["promoted"] == decisions[kind]["promoted"], kind
        assert (str(entry.get("champion")) == entry["candidate_version"]) == entry["promoted"]
    champions = [s for s in state.values() if s["champion"] is not None]
    manifests = list(run.run_dir.glob("render-serving-manifests/manifests/*/canary-*.yaml"))
    assert len(manifests) == 3 * len(champions)


def test_the_champions_serve_a_replayed_day_through_the_extender(
    trained, tiny_data, tmp_path, free_ports
):
    from mlflow import MlflowClient

    from components.contracts import read_nodes_table, read_workload_trace
    from components.features.cli import build_features
    from components.harness.replay.run import day_window, run_replay
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    tracking_uri = trained["arguments"]["tracking_uri"]
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    for name, entry in registry_state(client, REGISTERED_MODELS).items():
        if entry["champion"] is None:  # tiny models may lose to their baselines at the gate
            client.set_registered_model_alias(name, "champion", str(entry["latest"]))
    state = registry_state(client, REGISTERED_MODELS)
    dataset = SyntheticDataset(tiny_data)
    cluster = cluster_from_nodes(read_nodes_table(dataset.nodes))
    workload = day_window(workload_from_trace(read_workload_trace(dataset.workload)), "last")
    feast_home = tmp_path / "feast"  # as make run: features applied and materialised
    build_features(dataset.node_metrics, tmp_path / "features.parquet", feast_home, anomaly=True)
    model_port, extender_port = free_ports(2)
    config = ServingConfig(
        home=tmp_path / ".stack",
        tracking_uri=tracking_uri,
        nodes=dataset.nodes,
        feast_home=feast_home,
        model_server_port=model_port,
        extender_port=extender_port,
    )
    try:
        serving = serving_up(config)
        assert all(service.ready for service in serving.services)
        assert serving.champions == {name: str(s["champion"]) for name, s in state.items()}
        assert serving.predictions_usable
        result = run_replay(
            workload, cluster, config.extender_url, feast_home=feast_home, snapshot_every=30
        )
    finally:
        stopped = serving_down(config)
    assert stopped == ["extender", "model-server"]
    assert not any(service.running for service in serving_status(config))
    replay = result.report["replay"]
    assert replay["http_errors"] == 0
    assert replay["decided_over_http"] == replay["placements"] > 0
    assert replay["fallback_rate"] == 0.0, replay["extender_counters"]


def test_the_gate_stops_the_run_on_bad_data(tiny_data, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    metrics = read_node_metrics(SyntheticDataset(tiny_data).node_metrics)
    first = metrics[NODE].iloc[0]
    broken = metrics[NODE] == first
    metrics.loc[broken, CPU_UTILIZATION] = metrics.loc[broken, CPU_UTILIZATION] + 5.0
    bad = tmp_path / "bad_metrics.parquet"
    pq.write_table(pa.Table.from_pandas(metrics, preserve_index=False), bad)
    arguments = {**_arguments(tiny_data, tmp_path), "node_metrics_path": str(bad)}
    with pytest.raises(MlschedError, match="stop-on-failed-gate"):
        run_local("training", arguments, pipeline_root=tmp_path / "runs")
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "validate-node-metrics" / "validation" / "validation_result.json").is_file()
    assert not (run_dir / "build-node-features").exists()
    client = MlflowClient(arguments["tracking_uri"], registry_uri=arguments["tracking_uri"])
    assert client.search_registered_models() == []
    shutil.rmtree(run_dir)


def test_retraining_records_no_drift_and_trains_nothing(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "drift.yaml"
    config.write_text("method: ks\nks:\n  threshold: 1.0\n")
    arguments = {**_arguments(tiny_data, tmp_path), "drift_config_path": str(config)}
    run = run_local("retraining", arguments, pipeline_root=tmp_path / "runs")
    tasks = {p.name for p in run.run_dir.iterdir()}
    assert tasks == {"collect-node-metrics", "check-drift", "record-no-drift"}
    report = json.loads((run.run_dir / "check-drift" / "report").read_text())
    assert report["drifted"] is False and report["method"] == "ks"
