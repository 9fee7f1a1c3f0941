"""Katib Experiments: the shipped YAMLs against Katib's API schema and rules; the local runner."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from components.model_contracts import MODEL_SPECS
from components.tune.experiment import (
    ExperimentError,
    katib_rule_errors,
    load_experiment,
    load_experiment_document,
    parse_experiment,
    parse_stdout_metrics,
    schema_errors,
)
from components.tune.local import grid_search_space, local_command, run_local_tune

REPO = Path(__file__).resolve().parents[2]
KATIB = REPO / "katib"
SWAGGER = REPO.parent / "shared" / "schemas" / "katib-v1beta1.swagger.json"
EXPERIMENTS = sorted(KATIB.glob("*.yaml"))
EXPECTED = {
    Path(spec.katib_experiment).name: (
        "maximize" if spec.higher_is_better else "minimize",
        spec.entrypoint,
        spec.gate_metric,
    )
    for spec in MODEL_SPECS.values()
}


@pytest.fixture(scope="module")
def swagger() -> dict:
    if not SWAGGER.is_file():
        pytest.skip(f"{SWAGGER} is absent: the shared Katib schema is needed")
    return json.loads(SWAGGER.read_text())


def test_the_three_experiments_are_shipped():
    assert {p.name for p in EXPERIMENTS} >= set(EXPECTED) and len(EXPECTED) == 3


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_passes_katib_schema_and_rules(path, swagger):
    document = load_experiment_document(path)
    assert schema_errors(document, swagger) == []
    assert katib_rule_errors(document) == []
    experiment = parse_experiment(document, str(path), swagger)
    objective, module, metric = EXPECTED[path.name]
    assert experiment.objective.type == objective and experiment.objective.metric == metric
    assert experiment.container()["command"][:3] == ["python", "-m", module]
    assert experiment.document["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_trial_flags_are_accepted_by_the_training_entrypoint(path):
    experiment = load_experiment(path)
    module_name = experiment.container()["command"][2]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        pytest.fail(f"{path.name}: training entrypoint {module_name} is missing: {error}")
    params = {p.name: (p.values[0] if p.values else p.min) for p in experiment.parameters}
    args = experiment.command(params)[3:]
    parsed = module.build_parser().parse_known_args(args)
    assert parsed[1] == [], f"{path.name}: flags the entrypoint does not know: {parsed[1]}"


def _valid(swagger_path=None) -> dict:
    return load_experiment_document(KATIB / "anomaly.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spec"]["objective"].update(type="lowest"), "spec.objective.type"),
        (lambda d: d["spec"]["algorithm"].update(algorithmName="annealing"), "not a Katib"),
        (lambda d: d["spec"].update(maxFailedTrialCount=99), "maxFailedTrialCount"),
        (lambda d: d["spec"].update(parallelTrialCount=0), "parallelTrialCount"),
        (lambda d: d["spec"]["parameters"][0].update(parameterType="float"), "parameterType"),
        (
            lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(min="300", max="50"),
            "greater than max",
        ),
        (lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(min="1.5"), "valid int"),
        (
            lambda d: d["spec"]["parameters"][1]["feasibleSpace"].update(min="1"),
            "must be empty for discrete",
        ),
        (lambda d: d["spec"]["parameters"][1]["feasibleSpace"].update(list=[]), "not be empty"),
        (
            lambda d: d["spec"]["trialTemplate"]["trialParameters"][0].update(reference="nope"),
            "is not a parameter",
        ),
        (
            lambda d: d["spec"]["trialTemplate"]["trialParameters"].pop(0),
            "${trialParameters.nEstimators} is not declared",
        ),
        (
            lambda d: d["spec"]["trialTemplate"].update(primaryContainerName="main"),
            "no container named",
        ),
        (
            lambda d: d["spec"]["objective"]["additionalMetricNames"].append("event_f1"),
            "must not contain the objective",
        ),
    ],
)
def test_katib_rules_reject_what_the_webhook_rejects(change, message):
    document = _valid()
    change(document)
    errors = katib_rule_errors(document)
    assert any(message in e for e in errors), errors


def test_schema_rejects_wrong_types_and_misspelt_fields(swagger):
    document = _valid()
    document["spec"]["maxTrialCount"] = "many"
    document["spec"]["objective"]["objectivMetricName"] = "x"
    errors = schema_errors(document, swagger)
    assert any(e.startswith("spec.maxTrialCount") for e in errors), errors
    assert any("objectivMetricName" in e for e in errors), errors


def test_load_experiment_names_the_file_and_every_problem(tmp_path):
    document = _valid()
    document["spec"]["objective"]["type"] = "best"
    document["spec"]["parallelTrialCount"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert str(path) in str(caught.value)
    assert "spec.objective.type" in str(caught.value)
    assert "spec.parallelTrialCount" in str(caught.value)


def test_stdout_metrics_are_parsed_like_katibs_collector():
    text = "epoch 1\nval_mae=0.25 other-metric = 3e-2\nval_mae=0.2\nrun_id: abc\nbad=\n"
    assert parse_stdout_metrics(text) == {"val_mae": [0.25, 0.2], "other-metric": [0.03]}


# --------------------------------------------------------------------------- local runner

TRIAL_SCRIPT = """
import sys
args = dict(a.lstrip('-').split('=', 1) for a in sys.argv[1:])
x, kind = float(args['x']), args['kind']
if args.get('fail') == kind:
    sys.exit(3)
print(f"loss={(x - 0.3) ** 2 + (0.0 if kind == 'b' else 0.5)}")
print(f"loss={(x - 0.3) ** 2 + (0.0 if kind == 'b' else 0.5) + 1}")
"""


def _toy_experiment(tmp_path, algorithm="tpe", **spec_overrides) -> dict:
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    document = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "toy"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": algorithm,
                "algorithmSettings": [{"name": "random_state", "value": "1"}],
            },
            "maxTrialCount": 6,
            "parallelTrialCount": 2,
            "maxFailedTrialCount": 2,
            "parameters": [
                {
                    "name": "x",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"},
                },
                {
                    "name": "kind",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["a", "b"]},
                },
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [
                    {"name": "x", "reference": "x"},
                    {"name": "kind", "reference": "kind"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "python:3.11",
                                        "command": ["python", str(script)],
                                        "args": [
                                            "--x=${trialParameters.x}",
                                            "--kind=${trialParameters.kind}",
                                        ],
                                    }
                                ]
                            }
                        }
                    },
                },
            },
        },
    }
    document["spec"].update(spec_overrides)
    return document


def test_local_command_substitutes_and_uses_this_python(tmp_path):
    experiment = parse_experiment(_toy_experiment(tmp_path))
    command = local_command(experiment, {"x": 0.5, "kind": "a"}, ["--fail=none"])
    assert command[0] == sys.executable
    assert command[2:] == ["--x=0.5", "--kind=a", "--fail=none"]


def test_grid_space_enumerates_katib_steps(tmp_path):
    experiment = parse_experiment(_toy_experiment(tmp_path, "grid"))
    space = grid_search_space(experiment.parameters)
    assert space == {"x": [0.0, 0.25, 0.5, 0.75, 1.0], "kind": ["a", "b"]}


def test_local_grid_tune_finds_the_minimum_with_min_strategy(tmp_path):
    document = _toy_experiment(tmp_path, "grid", maxTrialCount=10, parallelTrialCount=2)
    result = run_local_tune(parse_experiment(document), progress=False)
    assert len(result.trials) == 10 and result.failed == 0
    assert result.best_params == {"x": 0.25, "kind": "b"}
    assert result.best_value == pytest.approx(0.0025)
    assert result.best_arguments() == ["--x=0.25", "--kind=b"]


def test_goal_stops_a_maximising_experiment_early(tmp_path):
    document = _toy_experiment(tmp_path, "random", maxTrialCount=6, parallelTrialCount=1)
    document["spec"]["objective"] = {"type": "maximize", "objectiveMetricName": "loss", "goal": 0.0}
    result = run_local_tune(parse_experiment(document), progress=False)
    assert len(result.trials) == 1
    assert "goal" in result.stopped_because


def test_failed_trials_stop_the_tune_after_max_failed(tmp_path):
    document = _toy_experiment(tmp_path, "random", maxTrialCount=6, parallelTrialCount=1)
    document["spec"]["parameters"][1]["feasibleSpace"]["list"] = ["a"]
    experiment = parse_experiment(document)
    result = run_local_tune(experiment, extra_args=["--fail=a"], progress=False)
    assert result.failed == 3 and result.best_value is None
    assert "maxFailedTrialCount=2" in result.stopped_because
    assert all("exit status 3" in t.reason for t in result.trials)


def test_trials_are_mlflow_child_runs(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("tune", artifact_location=str(tmp_path / "art"))
    document = _toy_experiment(tmp_path, "tpe", maxTrialCount=3)
    result = run_local_tune(
        parse_experiment(copy.deepcopy(document)),
        client=client,
        mlflow_experiment_id=experiment_id,
        progress=False,
    )
    children = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 3
    assert {c.data.metrics["loss"] for c in children} == {t.value for t in result.trials}
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["best_loss"] == pytest.approx(result.best_value)
