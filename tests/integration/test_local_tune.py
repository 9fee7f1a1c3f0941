"""``mlsched tune --local``: three Optuna trials of the real forecaster entrypoint on tiny data.

The trials run ``katib/forecaster.yaml``'s own trial command (with local data paths appended),
each is an MLflow child run in a real SQLite store, and the best parameters are written out.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.tune.cli import REPO_ROOT, add_tune_parser
from components.tune.experiment import load_experiment

pytestmark = pytest.mark.integration

END = int(pd.Timestamp("2026-03-03T00:00:00Z").timestamp())
EXPERIMENT = REPO_ROOT / "katib" / "forecaster.yaml"


@pytest.fixture(scope="module")
def tiny_metrics(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "synthetic"
    config = HistoryConfig(nodes=3, days=2, step_seconds=60, seed=5, end_epoch=END)
    generate_synthetic_cluster(
        config, root, workload_days=1, workload_step_seconds=300, openmetrics=False, progress=False
    )
    return SyntheticDataset(root).node_metrics


def test_local_tune_runs_three_forecaster_trials_as_mlflow_child_runs(
    tiny_metrics, tmp_path, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    best_file = tmp_path / "best.json"
    parser = argparse.ArgumentParser()
    add_tune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "tune",
            "--experiment",
            str(EXPERIMENT),
            "--local",
            "--max-trials",
            "3",
            "--parallel",
            "1",
            f"--trial-arg=--metrics={tiny_metrics}",
            "--trial-arg=--resources=cpu",
            "--trial-arg=--horizons=15m",
            "--trial-arg=--max-train-rows=3000",
            "--tracking-uri",
            tracking_uri,
            "--mlflow-experiment",
            "tune-test",
            "--output",
            str(best_file),
            "--quiet",
        ]
    )
    assert args.handler(args) == 0

    experiment = load_experiment(EXPERIMENT)
    best = json.loads(best_file.read_text())
    assert set(best) == {p.name for p in experiment.parameters}
    client = MlflowClient(tracking_uri)
    mlflow_experiment = client.get_experiment_by_name("tune-test")
    parents = client.search_runs(
        [mlflow_experiment.experiment_id], "tags.`katib.experiment` = 'node-load-forecaster'"
    )
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs(
        [mlflow_experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 3
    metric = experiment.objective.metric
    values = [c.data.metrics[metric] for c in children]
    assert all(v > 0 for v in values)
    assert parent.data.metrics[f"best_{metric}"] == pytest.approx(min(values))
    best_children = [c.data.params for c in children if c.data.metrics[metric] == min(values)]
    assert {k: str(v) for k, v in best.items()} in best_children
