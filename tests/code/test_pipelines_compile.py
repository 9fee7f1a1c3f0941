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
from pipelines.cli import add_pipeline_parser
from pipelines.compile import PIPELINES, compile_pipelines

REPO = Path(__file__).resolve().parents[2]
STAGES = (
    "collect",
    "validate",
    "features",
    "tune",
    "train",
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
        "train-candidate",
        "train-candidate-2",
        "train-candidate-3",
        "evaluate-candidates",
        "promote-candidates",
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


def _result_file(folder: Path, kind: str, value: float, baselines: dict) -> Path:
    from components.model_contracts import MODEL_SPECS
    from components.tracking.entrypoint import training_result, write_result_file

    result = training_result(
        MODEL_SPECS[kind], value=value, baselines=baselines, metrics={}, held_out={}
    )
    path = folder / f"{kind}.json"
    write_result_file(result, path)
    return path


def test_evaluate_step_compares_each_candidate_with_its_baselines(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = {
        "forecaster": _result_file(
            tmp_path, "forecaster", 0.02, {"persistence": 0.03, "seasonal_naive": 0.05}
        ),
        "anomaly": _result_file(tmp_path, "anomaly", 0.2, {"robust_zscore": 0.5}),
        "placement": _result_file(tmp_path, "placement", 3.0, {"random": 30.0, "x": 10.0}),
    }
    decisions = steps.evaluate_step(results, uri, tmp_path / "decisions.json")
    assert decisions["forecaster"]["beats_baselines"] is True
    assert decisions["forecaster"]["baselines"] == {"persistence": 0.03, "seasonal_naive": 0.05}
    assert decisions["placement"]["beats_baselines"] is True
    assert decisions["anomaly"]["beats_baselines"] is False
    assert "robust_zscore" in decisions["anomaly"]["reason"]
    assert json.loads((tmp_path / "decisions.json").read_text()) == decisions
    assert "| anomaly | event_f1 |" in steps.evaluation_markdown(decisions)
    with pytest.raises(MlschedError, match="not better than the baselines: anomaly"):
        steps.evaluate_step(
            results, uri, tmp_path / "decisions.json", require_beating_baselines=True
        )
    report = steps.promote_step(tmp_path / "decisions.json", uri)
    assert all(entry["promoted"] is False for entry in report.values())  # nothing registered


def test_result_files_hold_the_same_keys_for_every_model(tmp_path):
    from components.tracking.entrypoint import RESULT_KEYS, read_result_file

    for kind in ("forecaster", "anomaly", "placement"):
        result = read_result_file(_result_file(tmp_path, kind, 1.0, {}))
        assert tuple(result) == RESULT_KEYS and result["kind"] == kind
    (tmp_path / "broken.json").write_text('{"kind": "anomaly"}')
    with pytest.raises(MlschedError, match="broken.json: training result lacks model_name"):
        read_result_file(tmp_path / "broken.json")


def test_data_flags_name_what_the_pipeline_lacks():
    paths = {"node_metrics": "/m", "labels": "/l.json", "features": "/f.parquet"}
    assert steps.data_flags("anomaly", paths) == ["--metrics=/m", "--labels=/l.json"]
    assert steps.data_flags("forecaster", paths) == ["--metrics=/m", "--features=/f.parquet"]
    assert steps.data_flags("forecaster", {"node_metrics": "/m"}) == ["--metrics=/m"]
    with pytest.raises(MlschedError, match="placement: the pipeline needs nodes"):
        steps.data_flags("placement", {"workload": "/w.parquet", "nodes": ""})


def test_run_entrypoint_streams_the_output(tmp_path, capsys):
    (tmp_path / "fake_train.py").write_text("print('loss=0.25')\n")
    steps.run_entrypoint("fake_train", [], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert "loss=0.25" in capsys.readouterr().out


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
    from pipelines.cli import pipeline_arguments

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
    from pipelines.cli import pipeline_arguments

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
