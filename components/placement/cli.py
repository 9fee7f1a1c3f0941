"""``mlsched evaluate placement``: flags and the handler; registered by :mod:`components.cli`."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
from pathlib import Path

from components.cli_args import fraction, non_negative_seconds, positive_int
from components.errors import MlschedError

DQN_TRAINERS = (
    ("components.placement.dqn.train", "train_dqn_policy"),
    ("components.placement.dqn", "train_for_evaluation"),
)
"""Per-family trainers ``(train_workload, cluster, *, seed) -> policy | (policy, info)``."""
DEFAULT_DQN_TRAINED_ON = "synthetic"


def add_evaluate_placement_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Add ``placement`` to the sub-parsers of ``mlsched evaluate``."""
    placement = evaluate_subparsers.add_parser(
        "placement",
        help="replay workload families under every placement policy and compare them",
        description=(
            "Replay every policy on every workload family x seed x disjoint test window; report "
            "each metric as mean and 95 %% interval over the (seed, window) cells and each "
            "policy's paired difference to the DQN (JSON), with an assignment log (CSV) and a "
            "plot (PNG) beside it. --workload/--nodes add a custom family."
        ),
    )
    placement.add_argument(
        "--families",
        help="comma-separated workload families, or 'all' (default: all available here; only "
        "the custom family when --workload/--nodes are given)",
    )
    placement.add_argument("--data-dir", help="folder of the real traces (default ../shared/data)")
    placement.add_argument("--workload", help="a custom family's workload trace (.parquet/.csv)")
    placement.add_argument("--nodes", help="the custom family's nodes table (.parquet or .csv)")
    placement.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULT_SEEDS,
        help=f"draws per family (seeds 0..N-1; default {DEFAULT_SEEDS})",
    )
    placement.add_argument(
        "--windows", type=positive_int, default=3, help="disjoint test windows per draw"
    )
    placement.add_argument(
        "--train-fraction",
        type=fraction,
        default=0.5,
        help="share of each draw's steps left to training; the test windows cut the rest",
    )
    placement.add_argument(
        "--policies",
        default="all",
        help="comma-separated policy names, or 'all' (every registered policy and dqn)",
    )
    placement.add_argument(
        "--dqn-model",
        help="a saved DQN (folder or MLflow URI) to evaluate as dqn; without it the DQN is "
        "trained (--dqn-training)",
    )
    placement.add_argument(
        "--dqn-training",
        choices=("mix", "per-family", "leave-one-out"),
        default="mix",
        help="without --dqn-model: train the DQN once on the generated training mix (every "
        "family but synthetic held out; default), per family on the first draw's training "
        "part (no family held out), or leave-one-out: one DQN per family on the generated mix "
        "plus the training parts of the other families' own draws (each family held out from "
        "its DQN)",
    )
    placement.add_argument(
        "--dqn-trained-on",
        default=DEFAULT_DQN_TRAINED_ON,
        help="families --dqn-model was trained on (the others are reported held out)",
    )
    placement.add_argument(
        "--observation-lag",
        type=non_negative_seconds,
        default=None,
        help="how old the node use policies see is (default 60s)",
    )
    placement.add_argument(
        "--workload-profiles",
        action="store_true",
        help="hand every policy each pod's workload profile (what its workload's pods used in "
        "the last hour, from the observed use) in training and evaluation",
    )
    placement.add_argument("--workers", type=positive_int, help="processes (default: the cores)")
    placement.add_argument("--output", default="placement_report.json", help="report path (.json)")
    placement.add_argument(
        "--mlflow-uri", help="also record the report in this MLflow tracking server / store"
    )
    placement.add_argument("--quiet", action="store_true", help="no progress bars")
    placement.set_defaults(handler=cmd_evaluate_placement)
    return placement


DEFAULT_SEEDS = 20
"""Draws per family: one changed decision moves a window's overload by tens of percent, so 5
seeds (15 cells) leave paired intervals of about +-25 % of the mean; 20 (60 cells) halve them."""


def dqn_trainer():
    """The DQN's per-family training function ``(train, cluster, *, seed)``, or (None, why)."""
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


def resolve_families(args: argparse.Namespace):
    """The :class:`FamilySource` list the flags ask for (named families, then the custom one)."""
    from components.contracts import read_nodes_table, read_workload_trace
    from components.placement.evaluate import FamilySource, custom_family
    from components.placement.families import FAMILY_NAMES, available_families

    if (args.workload is None) != (args.nodes is None):
        raise MlschedError("--workload and --nodes go together (a custom family needs both)")
    custom = args.workload is not None
    text = args.families if args.families is not None else ("" if custom else "all")
    available = available_families(args.data_dir)
    if text.strip() == "all":
        names = available
    else:
        names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in FAMILY_NAMES]
        if unknown:
            raise MlschedError(
                f"--families: unknown {', '.join(unknown)}; known: {', '.join(FAMILY_NAMES)}"
            )
        missing = [n for n in names if n not in available]
        if missing:
            raise MlschedError(
                f"--families: {', '.join(missing)} need their traces under --data-dir "
                f"({args.data_dir or '../shared/data'}), which are absent"
            )
    sources = [FamilySource(n, data_dir=args.data_dir) for n in names]
    if custom:
        trace = read_workload_trace(args.workload)
        if trace.empty:
            raise MlschedError(f"{args.workload}: no pods (the trace has no rows)")
        sources.append(custom_family(trace, read_nodes_table(args.nodes)))
    if not sources:
        raise MlschedError("--families: no workload families to evaluate")
    return sources


def dqn_policies(args, families, policies: list[str], seed: int = 0, simulation=None):
    """(dqn factory or per-family mapping, held-out flags, unavailable reason, training info);
    a DQN trained here replays its episodes under ``simulation`` (the evaluation's config)."""
    from components.placement.evaluate import cut_test_windows

    names = [f.name for f in families]
    if "dqn" not in policies:
        return None, False, None, {}
    if args.dqn_model:
        from components.placement.dqn.policy import load_dqn_policy

        trained_on = {n.strip() for n in args.dqn_trained_on.split(",") if n.strip()}
        load_dqn_policy(args.dqn_model)  # a bad model fails here, once, with its reason
        factory = functools.partial(load_dqn_policy, args.dqn_model)
        held = {n: n not in trained_on for n in names}
        return (
            factory,
            held,
            None,
            {"dqn": {"model": args.dqn_model, "trained_on": sorted(trained_on)}},
        )
    trainer, why = dqn_trainer()
    if trainer is None:
        return None, False, why, {}
    if simulation is not None:
        trainer = functools.partial(trainer, simulation=simulation)
    if args.dqn_training == "mix":
        # The mix is the project generator's workloads: only the synthetic family is its kin.
        trained = trainer(seed=seed, progress=not args.quiet)
        policy, info = trained if isinstance(trained, tuple) else (trained, {})
        held = {n: n != DEFAULT_DQN_TRAINED_ON for n in names}
        return policy, held, None, {"dqn": {"training": "mix", **info}}
    built, info = {}, {}
    if args.dqn_training == "leave-one-out":
        from components.placement.families import REAL_FAMILIES

        for family in families:
            others = [n for n in REAL_FAMILIES if n != family.name]
            trained = trainer(seed=seed, families=others, progress=not args.quiet)
            built[family.name], info[family.name] = (
                trained if isinstance(trained, tuple) else (trained, {})
            )
        # the generated mix is in every DQN's training: only the synthetic family is its kin
        held = {n: n != DEFAULT_DQN_TRAINED_ON for n in names}
        return built, held, None, {"dqn": {"training": "leave-one-out", **info}}
    for family in families:
        workload, cluster = family.build(seed)
        first = cut_test_windows(workload, args.train_fraction, args.windows)[0][0]
        trained = trainer(workload.window(0, first), cluster, seed=seed)
        built[family.name], info[family.name] = (
            trained if isinstance(trained, tuple) else (trained, {})
        )
    return built, {n: False for n in names}, None, {"dqn": {"training": "per-family", **info}}


def _interval(summary: dict, digits: int = 0) -> str:
    return (
        f"{summary['mean']:.{digits}f} [{summary['low']:.{digits}f}, {summary['high']:.{digits}f}]"
    )


def summary_table(report: dict) -> str:
    """The report as text: per family, each policy's figures with intervals and its verdict."""
    columns = (
        ("overload_node_minutes", "overload node-min", 0),
        ("pods_pending", "pods pending", 1),
        ("mean_pending_minutes", "pending min", 1),
        ("mean_nodes_used", "nodes used", 1),
        ("mean_cpu_utilization_nonempty", "CPU util used", 3),
        ("throttled_pod_steps", "throttled pod-steps", 0),
        ("max_burst_share", "max burst share", 2),
    )
    lines = []
    for family, block in report["families"].items():
        held = (
            "no DQN"
            if "dqn" not in block["policies"]
            else "held out from DQN training"
            if block["held_out_from_training"]
            else "seen in DQN training"
        )
        cells = next(iter(block["policies"].values()))["overload_node_minutes"]["n"]
        lines.append(f"\n[{family}] {cells} cells (seed x window), {held}")
        widths = [max(len(title), 22 if digits == 0 else 20) for _, title, digits in columns]
        header = f"{'policy':>18} " + " ".join(
            f"{title:>{w}}" for (_, title, _), w in zip(columns, widths, strict=True)
        )
        lines.append(header + f" {'paired vs dqn (policy - dqn)':>40}")
        for policy, metrics in block["policies"].items():
            row = " ".join(
                f"{_interval(metrics[key], digits):>{w}}"
                for (key, _, digits), w in zip(columns, widths, strict=True)
            )
            paired = block["paired"].get(policy)
            verdict = (
                f"{_interval({'mean': paired['mean_difference'], **paired})} {paired['verdict']}"
                if paired
                else ""
            )
            lines.append(f"{policy:>18} {row} {verdict:>40}")
        goals = block["goals"]
        if "goal_met" in goals:
            lines.append(
                f"dqn below random {_percent(goals.get('overload_below_random'))}, below the best "
                f"heuristic ({goals.get('best_heuristic', 'none evaluated')}) "
                f"{_percent(goals.get('overload_below_best_heuristic'))} "
                f"({goals.get('best_heuristic_verdict', 'n/a')}); goal met: {goals['goal_met']}"
            )
    for name, reason in report["unavailable"].items():
        lines.append(f"{name}: unavailable: {reason}")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def cmd_evaluate_placement(args: argparse.Namespace) -> int:
    from components.placement.evaluate import evaluate_placement
    from components.placement.simulator import SimulationConfig

    output = Path(args.output)
    if output.suffix.lower() != ".json":
        raise MlschedError(f"--output: expected a .json report path, got {args.output!r}")
    policies = resolve_policies(args.policies)
    families = resolve_families(args)
    config = SimulationConfig(workload_profiles=args.workload_profiles)
    if args.observation_lag is not None:
        config = dataclasses.replace(config, observation_lag_seconds=args.observation_lag)
    dqn, held, why, training = dqn_policies(args, families, policies, simulation=config)
    report = evaluate_placement(
        families,
        policies,
        seeds=list(range(args.seeds)),
        windows=args.windows,
        train_fraction=args.train_fraction,
        dqn=dqn,
        held_out_from_training=held,
        dqn_unavailable=why,
        training=training,
        config=config,
        output=output,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(summary_table(report))
    timing = report["timing"]
    print(
        f"\n{timing['replays']} replays in {timing['seconds']:.0f}s on {timing['workers']} "
        f"processes; report: {output} (+ {report['assignment_log']}, {report['plot']})"
    )
    if args.mlflow_uri:
        from mlflow import MlflowClient

        from components.placement.evaluate import log_to_mlflow

        run_id = log_to_mlflow(report, output, MlflowClient(args.mlflow_uri))
        print(f"mlflow run: {run_id} at {args.mlflow_uri}")
    return 0
