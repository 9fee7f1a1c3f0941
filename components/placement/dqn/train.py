"""Train the DQN placement policy on a randomised mix of generated workloads and judge it on a
workload it never trained on.

``python -m components.placement.dqn.train --workload FILE --nodes FILE [--train-on mix|workload|
both] [--mix-sources N] [--episodes N] [--learning-rate LR] [--gamma G] [--train-fraction F]
[--time-budget CPU_SECONDS]`` plus the shared training flags (:mod:`components.tracking.entrypoint`)
prints ``metric=value`` lines (Katib's StdOut format): the DQN's test metrics on the last
``1 - F`` of the workload (mean over ``--eval-seeds`` replays), every heuristic's, and the
improvements the goal is stated in. With ``--train-on mix`` (the default) the DQN trains on
generated workloads only (:mod:`~components.placement.dqn.mix`), so the given workload is a held-out
family; ``workload`` trains on its first ``F`` instead, ``both`` on the two. When tracked, the run
logs its parameters, per-episode training curves (validation overload relative to the heuristic
prior included), test metrics, a curves plot and the model (``dqn/weights.pt`` +
``dqn/config.json``); ``--register`` registers it as a candidate version of ``placement-dqn``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Sequence

import numpy as np

from components.errors import MlschedError
from components.model_contracts import PLACEMENT_DQN, PLACEMENT_HEURISTICS
from components.placement.dqn.agent import AgentConfig
from components.placement.dqn.mix import DEFAULT_SOURCES, Source, family_sources, training_mix
from components.placement.dqn.policy import DQNPolicy, load_dqn_policy, save_dqn_model
from components.placement.dqn.training import TrainConfig, TrainedDQN, train_dqn_mix
from components.placement.policy import PlacementPolicy, make_policy
from components.placement.simulator import SimulationConfig, simulate
from components.placement.workload import Cluster, Workload
from components.tracking.entrypoint import (
    add_training_flags,
    print_metric_lines,
    run_entrypoint_main,
)

PROG = f"python -m {PLACEMENT_DQN.entrypoint}"
MODEL_ARTIFACT = "dqn"
GATE_METRIC = PLACEMENT_DQN.gate_metric
REPORTED = ("overload_node_minutes", "pods_pending", "pods_never_placed", "mean_pending_minutes")
DEFAULT_TIME_BUDGET = TrainConfig.time_budget_seconds
TRAIN_ON = ("mix", "workload", "both")


def train_config(
    *,
    seed: int = 0,
    episodes: int = TrainConfig.episodes,
    learning_rate: float = AgentConfig.learning_rate,
    gamma: float = AgentConfig.gamma,
    time_budget_seconds: float = DEFAULT_TIME_BUDGET,
    window_hours: float = TrainConfig.window_seconds / 3600,
    validation_hours: float = TrainConfig.validation_window_seconds / 3600,
) -> TrainConfig:
    """A :class:`TrainConfig` from the entrypoint's flags (defaults elsewhere)."""
    agent = dataclasses.replace(AgentConfig(), learning_rate=learning_rate, gamma=gamma)
    return TrainConfig(
        episodes=episodes,
        time_budget_seconds=time_budget_seconds,
        window_seconds=window_hours * 3600,
        validation_window_seconds=validation_hours * 3600,
        seed=seed,
        agent=agent,
    )


def train_dqn_policy(
    train_workload: Workload | None = None,
    cluster: Cluster | None = None,
    *,
    seed: int = 0,
    config: TrainConfig | None = None,
    mix_sources: int = 0,
    families: Sequence[str] = (),
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    threads: int = 1,
    simulation: SimulationConfig | None = None,
) -> tuple[DQNPolicy, dict]:
    """Train on ``train_workload`` (the early slice only) over ``cluster``, plus ``mix_sources``
    randomised generated workloads (:func:`~components.placement.dqn.mix.training_mix`), plus
    the training parts of draws of the named ``families``
    (:func:`~components.placement.dqn.mix.family_sources`; leave-one-family-out passes every
    family but the held-out one); return the policy and a summary. With no workload, the mix
    (``DEFAULT_SOURCES`` of them when ``mix_sources`` is 0) and the families.

    The signature ``mlsched evaluate placement`` expects of a per-family trainer;
    ``simulation`` replaces the config's simulator knobs (the evaluation's own).
    """
    config = config or train_config(seed=seed)
    if config.seed != seed:
        config = dataclasses.replace(config, seed=seed)
    if simulation is not None:
        config = dataclasses.replace(config, simulation=simulation)
    sources: list[Source] = []
    if train_workload is not None:
        if cluster is None:
            raise MlschedError("train_dqn_policy: a training workload needs its cluster")
        sources.append((train_workload, cluster))
    if mix_sources or not sources:
        sources += training_mix(seed, mix_sources or DEFAULT_SOURCES)
    sources += family_sources(families, seed)
    import torch

    # one thread by default, as the entrypoint's --threads: the network is small, and spare
    # threads spinning count against the CPU-time budget (measured: 15-80 episodes in it
    # instead of ~250)
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        trained = train_dqn_mix(sources, config, on_episode=on_episode, progress=progress)
    finally:
        torch.set_num_threads(previous)
    summary = training_summary(trained)
    if families:
        summary["trained_on_families"] = list(families)
    # per episode, for the report's MLflow run (mlsched evaluate placement --mlflow-uri)
    summary["learning_curve"] = [dict(row) for row in trained.history]
    return trained.policy(), summary


def training_summary(trained: TrainedDQN) -> dict:
    network = trained.network.config
    return {
        "episodes": trained.episodes,
        "training_seconds": round(trained.seconds, 1),
        "training_cpu_seconds": round(trained.cpu_seconds, 1),
        "validation_overload_node_minutes": trained.validation["overload_node_minutes"],
        "validation_pods_pending": trained.validation["pods_pending"],
        "prior_weight": network.prior_weight,
        "learned_weight": network.learned_weight,
        **{f"validation_relative_{name}": value for name, value in trained.mix_scores.items()},
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
    best = min(PLACEMENT_HEURISTICS, key=lambda name: metrics[name]["overload_node_minutes"])
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
        (row["episode"], row["validation_relative_overload"])
        for row in history
        if "validation_relative_overload" in row
    ]
    if validation:
        axes[2].plot(*zip(*validation, strict=True), marker="o")
        axes[2].axhline(1.0, color="grey", linestyle="--", label="heuristic prior")
        axes[2].legend()
    axes[2].set_title("validation overload / heuristic prior's")
    for axis in axes:
        axis.set_xlabel("episode")
    figure.tight_layout()
    return figure


def _training_params(args: argparse.Namespace, config: TrainConfig) -> dict:
    return {
        "workload": str(args.workload),
        "nodes": str(args.nodes),
        "train_fraction": args.train_fraction,
        "eval_seeds": args.eval_seeds,
        "train_on": args.train_on,
        "mix_sources": args.mix_sources,
        **{f"agent_{k}": v for k, v in config.agent.to_dict().items()},
        **{f"reward_{k}": v for k, v in dataclasses.asdict(config.reward).items()},
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("agent", "reward")},
    }


def _held_out(held_out: dict) -> tuple[Workload, Cluster]:
    from components.contracts import read_nodes_table, read_workload_trace
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    workload = workload_from_trace(read_workload_trace(held_out["workload"]), held_out["workload"])
    cluster = cluster_from_nodes(read_nodes_table(held_out["nodes"]))
    return workload, cluster


def run(args: argparse.Namespace) -> dict:
    """Read, split, train, evaluate, log and (with ``--register``) register; returns the result
    document."""
    import torch

    from components.tracking.entrypoint import tracked_run, training_result, write_result_file

    _validate(args)
    torch.set_num_threads(max(1, args.threads))
    held_out = {
        "workload": str(args.workload),
        "nodes": str(args.nodes),
        "train_fraction": args.train_fraction,
        "eval_seeds": args.eval_seeds,
    }
    workload, cluster = _held_out(held_out)
    train, test = workload.split(args.train_fraction)
    sources: list[Source] = []
    if args.train_on in ("workload", "both"):
        sources.append((train, cluster))
    if args.train_on in ("mix", "both"):
        sources += training_mix(args.seed, args.mix_sources)
    config = train_config(
        seed=args.seed,
        episodes=args.episodes,
        learning_rate=args.learning_rate,
        gamma=args.gamma,
        time_budget_seconds=args.time_budget,
        window_hours=args.window_hours,
        validation_hours=args.validation_hours,
    )
    track = tracked_run(args, PLACEMENT_DQN, _training_params(args, config))  # entered below
    with contextlib.nullcontext() if args.no_tracking else track as tracked:
        on_episode = None
        if tracked is not None:

            def on_episode(episode: int, row: dict[str, float]) -> None:
                tracked.log_metrics({f"train_{k}": v for k, v in row.items()}, step=episode)

        trained = train_dqn_mix(sources, config, on_episode=on_episode, progress=args.progress)
        policy, summary = trained.policy(), training_summary(trained)
        builders: dict[str, Callable[[], PlacementPolicy]] = {"dqn": lambda: policy}
        builders |= {
            name: (lambda name=name: make_policy(name)) for name in PLACEMENT_DQN.baselines
        }
        metrics = evaluate_policies(test, cluster, builders, range(args.eval_seeds))
        figures = {"metrics": metrics, "comparison": comparison(metrics), "training": summary}
        lines = figure_lines(figures)
        print_metric_lines(lines)
        outcome = {
            "value": metrics["dqn"][GATE_METRIC],
            "baselines": {name: metrics[name][GATE_METRIC] for name in PLACEMENT_DQN.baselines},
            "metrics": lines,
            "held_out": held_out,
        }
        if tracked is not None:
            model_uri = _log_results(tracked, policy, figures, config, trained.history)
            version = tracked.register(model_uri) if args.register else None
            outcome |= {"run": tracked, "model_uri": model_uri, "registered_version": version}
    result = training_result(PLACEMENT_DQN, **outcome)
    write_result_file(result, args.result_file)
    return result


def _log_results(tracked, policy: DQNPolicy, figures: dict, config: TrainConfig, history) -> str:
    """Log the test figures, curves and model folder; returns the model folder's URI."""
    comparison_figures = figures["comparison"]
    tracked.log_metrics(
        {f"{name}_{k}": v for name, values in figures["metrics"].items() for k, v in values.items()}
    )
    tracked.log_metrics({k: v for k, v in comparison_figures.items() if k != "best_heuristic"})
    tracked.client.set_tag(tracked.run_id, "best_heuristic", comparison_figures["best_heuristic"])
    tracked.log_metrics(figures["training"])
    if history:
        tracked.log_figure(_curves_figure(history), "training_curves.png")
    return tracked.log_folder(
        lambda folder: save_dqn_model(
            policy.network,
            folder,
            training=figures["training"],
            train_config={"agent": config.agent.to_dict(), "seed": config.seed},
        ),
        MODEL_ARTIFACT,
    )


def score_model(model_uri: str, held_out: dict) -> float:
    """Overload node-minutes of the policy at ``model_uri`` on the held-out (test) part of the
    workload a training result describes, averaged over the same replay seeds."""
    workload, cluster = _held_out(held_out)
    _, test = workload.split(held_out["train_fraction"])
    policy = load_dqn_policy(model_uri)
    seeds = range(held_out["eval_seeds"])
    return evaluate_policies(test, cluster, {"candidate": lambda: policy}, seeds)["candidate"][
        GATE_METRIC
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, help="workload trace (.parquet or .csv)")
    parser.add_argument("--nodes", required=True, help="nodes table (.csv or .parquet)")
    parser.add_argument(
        "--train-on",
        choices=TRAIN_ON,
        default="mix",
        help="mix: generated workloads only (the given workload held out); workload: its first "
        "--train-fraction; both",
    )
    parser.add_argument("--mix-sources", type=int, default=DEFAULT_SOURCES)
    parser.add_argument("--episodes", type=int, default=TrainConfig.episodes)
    parser.add_argument("--learning-rate", type=float, default=AgentConfig.learning_rate)
    parser.add_argument("--gamma", type=float, default=AgentConfig.gamma)
    parser.add_argument("--train-fraction", type=float, default=0.5)
    parser.add_argument(
        "--time-budget",
        type=float,
        default=DEFAULT_TIME_BUDGET,
        help="CPU seconds after which no new episode starts",
    )
    parser.add_argument("--window-hours", type=float, default=TrainConfig.window_seconds / 3600)
    parser.add_argument(
        "--validation-hours",
        type=float,
        default=TrainConfig.validation_window_seconds / 3600,
        help="length of each source's validation window",
    )
    parser.add_argument("--eval-seeds", type=int, default=3, help="test replays per policy")
    add_training_flags(parser, PLACEMENT_DQN)
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
    if args.mix_sources <= 0 and args.train_on != "workload":
        raise MlschedError(f"--mix-sources must be positive, got {args.mix_sources}")
    if args.eval_seeds <= 0:
        raise MlschedError(f"--eval-seeds must be positive, got {args.eval_seeds}")


def figure_lines(figures: dict[str, object]) -> dict[str, float | int | str]:
    """The ``metric=value`` figures: the DQN's, the comparison, each baseline's, training."""
    metrics = figures["metrics"]
    lines: dict[str, float | int | str] = dict(metrics["dqn"])
    lines |= figures["comparison"]
    for name, values in metrics.items():
        if name != "dqn":
            label = name.replace("-", "_")
            lines |= {
                f"{label}_{key}": values[key] for key in ("overload_node_minutes", "pods_pending")
            }
    return lines | figures["training"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_entrypoint_main(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
