"""``--evaluation-data``: the real-trace sets the gate compares on, checked before anything runs
(one-line errors naming the item and path) and read into the contracts."""

from __future__ import annotations

import json

import pytest

from components import cli
from components.contracts import write_anomaly_labels, write_node_metrics
from components.datasets.evaluation_sets import (
    NAMED_SETS,
    load_evaluation_set,
    parse_evaluation_data,
    shared_data_root,
)
from components.errors import MlschedError
from tests.code.test_forecast import make_metrics


def _one_line_error(spec: str, **kwargs) -> str:
    with pytest.raises(MlschedError) as caught:
        parse_evaluation_data(spec, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--evaluation-data")
    return message


def test_a_missing_named_set_names_the_file_it_looked_for(tmp_path):
    message = _one_line_error("nab-ec2-cpu", root=tmp_path)
    assert str(tmp_path / "nab-ec2-cpu" / "anomaly_windows.json") in message
    assert "MLSCHED_SHARED_DATA" in message


def test_an_unknown_item_and_a_folder_without_data_are_named(tmp_path):
    message = _one_line_error(str(tmp_path / "no-such"), root=tmp_path)
    assert str(tmp_path / "no-such") in message
    assert all(name in message for name in NAMED_SETS)
    (tmp_path / "empty").mkdir()
    message = _one_line_error(str(tmp_path / "empty"), root=tmp_path)
    assert str(tmp_path / "empty") in message and "node_metrics" in message
    assert "empty" in _one_line_error(" , ")


def test_a_set_given_twice_is_refused(tmp_path):
    folder = tmp_path / "trace"
    write_node_metrics(make_metrics(nodes=1, days=1), folder / "node_metrics.csv")
    assert "trace" in _one_line_error(f"{folder},{folder}")


def test_a_node_metrics_folder_is_a_set_with_its_labels_and_resources(tmp_path):
    with_memory = tmp_path / "cluster"
    write_node_metrics(make_metrics(nodes=2, days=1), with_memory / "node_metrics.csv")
    write_anomaly_labels(
        {"node-0": [["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]]},
        with_memory / "anomaly_labels.json",
    )
    cpu_only = tmp_path / "cpu only"
    write_node_metrics(
        make_metrics(nodes=1, days=1).assign(memory_utilization=0.0), cpu_only / "node_metrics.csv"
    )
    sets = parse_evaluation_data(f"{with_memory}, {cpu_only}")
    assert [(s.label, s.kind) for s in sets] == [
        ("cluster", "node-metrics"),
        ("cpu_only", "node-metrics"),
    ]
    cluster, cpu = (load_evaluation_set(s) for s in sets)
    assert cluster.resources == ("cpu", "memory") and cluster.labels is not None
    assert cluster.metrics["node"].nunique() == 2
    assert cpu.resources == ("cpu",) and cpu.labels is None


def test_the_command_line_refuses_bad_evaluation_data_before_anything_runs(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    status = cli.main(
        ["pipeline", "run", "--local", "--data", str(tmp_path), "--evaluation-data", str(missing)]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("mlsched pipeline: error: --evaluation-data") and str(missing) in err
    assert "\n" not in err and "Traceback" not in err


SHARED = shared_data_root()


@pytest.mark.skipif(
    not (SHARED / "nab-ec2-cpu").is_dir(),
    reason=f"needs the shared real traces ({SHARED}/nab-ec2-cpu); absent here",
)
def test_named_real_sets_read_with_their_labels():
    (nab,) = parse_evaluation_data("nab-ec2-cpu")
    trace = load_evaluation_set(nab)
    assert trace.resources == ("cpu",) and trace.metrics["node"].nunique() == 8
    windows = json.loads((SHARED / "nab-ec2-cpu" / "anomaly_windows.json").read_text())
    assert sum(map(len, trace.labels.values())) == sum(map(len, windows.values())) > 0


def test_both_pipelines_take_evaluation_data_into_the_evaluate_stage(tmp_path):
    import yaml

    from pipelines.compile import compile_pipelines

    for path in compile_pipelines(tmp_path, "registry.example/ml-scheduler:test"):
        spec = yaml.safe_load(path.read_text())
        declared = spec["root"]["inputDefinitions"]["parameters"]["evaluation_data"]
        assert declared["defaultValue"] == "" and declared["parameterType"] == "STRING"
        graph = spec["components"]["comp-train-and-deploy"]["dag"]["tasks"]
        evaluate = graph["evaluate-candidates"]["inputs"]["parameters"]["evaluation_data"]
        assert evaluate == {"componentInputParameter": "evaluation_data"}, path.name


def test_the_command_line_passes_evaluation_data_to_the_pipeline(tmp_path):
    import argparse

    from pipelines.cli import add_pipeline_parser, pipeline_arguments

    parser = argparse.ArgumentParser()
    add_pipeline_parser(parser.add_subparsers(dest="command"))
    data = tmp_path / "synthetic"
    (data / "node_metrics").mkdir(parents=True)
    for name in ("anomaly_labels.json", "workload.parquet", "nodes.csv"):
        (data / name).write_text("")
    folder = tmp_path / "fleet"
    write_node_metrics(make_metrics(nodes=1, days=1), folder / "node_metrics.csv")
    base = ["pipeline", "run", "--tracking-uri", "sqlite:///x.db"]
    local = parser.parse_args([*base, "--local", "--data", str(data)])
    assert "evaluation_data" not in pipeline_arguments(local)  # the pipeline's default: none
    local = parser.parse_args(
        [*base, "--local", "--data", str(data), "--evaluation-data", str(folder)]
    )
    assert pipeline_arguments(local)["evaluation_data"] == str(folder)
    # A cluster reads its own paths: not checked here.
    remote = parser.parse_args([*base, "--host", "http://kfp", "--evaluation-data", "/cluster/nab"])
    assert pipeline_arguments(remote)["evaluation_data"] == "/cluster/nab"
