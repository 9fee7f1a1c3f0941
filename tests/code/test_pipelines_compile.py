"""Kubeflow pipelines: they compile, load back with kfp, and their components stay thin."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from components.errors import MlschedError
from components.pipeline_steps import steps
from components.pipeline_steps.cli import add_pipeline_parser
from pipelines.compile import PIPELINES, compile_pipelines

REPO = Path(__file__).resolve().parents[2]
STAGES = (
    "collect",
    "validate",
    "features",
    "tune",
    "train_forecaster",
    "train_anomaly",
    "train_placement",
    "evaluate",
    "promote",
    "render_serving",
    "drift_check",
)
HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "mlflow",
    "great_expectations",
    "feast",
    "torch",
    "xgboost",
    "sklearn",
    "optuna",
    "scipy",
    "kserve",
    "data_validation",
    "serving",
)
IMAGE = "registry.example/ml-scheduler:test"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipelines")
    paths = compile_pipelines(folder, IMAGE)
    return {p.name.removesuffix("_pipeline.yaml"): p for p in paths}


def test_every_pipeline_compiles_and_loads_back(compiled):
    from kfp import components

    assert set(compiled) == set(PIPELINES) == {"training", "retraining"}
    for name, path in compiled.items():
        loaded = components.load_component_from_file(str(path))
        assert loaded.name == f"ml-scheduler-{name}"
        assert "tracking_uri" in loaded.component_spec.inputs
        assert "node_metrics_path" in loaded.component_spec.inputs


def _spec(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_every_executor_runs_in_the_chosen_image(compiled):
    for path in compiled.values():
        executors = _spec(path)["deploymentSpec"]["executors"]
        images = {e["container"]["image"] for e in executors.values()}
        assert images == {IMAGE}
        for executor in executors.values():
            assert "pip install" not in " ".join(executor["container"]["command"])


def test_training_pipeline_gates_on_validation_and_runs_every_stage(compiled):
    spec = _spec(compiled["training"])
    root_tasks = spec["root"]["dag"]["tasks"]
    assert {"collect-node-metrics", "validate-node-metrics"} <= set(root_tasks)
    executors = set(spec["deploymentSpec"]["executors"])
    for stage in (
        "collect-node-metrics",
        "validate-node-metrics",
        "stop-on-failed-gate",
        "build-node-features",
        "tune-model",
        "default-hyperparameters",
        "train-forecaster",
        "train-anomaly-detector",
        "train-placement-policy",
        "evaluate-models",
        "report-promotions",
        "render-serving-manifests",
    ):
        assert f"exec-{stage}" in executors, stage
    conditions = [
        t["triggerPolicy"]["condition"]
        for component in spec["components"].values()
        for t in component.get("dag", {}).get("tasks", {}).values()
        if "triggerPolicy" in t
    ]
    assert any("pipelinechannel--validate-node-metrics-Output" in c for c in conditions)


def test_retraining_pipeline_branches_on_drift(compiled):
    spec = _spec(compiled["retraining"])
    executors = set(spec["deploymentSpec"]["executors"])
    assert {"exec-check-drift", "exec-record-no-drift", "exec-validate-node-metrics"} <= executors
    conditions = json.dumps(spec["components"])
    assert "pipelinechannel--check-drift-Output" in conditions


def test_component_modules_import_only_kfp_and_the_standard_library():
    modules = [f"components.pipeline_steps.{stage}" for stage in STAGES] + [
        "pipelines.training_pipeline",
        "pipelines.retraining_pipeline",
        "pipelines.compile",
    ]
    script = textwrap.dedent(
        f"""
        import json, sys
        import kfp, kfp.dsl, kfp.compiler
        before = set(sys.modules)
        for name in {modules!r}:
            __import__(name)
        new = sorted({{m.split(".")[0] for m in set(sys.modules) - before}})
        print(json.dumps({{"new": new, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    audit = json.loads(result.stdout.strip().splitlines()[-1])
    assert audit["heavy"] == []
    foreign = [m for m in audit["new"] if m not in sys.stdlib_module_names]
    assert set(foreign) <= {"components", "pipelines"}, foreign


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_builds_a_component_for_any_image(stage):
    import importlib

    module = importlib.import_module(f"components.pipeline_steps.{stage}")
    component = module.component(IMAGE)
    assert component.component_spec.implementation.container.image == IMAGE


def test_compile_cli_writes_yaml_with_the_image_from_the_environment(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    add_pipeline_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pipeline", "compile", "--output", str(tmp_path)])
    monkeypatch.setenv("MLSCHED_IMAGE", IMAGE)
    assert args.handler(args) == 0
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == ["retraining_pipeline.yaml", "training_pipeline.yaml"]
    assert IMAGE in (tmp_path / "training_pipeline.yaml").read_text()
    assert not list(tmp_path.glob(".*"))


# --------------------------------------------------------------------------- glue logic


def test_hyperparameter_flags_render_kfp_floats_as_ints():
    flags = steps.hyperparameter_flags({"max-depth": 6.0, "learning-rate": 0.05, "kind": "a"})
    assert flags == ["--max-depth=6", "--learning-rate=0.05", "--kind=a"]


def test_baseline_comparison_picks_named_baselines_only():
    metrics = {
        "overload_node_minutes": 3.0,
        "random_overload_node_minutes": 30.0,
        "least_allocated_overload_node_minutes": 10.0,
        "validation_overload_node_minutes": 1.0,
        "best_heuristic_overload_node_minutes": 10.0,
        "pods_pending": 2.0,
    }
    result = steps.baseline_comparison(metrics, *steps.GATE_METRICS["placement"])
    assert result["baselines"] == {"random": 30.0, "least_allocated": 10.0}
    assert result["beats_baselines"] is True
    anomaly = steps.GATE_METRICS["anomaly"]
    worse = steps.baseline_comparison({"event_f1": 0.2, "baseline_event_f1": 0.5}, *anomaly)
    assert worse["beats_baselines"] is False
    forecast = {"validation_mae": 0.02, "persistence_mae": 0.03, "seasonal_naive_mae": 0.05}
    forecast["cpu_5m_mae"] = 0.01
    better = steps.baseline_comparison(forecast, *steps.GATE_METRICS["forecaster"])
    assert better["baselines"] == {"persistence": 0.03, "seasonal_naive": 0.05}
    assert better["beats_baselines"] is True
    missing = steps.baseline_comparison({"event_f1": float("nan")}, *anomaly)
    assert missing["model"] is None and missing["beats_baselines"] is None


def test_data_flags_name_what_the_pipeline_lacks():
    assert steps.data_flags("anomaly", {"node_metrics": "/m", "labels": "/l.json"}) == [
        "--metrics=/m",
        "--labels=/l.json",
    ]
    with pytest.raises(MlschedError, match="placement: the pipeline needs nodes"):
        steps.data_flags("placement", {"workload": "/w.parquet", "nodes": ""})


def test_run_entrypoint_parses_metric_and_fact_lines(tmp_path):
    package = tmp_path / "fake_train.py"
    package.write_text(
        "print('loss=0.25')\nprint('baseline_loss=0.5')\nprint('run_id: abc123')\n"
        "print('promoted=False')\nprint('note: candidate loss=0.1 beats x=2')\n"
    )
    result = steps.run_entrypoint("fake_train", [], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.metrics == {"loss": 0.25, "baseline_loss": 0.5}
    assert result.info["run_id"] == "abc123" and result.info["promoted"] == "False"


def test_run_entrypoint_failure_carries_the_output_tail(tmp_path):
    (tmp_path / "broken_train.py").write_text("print('about to fail')\nraise SystemExit(3)\n")
    with pytest.raises(MlschedError, match=r"(?s)exit status 3.*about to fail"):
        steps.run_entrypoint("broken_train", [], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})


def test_import_node_metrics_copies_without_parsing_and_replaces(tmp_path):
    source = tmp_path / "src"
    (source / "date=2026-01-01").mkdir(parents=True)
    (source / "date=2026-01-01" / "part-0.parquet").write_bytes(b"not parquet at all")
    target = tmp_path / "out" / "node_metrics"
    target.mkdir(parents=True)
    (target / "stale.csv").write_text("old")
    steps.import_node_metrics(source, target)
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["part-0.parquet"]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(MlschedError, match="no node metrics there"):
        steps.import_node_metrics(tmp_path / "absent", target)


def test_gate_failure_message_lists_the_failed_expectations(tmp_path):
    (tmp_path / "validation_result.json").write_text(
        json.dumps(
            {
                "success": False,
                "success_rate": 0.5,
                "failures": [{"message": "node n1: cpu_utilization above 1.5 in 3 rows"}],
            }
        )
    )
    message = steps.gate_failure_message(tmp_path)
    assert "gate failed" in message and "node n1: cpu_utilization above 1.5" in message


# --------------------------------------------------------------------------- run arguments


def _run_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_pipeline_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["pipeline", "run", *argv])


def _fake_dataset(root: Path) -> Path:
    (root / "node_metrics").mkdir(parents=True)
    for name in ("anomaly_labels.json", "workload.parquet", "nodes.csv"):
        (root / name).write_text("")
    return root


def test_local_run_arguments_come_from_a_generated_data_set(tmp_path):
    from components.pipeline_steps.cli import pipeline_arguments

    data = _fake_dataset(tmp_path / "synthetic")
    args = _run_args(
        "--local", "--data", str(data), "--tracking-uri", "sqlite:///x.db", "--tune",
        "--arg", "tune_trials=5", "--arg", "online_store=redis://h:6379/0",
    )  # fmt: skip
    arguments = pipeline_arguments(args)
    assert arguments["node_metrics_path"] == str((data / "node_metrics").resolve())
    assert arguments["labels_path"].endswith("anomaly_labels.json")
    assert arguments["tune_models"] is True and arguments["tune_trials"] == 5
    assert arguments["online_store"] == "redis://h:6379/0"
    assert arguments["placement_args"] == ["--time-budget=120"]


def test_run_arguments_name_what_is_missing(tmp_path, monkeypatch):
    from components.pipeline_steps.cli import pipeline_arguments

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(MlschedError, match="not a complete generated data set"):
        pipeline_arguments(_run_args("--local", "--data", str(tmp_path)))
    data = _fake_dataset(tmp_path / "synthetic")
    with pytest.raises(MlschedError, match="--range-of MANIFEST or --start and --end"):
        pipeline_arguments(
            _run_args("--local", "--data", str(data), "--prometheus", "http://p:9090")
        )
    with pytest.raises(MlschedError, match="--host needs --tracking-uri"):
        pipeline_arguments(_run_args("--host", "http://kfp", "--arg", "node_metrics_path=/d"))
