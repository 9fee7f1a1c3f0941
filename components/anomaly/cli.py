"""``mlsched evaluate anomaly``: flags and the handler.

Register it under the ``evaluate`` command in ``components/cli.py`` with
``add_evaluate_anomaly_parser(evaluate_subparsers)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from components.cli_args import fraction


def add_evaluate_anomaly_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Add the ``anomaly`` sub-command to the ``evaluate`` command's subparsers."""
    from components.anomaly.evaluate import DEFAULT_FPR_BUDGET, DEFAULT_TRAIN_FRACTION

    parser = evaluate_subparsers.add_parser(
        "anomaly",
        help="fit the anomaly detector without labels, evaluate it against labelled windows",
        description=(
            "Fit the Isolation Forest ensemble on the first part of each node's history (no "
            "labels), score the rest, and report event_precision, window_recall, point_fpr and "
            "event_f1 per node and overall, beside a robust z-score baseline."
        ),
    )
    parser.add_argument("--metrics", required=True, help="node metrics: CSV, parquet or folder")
    parser.add_argument("--labels", required=True, help="anomaly labels JSON")
    parser.add_argument(
        "--train-fraction",
        type=fraction,
        default=DEFAULT_TRAIN_FRACTION,
        help=f"share of each node's span to fit on (default {DEFAULT_TRAIN_FRACTION})",
    )
    parser.add_argument(
        "--fpr-budget",
        type=fraction,
        default=DEFAULT_FPR_BUDGET,
        help=f"share of training points above the alarm threshold (default {DEFAULT_FPR_BUDGET})",
    )
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="use CPU alone; memory_utilization may then be absent or empty (e.g. NAB)",
    )
    parser.add_argument("--output", required=True, help="report JSON to write")
    parser.set_defaults(handler=cmd_evaluate_anomaly)
    return parser


def cmd_evaluate_anomaly(args: argparse.Namespace) -> int:
    """Handle ``mlsched evaluate anomaly``; prints the overall figures."""
    from components.anomaly.evaluate import evaluate_anomaly
    from components.anomaly.evaluation import METRICS, write_report
    from components.anomaly.io import read_anomaly_metrics
    from components.contracts import read_anomaly_labels

    metrics = read_anomaly_metrics(args.metrics, cpu_only=args.cpu_only)
    labels = read_anomaly_labels(args.labels)
    report = evaluate_anomaly(
        metrics, labels, args.train_fraction, cpu_only=args.cpu_only, fpr_budget=args.fpr_budget
    )
    output = write_report(report, Path(args.output))
    for who, figures in (("model", report["overall"]), ("baseline", report["baseline"]["overall"])):
        text = ", ".join(
            f"{name} {'n/a' if figures[name] is None else format(figures[name], '.3f')}"
            for name in METRICS
        )
        print(f"{who}: {text}")
    print(f"report: {output}")
    return 0
