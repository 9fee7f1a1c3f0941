"""The DQN training entrypoint: metric lines, clear errors, and registration behind the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.contracts import write_nodes_table, write_workload_trace
from components.model_contracts import PLACEMENT_MODEL
from components.placement.dqn.policy import load_dqn_policy
from components.placement.dqn.train import main

GIB = 1024**3
T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def write_inputs(folder):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        first, use = 3 * i, float(rng.uniform(0.2, 1.5))
        for m in range(first, first + 30):
            rows.append((f"p{i:02d}", T0 + pd.Timedelta(minutes=m), use, GIB, 0.25, GIB))
    columns = ["pod", "timestamp", "cpu_cores", "memory_bytes", "cpu_request_cores"]
    trace = pd.DataFrame(rows, columns=[*columns, "memory_request_bytes"])
    nodes = pd.DataFrame(
        {"node": ["a", "b", "c"], "cpu_cores": [2.0, 4.0, 8.0], "memory_bytes": [16 * GIB] * 3}
    )
    return (
        write_workload_trace(trace, folder / "workload.parquet"),
        write_nodes_table(nodes, folder / "nodes.csv"),
    )


def figures(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


FAST = [
    *("--episodes", "2", "--time-budget", "20", "--eval-seeds", "1", "--window-hours", "1"),
    *("--mix-sources", "1", "--validation-hours", "1"),
]


def test_entrypoint_prints_metric_lines(tmp_path, capsys):
    workload, nodes = write_inputs(tmp_path)
    code = main(["--workload", str(workload), "--nodes", str(nodes), "--no-tracking", *FAST])
    assert code == 0
    out = figures(capsys.readouterr().out)
    for key in (
        "overload_node_minutes",
        "pods_pending",
        "improvement_vs_random",
        "improvement_vs_best_heuristic",
        "greedy_predictive_overload_node_minutes",
        "least_allocated_pods_pending",
        "training_cpu_seconds",
    ):
        assert key in out, key
    assert float(out["overload_node_minutes"]) >= 0
    assert out["episodes"] == "2"


def test_malformed_inputs_and_flags_are_clear_errors(tmp_path, capsys):
    workload, nodes = write_inputs(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("pod,timestamp,cpu_cores\np,2026-01-01T00:00:00Z,1\n")
    assert main(["--workload", str(bad), "--nodes", str(nodes), "--no-tracking", *FAST]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "missing column" in err and "Traceback" not in err
    assert main(["--workload", str(workload), "--nodes", str(nodes), "--gamma", "1.5"]) == 2
    assert "--gamma" in capsys.readouterr().err


def test_register_logs_a_candidate_and_only_the_promote_stage_moves_the_alias(tmp_path, capsys):
    import json

    from components.pipeline_steps.steps import evaluate_step, promote_step

    workload, nodes = write_inputs(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result_file = tmp_path / "result.json"
    args = ["--workload", str(workload), "--nodes", str(nodes), "--tracking-uri", uri, *FAST]
    assert main([*args, "--register", "--result-file", str(result_file)]) == 0
    out = figures(capsys.readouterr().out)
    result = json.loads(result_file.read_text())
    assert result["registered_version"] == "1"
    assert result["value"] == float(out["overload_node_minutes"])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert "champion" not in client.get_registered_model(PLACEMENT_MODEL).aliases
    run_id = client.get_model_version(PLACEMENT_MODEL, "1").run_id
    run = client.get_run(run_id)
    assert "train_mean_reward" in run.data.metrics
    assert "dqn_overload_node_minutes" in run.data.metrics
    decisions = evaluate_step({"placement": result_file}, uri, tmp_path / "decisions.json")
    promoted = promote_step(tmp_path / "decisions.json", uri)["placement"]["promoted"]
    assert promoted == decisions["placement"]["promoted"]
    assert client.get_run(run_id).data.tags["promotion.promoted"] == str(promoted).lower()
    aliases = client.get_registered_model(PLACEMENT_MODEL).aliases
    # not promoted, the gate registers the best heuristic as the champion instead
    assert (str(aliases.get("champion")) == "1") == promoted
    policy = load_dqn_policy(f"models:/{PLACEMENT_MODEL}/1")
    assert policy.name == "dqn"


def test_family_sources_are_training_parts_of_draws_apart_from_the_evaluation():
    import pytest

    from components.placement.dqn.mix import FAMILY_SEED_OFFSET, family_sources
    from components.placement.families import available_families, build_family

    if "nab-ec2" not in available_families():
        pytest.skip("needs ../shared/data/ (the NAB trace) for the nab-ec2 family")
    (workload, cluster), *rest = family_sources(["nab-ec2"], seed=0, train_fraction=0.5)
    assert rest == []
    full, full_cluster = build_family("nab-ec2", seed=FAMILY_SEED_OFFSET)
    assert workload.n_steps == round(full.n_steps * 0.5)
    assert cluster.nodes == full_cluster.nodes
    evaluated, _ = build_family("nab-ec2", seed=0)  # seeds 0..N-1 are the evaluation's draws
    assert not np.array_equal(full.cpu_request, evaluated.cpu_request)
