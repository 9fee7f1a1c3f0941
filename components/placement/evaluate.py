"""The placement benchmark: every policy replayed on the later part of a workload.

The trace is split in time (:meth:`Workload.split`): a learning policy (the DQN) trains on the
first part only; every policy, baselines included, is replayed on the rest from an empty
cluster (pods alive at the cut arrive at its first step). Written side by side, atomically:

* ``report.json``: each policy's metrics, the split, the goal checks;
* ``<report>.assignments.csv``: one row per (policy, pod): node, arrival and placement time,
  pending minutes (node empty when never placed), so the figures can be recomputed;
* ``<report>.png``: the policies compared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from components.atomic import replace_path, write_text
from components.errors import MlschedError
from components.placement.policy import PlacementPolicy, make_policy
from components.placement.simulator import (
    Forecaster,
    SimulationConfig,
    SimulationResult,
    simulate,
)
from components.placement.workload import (
    Cluster,
    Workload,
    cluster_from_nodes,
    workload_from_trace,
)

TrainDQN = Callable[..., PlacementPolicy]
"""``train_dqn(train_workload, cluster, seed=seed)`` returns the trained policy. It may also
return ``(policy, info)`` with ``info`` a JSON-able dict (training figures) for the report."""

HEURISTIC_EXCLUDED = ("random", "dqn")
GOAL_BELOW_RANDOM = 0.34
GOAL_BELOW_BEST_HEURISTIC = 0.10
PLOT_METRICS = (
    ("overload_node_minutes", "overload node-minutes"),
    ("pods_pending", "pods that waited"),
    ("mean_cpu_utilization_nonempty", "mean CPU utilisation (non-empty nodes)"),
    ("load_imbalance", "load imbalance (std of node CPU utilisation)"),
)


def _as_workload(workload: pd.DataFrame | Workload) -> Workload:
    return workload if isinstance(workload, Workload) else workload_from_trace(workload)


def _as_cluster(nodes: pd.DataFrame | Cluster) -> Cluster:
    return nodes if isinstance(nodes, Cluster) else cluster_from_nodes(nodes)


def _report_paths(output: str | os.PathLike) -> tuple[Path, Path, Path]:
    path = Path(output)
    if path.suffix.lower() != ".json":
        path = path / "report.json"
    stem = path.with_suffix("")
    return path, Path(f"{stem}.assignments.csv"), Path(f"{stem}.png")


def goal_checks(metrics: dict[str, dict[str, float]], learned: str = "dqn") -> dict[str, object]:
    """How ``learned`` compares with random, the best heuristic and LeastAllocated.

    The best heuristic is the baseline (not random, not a learned policy) with the fewest
    overload node-minutes.
    """
    heuristics = {
        name: m["overload_node_minutes"]
        for name, m in metrics.items()
        if name not in HEURISTIC_EXCLUDED
    }
    checks: dict[str, object] = {}
    if heuristics:
        best = min(sorted(heuristics), key=heuristics.get)
        checks["best_heuristic"] = best
        checks["best_heuristic_overload_node_minutes"] = heuristics[best]
    if learned not in metrics:
        return checks
    ours = metrics[learned]["overload_node_minutes"]

    def below(reference: float) -> float | None:
        return None if reference <= 0 else float(1 - ours / reference)

    if "random" in metrics:
        checks["overload_below_random"] = below(metrics["random"]["overload_node_minutes"])
    if heuristics:
        checks["overload_below_best_heuristic"] = below(heuristics[checks["best_heuristic"]])
    if "least-allocated" in metrics:
        checks["pods_pending_vs_least_allocated"] = int(
            metrics[learned]["pods_pending"] - metrics["least-allocated"]["pods_pending"]
        )
    parts = [
        (checks.get("overload_below_random") or 0) >= GOAL_BELOW_RANDOM,
        (checks.get("overload_below_best_heuristic") or 0) >= GOAL_BELOW_BEST_HEURISTIC,
        checks.get("pods_pending_vs_least_allocated", 1) <= 0,
    ]
    checks["goal_met"] = bool(all(parts))
    return checks


def evaluate_placement(
    workload: pd.DataFrame | Workload,
    nodes: pd.DataFrame | Cluster,
    policies: Sequence[str],
    *,
    train_fraction: float = 0.5,
    seed: int = 0,
    output: str | os.PathLike = "report.json",
    train_dqn: TrainDQN | None = None,
    dqn_unavailable: str | None = None,
    config: SimulationConfig | None = None,
    forecaster: Forecaster | None = None,
    progress: bool = False,
) -> dict:
    """Replay every policy on the test part and write the report, log and plot.

    Args:
        workload: a validated workload-trace frame, or a :class:`Workload`.
        nodes: a validated nodes-table frame, or a :class:`Cluster`.
        policies: registered policy names; ``dqn`` is trained with ``train_dqn`` on the first
            part (reported as unavailable, with ``dqn_unavailable`` or a default reason, when
            ``train_dqn`` is None).
        train_fraction: share of the steps used for training; the rest is the test replay.
        seed: seeds every policy and the simulator's tie-breaking.
        output: the report's path (``*.json``) or a folder to hold ``report.json``.
        config: simulator knobs; forecaster: optional P90 forecaster for the state.

    Returns:
        The report (also written as JSON).
    """
    if not policies:
        raise MlschedError("no placement policies to evaluate")
    full = _as_workload(workload)
    cluster = _as_cluster(nodes)
    train, test = full.split(train_fraction)
    config = config or SimulationConfig()
    report_path, log_path, plot_path = _report_paths(output)

    results: dict[str, SimulationResult] = {}
    unavailable: dict[str, str] = {}
    training: dict[str, object] = {}
    for name in dict.fromkeys(policies):
        if name == "dqn":
            if train_dqn is None:
                unavailable[name] = dqn_unavailable or "no DQN training function was given"
                continue
            trained = train_dqn(train, cluster, seed=seed)
            policy, info = trained if isinstance(trained, tuple) else (trained, {})
            training[name] = info
        else:
            policy = make_policy(name)
        results[name] = simulate(
            test,
            cluster,
            policy,
            seed=seed,
            config=config,
            forecaster=forecaster,
            progress=progress,
        )
    metrics = {name: result.metrics for name, result in results.items()}
    report = {
        "workload": {
            "pods": full.n_pods,
            "steps": full.n_steps,
            "step_seconds": full.step_seconds,
            "start": full.start.isoformat(),
            "train_fraction": train_fraction,
            "train_steps": train.n_steps,
            "train_pods": train.n_pods,
            "test_start": test.start.isoformat(),
            "test_steps": test.n_steps,
            "test_pods": test.n_pods,
        },
        "nodes": len(cluster.nodes),
        "seed": seed,
        "simulation": {
            "history_window": config.history_window,
            "cpu_overload": config.cpu_overload,
            "memory_overload": config.memory_overload,
            "gpu_aware": config.gpu_aware,
        },
        "policies": metrics,
        "unavailable": unavailable,
        "training": training,
        "comparison": goal_checks(metrics),
        "assignment_log": log_path.name,
        "plot": plot_path.name,
    }
    _write_outputs(report, results, report_path, log_path, plot_path)
    return report


def log_to_mlflow(
    report: dict, report_path: str | os.PathLike, client, experiment: str = "placement-evaluation"
) -> str:
    """Record a written report in MLflow: one run, ``<policy>.<metric>`` metrics, the files.

    Args:
        report: what :func:`evaluate_placement` returned.
        report_path: where it was written (the log and plot sit beside it).
        client: an ``mlflow.MlflowClient``.

    Returns:
        The run id.
    """
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name="evaluate-placement")
    run_id = run.info.run_id
    try:
        client.log_param(run_id, "seed", report["seed"])
        client.log_param(run_id, "train_fraction", report["workload"]["train_fraction"])
        client.log_param(run_id, "policies", ",".join(report["policies"]))
        for name, metrics in report["policies"].items():
            for key, value in metrics.items():
                client.log_metric(run_id, f"{name}.{key}", float(value))
        report_path, log_path, plot_path = _report_paths(report_path)
        for path in (report_path, log_path, plot_path):
            client.log_artifact(run_id, str(path))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def assignment_log(results: dict[str, SimulationResult]) -> pd.DataFrame:
    """All runs' assignments in one table, with a ``policy`` column first."""
    frames = [r.assignments.assign(policy=name) for name, r in results.items()]
    if not frames:
        return pd.DataFrame(columns=["policy", "pod", "node", "arrival_time", "placed_time"])
    log = pd.concat(frames, ignore_index=True)
    return log[["policy"] + [c for c in log.columns if c != "policy"]]


def plot_comparison(metrics: dict[str, dict[str, float]], path: Path) -> None:
    """A 2 x 2 bar chart of the main metrics per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics)
    figure, axes = plt.subplots(2, 2, figsize=(11, 7))
    for axis, (key, title) in zip(axes.flat, PLOT_METRICS, strict=True):
        values = [metrics[n].get(key, np.nan) for n in names]
        colors = ["tab:red" if n == "dqn" else "tab:blue" for n in names]
        axis.bar(names, values, color=colors)
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", rotation=35, labelsize=8)
    figure.suptitle("placement policies on the test replay")
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)


def _write_outputs(report, results, report_path: Path, log_path: Path, plot_path: Path) -> None:
    log = assignment_log(results)
    for column in ("arrival_time", "placed_time"):
        if column in log:
            log[column] = pd.to_datetime(log[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The report goes last: where it is new, so are the log and the plot.
    replace_path(log_path, lambda tmp: log.to_csv(tmp, index=False))
    replace_path(plot_path, lambda tmp: plot_comparison(report["policies"], tmp))
    write_text(report_path, json.dumps(report, indent=1, default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
