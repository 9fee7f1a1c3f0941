"""``mlsched evaluate forecast``: flags and the handler; registered by :mod:`components.cli`.

The report (JSON) holds ``data`` (step, nodes, rows, train fraction, horizons, resources), then
per resource (``cpu``, ``memory``) and horizon (``5m``, ...): ``model``, ``persistence`` and
``seasonal_naive``, each with ``mae``, ``rmse``, ``accuracy`` (1 - WAPE), ``p90_abs_error`` and
``skill`` (1 - MAE / MAE of persistence), plus the model's ``skill``, the scored ``rows`` and
``p90_coverage`` (share of actuals at or below the P90 forecast); ``summary`` holds mean MAEs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from components.atomic import write_text
from components.cli_args import fraction
from components.errors import MlschedError
from components.forecast.dataset import DEFAULT_HORIZONS


def add_evaluate_forecast_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Add ``forecast`` to the sub-commands of ``mlsched evaluate``."""
    forecast = evaluate_subparsers.add_parser(
        "forecast",
        help="train the load forecaster on the first part of a history, score it on the rest",
        description=(
            "Train the XGBoost load forecaster on the first --train-fraction of each node's "
            "history and report MAE, RMSE, accuracy (1 - WAPE), P90 absolute error and skill "
            "against persistence and seasonal naive on the rest."
        ),
    )
    forecast.add_argument("--metrics", required=True, help="node-metrics file or folder")
    forecast.add_argument(
        "--horizons", default=",".join(DEFAULT_HORIZONS), help="comma-separated, e.g. 5m,15m,30m"
    )
    forecast.add_argument("--train-fraction", type=fraction, default=0.7)
    forecast.add_argument(
        "--resources", default="cpu,memory", help="comma-separated subset of cpu,memory"
    )
    forecast.add_argument(
        "--reference",
        action="store_true",
        help="also train the fixed reference model (issue 16) on the same split and report its "
        "skill and the model's skill ratio",
    )
    forecast.add_argument(
        "--reference-rows",
        type=int,
        default=None,
        help="train the reference on at most this many rows per booster (default: all)",
    )
    forecast.add_argument("--output", required=True, help="report JSON file")
    forecast.add_argument("--quiet", action="store_true", help="no progress bar")
    forecast.set_defaults(handler=cmd_evaluate_forecast)
    return forecast


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(report: dict, path: Path) -> Path:
    """Write ``report`` as JSON, atomically."""
    return write_text(path, json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")


def _reference_text(entry: dict) -> str:
    if "reference" not in entry:
        return ""
    skill, ratio = entry["reference"]["skill"], entry["skill_ratio"]
    return (
        "; reference skill "
        + ("n/a" if skill is None else f"{skill:.3f}")
        + ("" if ratio is None else f" (ratio {ratio:.2f})")
    )


def cmd_evaluate_forecast(args: argparse.Namespace) -> int:
    """Handle ``mlsched evaluate forecast``; prints a short table, writes the report."""
    from components.contracts import read_node_metrics
    from components.forecast.evaluate import evaluate_forecast

    resources = [r.strip() for r in args.resources.split(",") if r.strip()]
    if not resources:
        raise MlschedError("--resources: give cpu, memory or both")
    metrics = read_node_metrics(args.metrics)
    report = evaluate_forecast(
        metrics,
        args.horizons,
        args.train_fraction,
        resources=resources,
        progress=not args.quiet,
        reference=args.reference,
        reference_rows=args.reference_rows,
    )
    report["data"]["metrics"] = str(args.metrics)
    write_report(report, Path(args.output))
    for resource in report["data"]["resources"]:
        for horizon in report["data"]["horizons"]:
            entry = report[resource][horizon]
            skill = entry["skill"]
            print(
                f"{resource} +{horizon}: MAE model {entry['model']['mae']:.4f}, persistence "
                f"{entry['persistence']['mae']:.4f}, seasonal naive "
                f"{entry['seasonal_naive']['mae']:.4f}; skill "
                + ("n/a" if skill is None else f"{skill:.3f}")
                + _reference_text(entry)
            )
    print(f"report: {args.output}")
    return 0
