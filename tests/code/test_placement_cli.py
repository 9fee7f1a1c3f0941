"""``mlsched evaluate placement``: clear errors for bad input, a report that can be rechecked."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.contracts import (
    validate_nodes_table,
    validate_workload_trace,
    write_nodes_table,
    write_workload_trace,
)
from components.errors import MlschedError
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.placement.cli import add_evaluate_placement_parser
from components.placement.evaluate import custom_family, evaluate_placement, goal_checks
from components.placement.policy import BasePolicy

START = int(pd.Timestamp("2026-01-01T00:00:00Z").timestamp())


def run_cli(*args: str) -> int:
    parser = argparse.ArgumentParser(prog="mlsched")
    evaluate = parser.add_subparsers(dest="command").add_parser("evaluate")
    add_evaluate_placement_parser(evaluate.add_subparsers(dest="what"))
    parsed = parser.parse_args(["evaluate", *args])
    return parsed.handler(parsed)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("placement")
    nodes = validate_nodes_table(nodes_table(make_nodes(6, seed=4)))
    trace = generate_workload(WorkloadConfig(START, days=0.2, step_seconds=60, seed=4), nodes)
    write_nodes_table(nodes, folder / "nodes.csv")
    write_workload_trace(trace, folder / "workload.parquet")
    return folder


def test_end_to_end_report_log_and_plot(files, tmp_path, capsys):
    report_path = tmp_path / "out" / "report.json"
    code = run_cli(
        "placement",
        "--workload",
        str(files / "workload.parquet"),
        "--nodes",
        str(files / "nodes.csv"),
        "--policies",
        "random,least-allocated,trimaran-lvrb",
        "--train-fraction",
        "0.4",
        "--seeds",
        "2",
        "--windows",
        "2",
        "--workers",
        "2",
        "--output",
        str(report_path),
        "--mlflow-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--quiet",
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    assert list(report["families"]) == ["custom"]
    family = report["families"]["custom"]
    assert list(family["policies"]) == ["random", "least-allocated", "trimaran-lvrb"]
    assert family["paired"] == {} and report["unavailable"] == {}
    # the test windows cut the steps after the training part, disjoint and adjacent
    windows = family["windows"]
    steps = family["workload"]["steps"]
    assert windows[0]["first_step"] == round(steps * 0.4)
    assert windows[0]["end_step"] == windows[1]["first_step"] and windows[1]["end_step"] == steps
    assert family["goals"]["best_heuristic"] in ("least-allocated", "trimaran-lvrb")
    summary = family["policies"]["random"]["overload_node_minutes"]
    cells = [c for c in family["cells"] if c["policy"] == "random"]
    assert summary["n"] == len(cells) == 4
    assert summary["mean"] == pytest.approx(np.mean([c["overload_node_minutes"] for c in cells]))
    assert summary["low"] <= summary["mean"] <= summary["high"]
    assert (tmp_path / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = pd.read_csv(tmp_path / "out" / "report.assignments.csv", keep_default_na=False)
    assert set(log["policy"]) == {"random", "least-allocated", "trimaran-lvrb"}
    assert set(log["seed"]) == {0} and set(log["window"]) == {0, 1}
    out = capsys.readouterr().out
    assert "overload node-min" in out and "[custom]" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("placement-evaluation")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["custom.random.overload_node_minutes"] == summary["mean"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"report.json", "report.assignments.csv", "report.png"}
    for cell in family["cells"]:
        if cell["seed"] != 0:
            continue
        window = windows[cell["window"]]
        mine = log[(log["policy"] == cell["policy"]) & (log["window"] == cell["window"])]
        recomputed = overload_from_log(files, mine, window["start"], window["end"])
        assert recomputed == cell["overload_node_minutes"]


def overload_from_log(files, log: pd.DataFrame, start: str, end: str) -> float:
    """Overload node-minutes of one window recomputed from the trace and the log alone."""
    trace = pd.read_parquet(files / "workload.parquet")
    nodes = pd.read_csv(files / "nodes.csv").set_index("node")
    test_start, test_end = pd.Timestamp(start), pd.Timestamp(end)
    trace = trace[(trace["timestamp"] >= test_start) & (trace["timestamp"] < test_end)]
    placed = log[log["node"] != ""].set_index("pod")
    trace = trace[trace["pod"].isin(placed.index)].copy()
    first = trace.groupby("pod")["timestamp"].transform("min")
    placed_time = trace["pod"].map(pd.to_datetime(placed["placed_time"], utc=True))
    trace["run_time"] = trace["timestamp"] + (placed_time - first)
    trace = trace[trace["run_time"] < test_end]
    trace["node"] = placed["node"].reindex(trace["pod"]).to_numpy()
    use = trace.groupby(["node", "run_time"])[["cpu_cores", "memory_bytes"]].sum()
    capacity = nodes.reindex(use.index.get_level_values("node"))
    over = (use["cpu_cores"].to_numpy() / capacity["cpu_cores"].to_numpy() > 0.9) | (
        use["memory_bytes"].to_numpy() / capacity["memory_bytes"].to_numpy() > 0.95
    )
    return float(over.sum())


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda t: t.drop(columns=["cpu_request_cores"]), "missing column(s) cpu_request_cores"),
        (
            lambda t: t.assign(cpu_cores=-1.0),
            "column 'cpu_cores', row 1 (line 2): value -1 outside",
        ),
        (lambda t: t.head(0), "no pods (the trace has no rows)"),
        (lambda t: t.assign(timestamp="yesterday"), "cannot parse timestamp 'yesterday'"),
    ],
)
def test_malformed_workload_is_refused_with_file_and_field(files, tmp_path, break_it, message):
    trace = pd.read_parquet(files / "workload.parquet")
    bad = tmp_path / "bad_workload.csv"
    broken = break_it(trace.head(20).copy())
    broken.to_csv(bad, index=False)
    with pytest.raises(MlschedError) as error:
        run_cli(
            "placement",
            "--workload",
            str(bad),
            "--nodes",
            str(files / "nodes.csv"),
            "--output",
            str(tmp_path / "r.json"),
            "--quiet",
        )
    assert str(bad) in str(error.value) and message in str(error.value)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("node,cpu_cores,memory_bytes,gpus\nn1,8,1e9,0.5\n", "GPUs must be whole"),
        ("node,cpu_cores,memory_bytes\nn1,0,1e9\n", "column 'cpu_cores', row 1 (line 2)"),
        ("node,cpu_cores\nn1,8\n", "missing column(s) memory_bytes"),
        ("node,cpu_cores,memory_bytes\nn1,8,1e9\nn1,4,1e9\n", "duplicate node"),
    ],
)
def test_malformed_nodes_table_is_refused(files, tmp_path, content, message):
    bad = tmp_path / "nodes.csv"
    bad.write_text(content)
    with pytest.raises(MlschedError) as error:
        run_cli(
            "placement",
            "--workload",
            str(files / "workload.parquet"),
            "--nodes",
            str(bad),
            "--output",
            str(tmp_path / "r.json"),
            "--quiet",
        )
    assert str(bad) in str(error.value) and message in str(error.value)


def test_unknown_policy_and_bad_output_are_refused(files, tmp_path):
    common = ["--workload", str(files / "workload.parquet"), "--nodes", str(files / "nodes.csv")]
    with pytest.raises(MlschedError, match="--policies: unknown magic; known: "):
        run_cli("placement", *common, "--policies", "random,magic", "--output", "r.json")
    with pytest.raises(MlschedError, match="--output: expected a .json report path"):
        run_cli("placement", *common, "--output", str(tmp_path / "report.txt"))


def test_train_fraction_must_be_inside_0_and_1(files, capsys):
    with pytest.raises(SystemExit):
        run_cli("placement", "--workload", "w", "--nodes", "n", "--train-fraction", "1.5")
    assert "must lie strictly between 0 and 1" in capsys.readouterr().err


def custom(files):
    trace = validate_workload_trace(pd.read_parquet(files / "workload.parquet"))
    nodes = validate_nodes_table(pd.read_csv(files / "nodes.csv"))
    return custom_family(trace, nodes)


def test_dqn_without_a_policy_is_reported_unavailable(files, tmp_path):
    report = evaluate_placement(
        [custom(files)],
        ["random", "dqn"],
        seeds=[0],
        windows=1,
        output=tmp_path / "r.json",
        dqn_unavailable="not built",
        workers=1,
    )
    assert report["unavailable"] == {"dqn": "not built"}
    assert list(report["families"]["custom"]["policies"]) == ["random"]


class Emptiest(BasePolicy):
    """Fewest requested cores first (a real policy standing in for a trained DQN)."""

    def score(self, pod, state, feasible):
        return -state.cpu_requested / state.cpu_capacity


def test_the_reference_is_paired_cell_by_cell_and_a_failure_leaves_no_output(files, tmp_path):
    report = evaluate_placement(
        [custom(files)],
        ["random", "least-allocated", "dqn"],
        seeds=[0, 1, 2],
        windows=2,
        dqn=Emptiest,
        held_out_from_training={"custom": True},
        output=tmp_path / "r.json",
        workers=1,
    )
    family = report["families"]["custom"]
    assert family["held_out_from_training"] is True
    cells = {(c["policy"], c["seed"], c["window"]): c for c in family["cells"]}
    differences = [
        cells["random", s, w]["overload_node_minutes"] - cells["dqn", s, w]["overload_node_minutes"]
        for s in (0, 1, 2)
        for w in (0, 1)
    ]
    paired = family["paired"]["random"]
    assert paired["n"] == 6
    assert paired["mean_difference"] == pytest.approx(np.mean(differences))
    assert paired["verdict"] in ("reference better", "reference worse", "not distinguishable")
    assert paired["distinguishable"] == (paired["low"] > 0 or paired["high"] < 0)
    assert set(family["goals"]) >= {"overload_below_random", "goal_met", "best_heuristic"}
    # least-allocated and the Emptiest stand-in score alike on requests: same cells, same figures
    assert family["paired"]["least-allocated"]["verdict"] == "not distinguishable"

    class Broken(BasePolicy):
        def score(self, pod, state, feasible):
            raise RuntimeError("policy blew up")

    with pytest.raises(RuntimeError, match="policy blew up"):
        evaluate_placement(
            [custom(files)],
            ["random", "dqn"],
            seeds=[0],
            windows=1,
            dqn=Broken,
            output=tmp_path / "x" / "r.json",
            workers=1,
        )
    assert not (tmp_path / "x" / "r.json").exists()


def test_goal_checks_hand_worked():
    def summary(mean):
        return {"mean": mean, "low": mean, "high": mean, "n": 5}

    summaries = {
        "random": {"overload_node_minutes": summary(100.0), "pods_pending": summary(5)},
        "kube-default": {"overload_node_minutes": summary(80.0), "pods_pending": summary(4)},
        "trimaran-lvrb": {"overload_node_minutes": summary(60.0), "pods_pending": summary(6)},
        "dqn": {"overload_node_minutes": summary(50.0), "pods_pending": summary(4)},
    }
    paired = {"trimaran-lvrb": {"verdict": "reference better"}}
    checks = goal_checks(summaries, paired)
    assert checks["best_heuristic"] == "trimaran-lvrb"
    assert checks["overload_below_random"] == pytest.approx(0.5)
    assert checks["overload_below_best_heuristic"] == pytest.approx(1 / 6)
    assert checks["pods_pending_vs_kube_default"] == 0
    assert checks["goal_met"] is True
    assert (
        goal_checks(summaries, {"trimaran-lvrb": {"verdict": "not distinguishable"}})["goal_met"]
        is False
    )
    summaries["dqn"]["pods_pending"] = summary(5)
    assert goal_checks(summaries, paired)["goal_met"] is False
    assert np.isfinite(checks["best_heuristic_overload_node_minutes"])


def test_families_flags_are_checked_before_any_replay(files, tmp_path):
    out = ["--output", str(tmp_path / "r.json"), "--quiet"]
    with pytest.raises(MlschedError, match="--families: unknown magic; known: synthetic"):
        run_cli("placement", "--families", "magic", *out)
    with pytest.raises(MlschedError, match="nab-ec2 need their traces under --data-dir"):
        run_cli("placement", "--families", "nab-ec2", "--data-dir", str(tmp_path), *out)
    with pytest.raises(MlschedError, match="--workload and --nodes go together"):
        run_cli("placement", "--workload", str(files / "workload.parquet"), *out)
    assert not (tmp_path / "r.json").exists()


def test_a_named_family_is_drawn_per_seed(tmp_path):
    report_path = tmp_path / "r.json"
    code = run_cli(
        "placement",
        "--families",
        "synthetic",
        "--policies",
        "kube-default",
        "--seeds",
        "2",
        "--windows",
        "1",
        "--train-fraction",
        "0.9",
        "--workers",
        "1",
        "--output",
        str(report_path),
        "--quiet",
    )
    assert code == 0
    family = json.loads(report_path.read_text())["families"]["synthetic"]
    assert family["workload"]["fixed_across_seeds"] is False
    by_seed = {c["seed"]: c for c in family["cells"]}
    # another seed is another draw, so another figure (kube-default has no randomness of its own)
    utilization = "mean_cpu_utilization_nonempty"
    assert by_seed[0][utilization] != by_seed[1][utilization]


def test_a_saved_dqn_is_the_reference_and_families_it_never_saw_are_held_out(files, tmp_path):
    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
    from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
    from components.placement.dqn.policy import save_dqn_model

    network = NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES, 16, 8)).eval()
    save_dqn_model(network, tmp_path / "model")
    report_path = tmp_path / "r.json"
    common = ["--workload", str(files / "workload.parquet"), "--nodes", str(files / "nodes.csv")]
    code = run_cli(
        "placement",
        *common,
        "--policies",
        "random,dqn",
        "--seeds",
        "2",
        "--windows",
        "1",
        "--dqn-model",
        str(tmp_path / "model"),
        "--output",
        str(report_path),
        "--quiet",
    )
    assert code == 0
    report = json.loads(report_path.read_text())
    family = report["families"]["custom"]
    assert family["held_out_from_training"] is True
    assert set(family["policies"]) == {"random", "dqn"}
    assert family["paired"]["random"]["n"] == 2
    assert report["training"]["dqn"]["trained_on"] == ["synthetic"]
    with pytest.raises(MlschedError, match="not a DQN model folder"):
        run_cli("placement", *common, "--dqn-model", str(tmp_path), "--output", str(report_path))


def test_leave_one_out_trains_one_dqn_per_family_on_the_other_families():
    from components.placement import cli
    from components.placement.evaluate import FamilySource
    from components.placement.families import REAL_FAMILIES

    trained_on = {}

    # a recording stand-in for train_dqn_policy (a real training takes CPU-minutes)
    def trainer(*, seed, families, progress):
        policy = object()
        trained_on[id(policy)] = list(families)
        return policy, {"families": list(families)}

    names = ["synthetic", *REAL_FAMILIES]
    args = argparse.Namespace(dqn_model=None, dqn_training="leave-one-out", quiet=True)
    original = cli.dqn_trainer
    cli.dqn_trainer = lambda: (trainer, None)
    try:
        built, held, why, info = cli.dqn_policies(
            args, [FamilySource(n) for n in names], ["kube-default", "dqn"]
        )
    finally:
        cli.dqn_trainer = original
    assert why is None and set(built) == set(names)
    for name in names:
        families = trained_on[id(built[name])]
        assert name not in families and set(families) == set(REAL_FAMILIES) - {name}
    # every DQN also trained on the generated mix: only the synthetic family is not held out
    assert held == {n: n != "synthetic" for n in names}
    assert info["dqn"]["training"] == "leave-one-out"


def test_each_trained_dqn_s_learning_curve_reaches_the_report_s_mlflow_run(files, tmp_path):
    from components.placement.dqn.train import train_config, train_dqn_policy
    from components.placement.evaluate import learning_curves, log_to_mlflow, report_paths

    family = custom_family(
        pd.read_parquet(files / "workload.parquet"), pd.read_csv(files / "nodes.csv")
    )
    workload, cluster = family.build(0)
    config = train_config(seed=0, episodes=3, time_budget_seconds=60)
    _, info = train_dqn_policy(workload.window(0, workload.n_steps // 2), cluster, config=config)
    curve = info["learning_curve"]
    assert [row["episode"] for row in curve] == [0.0, 1.0, 2.0]
    report = {
        "seeds": [0],
        "windows": [],
        "families": {},
        "train_fraction": 0.5,
        "training": {"dqn": {"training": "leave-one-out", "custom": info}},
    }
    assert list(learning_curves(report["training"])) == ["dqn.custom"]
    output = tmp_path / "report.json"
    for path in report_paths(output):
        path.write_text("{}")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = log_to_mlflow(report, output, client)
    history = client.get_metric_history(run_id, "training.dqn.custom.overload_node_minutes")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert sorted(m.value for m in history) == sorted(r["overload_node_minutes"] for r in curve)
