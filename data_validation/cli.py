"""``mlsched validate``: the node-metrics gate on the command line.

Register it in ``components/cli.py``'s ``build_parser`` with ``add_validate_parser(commands)``.
Exit status: 0 when the gate passes, 1 when it fails (no training), 2 on unusable input (the
entrypoint turns :class:`~components.errors.MlschedError` into status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from components.cli_args import utc_timestamp
from components.errors import MlschedError

DEFAULT_METRICS = Path("data/synthetic/node_metrics")
DEFAULT_OUTPUT = Path("data/validation")


def _reference_time(text: str | None) -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC") if text is None else utc_timestamp(text, "--now")


def _cmd_validate(args: argparse.Namespace) -> int:
    from data_validation.gate import run_validation
    from data_validation.thresholds import load_thresholds

    thresholds = load_thresholds(args.thresholds)
    if args.no_freshness and args.now is not None:
        raise MlschedError("--now and --no-freshness exclude each other")
    reference = None if args.no_freshness else _reference_time(args.now)
    report = run_validation(Path(args.metrics), Path(args.output), thresholds, reference)
    print(report.format())
    return 0 if report.success else 1


def add_validate_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``validate`` command to an ``add_subparsers()`` object; return its parser."""
    validate = subparsers.add_parser(
        "validate",
        help="the Great Expectations gate on node metrics (exit 1 when it fails)",
        description="Validate node metrics; write validation_result.json and Data Docs.",
    )
    validate.add_argument(
        "--metrics",
        default=str(DEFAULT_METRICS),
        help="node metrics: CSV, parquet, or a day-partitioned parquet folder",
    )
    validate.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="folder for the JSON result and Data Docs"
    )
    validate.add_argument(
        "--thresholds", help="YAML overriding keys of data_validation/thresholds.yaml"
    )
    validate.add_argument(
        "--now", help="reference time for freshness, ISO 8601 with a zone (default: now)"
    )
    validate.add_argument(
        "--no-freshness",
        action="store_true",
        help="skip the freshness checks (historical data sets)",
    )
    validate.set_defaults(handler=_cmd_validate)
    return validate
