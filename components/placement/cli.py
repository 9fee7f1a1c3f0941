"""``mlsched evaluate placement``: flags and the handler; registered by :mod:`components.cli`."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from components.cli_args import fraction
from components.errors import MlschedError

DQN_TRAINERS = (
    ("components.placement.dqn.train", "train_dqn_policy"),
    ("components.placement.dqn", "train_for_evaluation"),
)


def add_evaluate_placement_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Add ``placement`` to the sub-parsers of ``mlsched evaluate``."""
    placement = evaluate_subparsers.add_parser(
        "placement",
        help="replay a workload under every placement policy and compare them",
        description=(
            "Split the workload trace in time; train the DQN on the first part; replay every "
            "policy on the rest and write the report (JSON), an assignment log (CSV) and a plot "
            "(PNG) beside it."
        ),
    )
    placement.add_argument("--workload", required=True, help="workload trace (.parquet or .csv)")
    placement.add_argument("--nodes", required=True, help="nodes table (.parquet or .csv)")
    placement.add_argument(
        "--train-fraction", type=fraction, default=0.5, help="share of the steps for training"
    )
    placement.add_argument(
        "--policies",
        default="all",
        help="comma-separated policy names, or 'all' (every registered policy and dqn)",
    )
    placement.add_argument("--seed", type=int, default=0)
    placement.add_argument("--output", default="placement_report.json", help="report path (.json)")
    placement.add_argument(
        "--mlflow-uri", help="also record the report in this MLflow tracking server / store"
    )
    placement.add_argument("--quiet", action="store_true", help="no progress bars")
    placement.set_defaults(handler=cmd_evaluate_placement)
    return placement


def dqn_trainer():
    """The DQN's training function ``(train, cluster, *, seed)``, or (None, why not)."""
    reasons = []
    for module_name, function in DQN_TRAINERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            reasons.append(f"{module_name} cannot be imported ({error})")
            continue
        trainer = getattr(module, function, None)
        if trainer is not None:
            return trainer, None
        reasons.append(f"{module_name} has no {function}()")
    return None, "; ".join(reasons)


def resolve_policies(text: str) -> list[str]:
    """Policy names from ``--policies`` (``all`` = every registered one plus dqn)."""
    from components.placement.policy import policy_names

    known = policy_names()
    if text.strip() == "all":
        return [n for n in known if n != "dqn"] + ["dqn"]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MlschedError("--policies: no policy names given")
    unknown = [n for n in names if n not in known and n != "dqn"]
    if unknown:
        raise MlschedError(
            f"--policies: unknown {', '.join(unknown)}; known: {', '.join(known + ['dqn'])}"
        )
    return list(dict.fromkeys(names))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def cmd_evaluate_placement(args: argparse.Namespace) -> int:
    from components.contracts import read_nodes_table, read_workload_trace
    from components.placement.evaluate import evaluate_placement

    output = Path(args.output)
    if output.suffix.lower() != ".json":
        raise MlschedError(f"--output: expected a .json report path, got {args.output!r}")
    policies = resolve_policies(args.policies)
    trace = read_workload_trace(args.workload)
    if trace.empty:
        raise MlschedError(f"{args.workload}: no pods (the trace has no rows)")
    nodes = read_nodes_table(args.nodes)
    trainer, why = dqn_trainer() if "dqn" in policies else (None, None)
    report = evaluate_placement(
        trace,
        nodes,
        policies,
        train_fraction=args.train_fraction,
        seed=args.seed,
        output=output,
        train_dqn=trainer,
        dqn_unavailable=why,
        progress=not args.quiet,
    )
    for name, metrics in report["policies"].items():
        print(
            f"{name:>18}: overload {metrics['overload_node_minutes']:9.0f} node-min, "
            f"pending pods {metrics['pods_pending']:5d} (never placed "
            f"{metrics['pods_never_placed']}), "
            f"CPU util {metrics['mean_cpu_utilization_nonempty']:.3f}, "
            f"imbalance {metrics['load_imbalance']:.3f}, {metrics['simulation_seconds']:.1f}s"
        )
    for name, reason in report["unavailable"].items():
        print(f"{name:>18}: unavailable: {reason}")
    comparison = report["comparison"]
    if "goal_met" in comparison:
        print(
            f"dqn overload below random {_percent(comparison.get('overload_below_random'))}, "
            f"below best heuristic ({comparison.get('best_heuristic')}) "
            f"{_percent(comparison.get('overload_below_best_heuristic'))}; "
            f"goal met: {comparison['goal_met']}"
        )
    print(f"report: {output} (+ {report['assignment_log']}, {report['plot']})")
    if args.mlflow_uri:
        from mlflow import MlflowClient

        from components.placement.evaluate import log_to_mlflow

        run_id = log_to_mlflow(report, output, MlflowClient(args.mlflow_uri))
        print(f"mlflow run: {run_id} at {args.mlflow_uri}")
    return 0
