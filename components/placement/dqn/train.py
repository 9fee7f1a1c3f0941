"""Train the DQN placement policy on the early part of a workload and judge it on the rest.

``python -m components.placement.dqn.train --workload FILE --nodes FILE [--episodes N]
[--learning-rate LR] [--gamma G] [--seed S] [--train-fraction F] [--time-budget SECONDS]
[--tracking-uri URI] [--register]`` prints ``metric=value`` lines (Katib's StdOut format):
the DQN's test metrics (mean over ``--eval-seeds`` replays), every heuristic's, and the
improvements the goal is stated in. With a tracking URI (or the local default store) the run
logs its parameters, per-episode training curves, test metrics, a curves plot and the model
(``dqn/weights.pt`` + ``dqn/config.json``); ``--register`` registers it as ``placement-dqn`` and
moves the ``champion`` alias only through :func:`components.tracking.gate.promote_if_better`,
against the heuristics and the current champion re-scored on the same test replay.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from components.errors import MlschedError
from components.placement.dqn.agent import AgentConfig
from components.placement.dqn.policy import DQNPolicy, load_dqn_policy, save_dqn_model
from components.placement.dqn.training import TrainConfig, TrainedDQN, train_dqn
from components.placement.policy import PlacementPolicy, make_policy
from components.placement.simulator import simulate
from components.placement.workload import Cluster, Workload

MODEL_NAME = "placement-dqn"
MODEL_ARTIFACT = "dqn"
EXPERIMENT = "placement-dqn"
HEURISTICS = (
    "kube-default",
    "least-allocated",
    "most-allocated",
    "trimaran-tlp",
    "trimaran-lvrb",
    "greedy-predictive",
)
BASELINES = ("random", *HEURISTICS)
REPORTED = ("overload_node_minutes", "pods_pending", "pods_never_placed", "mean_pending_minutes")
DEFAULT_TIME_BUDGET = 300.0


def train_config(
    *,
    seed: int = 0,
    episodes: int = TrainConfig.episodes,
    learning_rate: float = AgentConfig.learning_rate,
    gamma: float = AgentConfig.gamma,
    time_budget_seconds: float = DEFAULT_TIME_BUDGET,
    window_hours: float = TrainConfig.window_seconds / 3600,
) -> TrainConfig:
    """A :class:`TrainConfig` from the entrypoint's flags (defaults elsewhere)."""
    agent = dataclasses.replace(AgentConfig(), learning_rate=learning_rate, gamma=gamma)
    return TrainConfig(
        episodes=episodes,
        time_budget_seconds=time_budget_seconds,
        window_seconds=window_hours * 3600,
        seed=seed,
        agent=agent,
    )


def train_dqn_policy(
    train_workload: Workload,
    cluster: Cluster,
    *,
    seed: int = 0,
    config: TrainConfig | None = None,
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> tuple[DQNPolicy, dict]:
    """Train on ``train_workload`` (the early slice only); return the policy and a summary.

    The signature :func:`components.placement.evaluate.evaluate_placement` expects of its
    ``train_dqn`` argument.
    """
    config = config or train_config(seed=seed)
    if config.seed != seed:
        config = dataclasses.replace(config, seed=seed)
    trained = train_dqn(train_workload, cluster, config, on_episode=on_episode, progress=progress)
    return trained.policy(), training_summary(trained)


def training_summary(trained: TrainedDQN) -> dict:
    return {
        "episodes": trained.episodes,
        "training_seconds": round(trained.seconds, 1),
        "training_cpu_seconds": round(trained.cpu_seconds, 1),
        "validation_overload_node_minutes": trained.validation["overload_node_minutes"],
        "validation_pods_pending": trained.validation["pods_pending"],
    }


def evaluate_policies(
    test: Workload,
    cluster: Cluster,
    policies: dict[str, Callable[[], PlacementPolicy]],
    seeds: Sequence[int],
) -> dict[str, dict[str, float]]:
    """Mean of each policy's metrics over replays with ``seeds`` (tie-breaking, randomness)."""
    out = {}
    for name, build in policies.items():
        runs = [simulate(test, cluster, build(), seed=seed).metrics for seed in seeds]
        out[name] = {key: float(np.mean([r[key] for r in runs])) for key in REPORTED}
    return out


def comparison(metrics: dict[str, dict[str, float]], learned: str = "dqn") -> dict[str, float]:
    """Relative overload reductions vs random and the best heuristic; pending vs LeastAllocated."""
    ours = metrics[learned]["overload_node_minutes"]
    best = min(HEURISTICS, key=lambda name: metrics[name]["overload_node_minutes"])
    best_value = metrics[best]["overload_node_minutes"]
    random_value = metrics["random"]["overload_node_minutes"]

    def below(reference: float) -> float:
        return 1.0 - ours / reference if reference > 0 else (0.0 if ours == 0 else -np.inf)

    pending_gap = metrics[learned]["pods_pending"] - metrics["least-allocated"]["pods_pending"]
    result = {
        "improvement_vs_random": below(random_value),
        "improvement_vs_best_heuristic": below(best_value),
        "best_heuristic_overload_node_minutes": best_value,
        "pods_pending_vs_least_allocated": pending_gap,
    }
    result["goal_met"] = float(
        result["improvement_vs_random"] >= 0.34
        and result["improvement_vs_best_heuristic"] >= 0.10
        and pending_gap <= 0
    )
    return {**result, "best_heuristic": best}


def _curves_figure(history: list[dict[str, float]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    episodes = [row["episode"] for row in history]
    axes[0].plot(episodes, [row["mean_reward"] for row in history])
    axes[0].set_title("mean reward per decision")
    losses = [(row["episode"], row["loss"]) for row in history if "loss" in row]
    if losses:
        axes[1].plot(*zip(*losses, strict=True))
    axes[1].set_title("Huber loss")
    validation = [
        (row["episode"], row["validation_overload_node_minutes"])
        for row in history
        if "validation_overload_node_minutes" in row
    ]
    if validation:
        axes[2].plot(*zip(*validation, strict=True), marker="o")
    axes[2].set_title("validation overload node-minutes")
    for axis in axes:
        axis.set_xlabel("episode")
    figure.tight_layout()
    return figure


def _register(client, run_id: str, candidate: float, baselines, score_champion) -> object:
    from mlflow.exceptions import MlflowException

    from components.tracking.gate import promote_if_better

    with contextlib.suppress(MlflowException):
        client.create_registered_model(MODEL_NAME)
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    version = client.create_model_version(MODEL_NAME, source, run_id=run_id)
    return promote_if_better(
        client,
        model_name=MODEL_NAME,
        candidate_version=str(version.version),
        metric="overload_node_minutes",
        higher_is_better=False,
        candidate=candidate,
        baselines=baselines,
        score_champion=score_champion,
        run_id=run_id,
    )


def run_training(args: argparse.Namespace) -> dict[str, object]:
    """The entrypoint's work: read, split, train, evaluate, log, register; returns the figures."""
    from components.contracts import read_nodes_table, read_workload_trace
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    workload = workload_from_trace(read_workload_trace(args.workload), str(args.workload))
    cluster = cluster_from_nodes(read_nodes_table(args.nodes))
    train, test = workload.split(args.train_fraction)
    config = train_config(
        seed=args.seed,
        episodes=args.episodes,
        learning_rate=args.learning_rate,
        gamma=args.gamma,
        time_budget_seconds=args.time_budget,
        window_hours=args.window_hours,
    )
    client, run_id = _open_run(args, config)
    on_episode = None
    if client is not None:

        def on_episode(episode: int, row: dict[str, float]) -> None:
            stamp = int(time.time() * 1000)
            from mlflow.entities import Metric

            metrics = [Metric(f"train_{k}", float(v), stamp, episode) for k, v in row.items()]
            client.log_batch(run_id, metrics=metrics)

    trained = train_dqn(train, cluster, config, on_episode=on_episode, progress=args.progress)
    policy, summary = trained.policy(), training_summary(trained)
    seeds = list(range(args.eval_seeds))
    builders: dict[str, Callable[[], PlacementPolicy]] = {"dqn": lambda: policy}
    builders |= {name: (lambda name=name: make_policy(name)) for name in BASELINES}
    metrics = evaluate_policies(test, cluster, builders, seeds)
    figures = {"metrics": metrics, "comparison": comparison(metrics), "training": summary}
    if client is not None:
        figures["history"] = trained.history
        _log_results(client, run_id, policy, figures, config, args, test, cluster, seeds)
        figures.pop("history")
    return figures


def _open_run(args: argparse.Namespace, config: TrainConfig):
    if args.no_tracking:
        return None, None

    from components.tracking.runs import get_or_create_experiment, open_tracking, point_mlflow_at

    client = open_tracking(args.tracking_uri, default_dir=Path(args.mlflow_dir))
    point_mlflow_at(client)
    experiment_id = get_or_create_experiment(client, EXPERIMENT)
    run = client.create_run(experiment_id, tags={"mlflow.runName": f"dqn-seed{args.seed}"})
    params = {
        "workload": str(args.workload),
        "nodes": str(args.nodes),
        "train_fraction": args.train_fraction,
        "eval_seeds": args.eval_seeds,
        **{f"agent_{k}": v for k, v in config.agent.to_dict().items()},
        **{f"reward_{k}": v for k, v in dataclasses.asdict(config.reward).items()},
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("agent", "reward")},
    }
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return client, run.info.run_id


def _log_results(client, run_id, policy, figures, config, args, test, cluster, seeds) -> None:
    from components.tracking.runs import log_figure

    comparison_figures = figures["comparison"]
    for name, values in figures["metrics"].items():
        for key, value in values.items():
            client.log_metric(run_id, f"{name}_{key}", value)
    for key, value in comparison_figures.items():
        if key != "best_heuristic":
            client.log_metric(run_id, key, float(value))
    client.set_tag(run_id, "best_heuristic", comparison_figures["best_heuristic"])
    for key, value in figures["training"].items():
        client.log_metric(run_id, key, float(value))
    history = figures.get("history")
    if history:
        log_figure(run_id, client, _curves_figure(history), "training_curves.png")
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_dqn_model(
            policy.network,
            Path(tmp) / MODEL_ARTIFACT,
            training=figures["training"],
            train_config={"agent": config.agent.to_dict(), "seed": config.seed},
        )
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    if args.register:
        metrics = figures["metrics"]

        def score_champion(model_uri: str) -> float:
            champion = load_dqn_policy(model_uri)
            scored = evaluate_policies(test, cluster, {"champion": lambda: champion}, seeds)
            return scored["champion"]["overload_node_minutes"]

        decision = _register(
            client,
            run_id,
            metrics["dqn"]["overload_node_minutes"],
            {name: metrics[name]["overload_node_minutes"] for name in BASELINES},
            score_champion,
        )
        figures["registered_version"] = decision.candidate_version
        figures["promoted"] = decision.promoted
        figures["promotion_reason"] = decision.reason
    client.set_terminated(run_id)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.placement.dqn.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workload", required=True, help="workload trace (.parquet or .csv)")
    parser.add_argument("--nodes", required=True, help="nodes table (.csv or .parquet)")
    parser.add_argument("--episodes", type=int, default=TrainConfig.episodes)
    parser.add_argument("--learning-rate", type=float, default=AgentConfig.learning_rate)
    parser.add_argument("--gamma", type=float, default=AgentConfig.gamma)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.5)
    parser.add_argument(
        "--time-budget", type=float, default=DEFAULT_TIME_BUDGET, help="training wall seconds"
    )
    parser.add_argument("--window-hours", type=float, default=TrainConfig.window_seconds / 3600)
    parser.add_argument("--eval-seeds", type=int, default=3, help="test replays per policy")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    parser.add_argument("--mlflow-dir", default="mlruns", help="local store when no URI")
    parser.add_argument("--no-tracking", action="store_true", help="log nothing to MLflow")
    parser.add_argument("--register", action="store_true", help=f"register {MODEL_NAME}")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--progress", action="store_true")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.episodes <= 0:
        raise MlschedError(f"--episodes must be positive, got {args.episodes}")
    if args.learning_rate <= 0:
        raise MlschedError(f"--learning-rate must be positive, got {args.learning_rate:g}")
    if not 0 <= args.gamma < 1:
        raise MlschedError(f"--gamma must be in [0, 1), got {args.gamma:g}")
    if args.eval_seeds <= 0:
        raise MlschedError(f"--eval-seeds must be positive, got {args.eval_seeds}")
    if args.register and args.no_tracking:
        raise MlschedError("--register needs MLflow tracking (drop --no-tracking)")


def print_figures(figures: dict[str, object], out=None) -> None:
    """``metric=value`` lines: the DQN's, the comparison, each baseline's, training."""
    out = out or sys.stdout
    metrics = figures["metrics"]
    for key, value in metrics["dqn"].items():
        print(f"{key}={value:g}", file=out)
    for key, value in figures["comparison"].items():
        print(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}", file=out)
    for name, values in metrics.items():
        if name == "dqn":
            continue
        label = name.replace("-", "_")
        for key in ("overload_node_minutes", "pods_pending"):
            print(f"{label}_{key}={values[key]:g}", file=out)
    for key, value in figures["training"].items():
        print(f"{key}={value}", file=out)
    for key in ("registered_version", "promoted", "promotion_reason"):
        if key in figures:
            print(f"{key}={figures[key]}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        _validate(args)
        if args.tracking_uri is None:
            args.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
        figures = run_training(args)
    except MlschedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
