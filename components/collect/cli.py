"""``mlsched collect``: flags and the handler; registered by :mod:`components.cli`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from components.cli_args import positive_int, utc_timestamp
from components.durations import parse_duration_seconds
from components.errors import MlschedError

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_OUTPUT = Path("data/collected/node_metrics")


def add_collect_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``collect`` sub-command to ``subparsers`` (from ``add_subparsers``)."""
    collect = subparsers.add_parser(
        "collect",
        help="pull node metrics from Prometheus (parquet by day, incremental)",
        description=(
            "Run the PromQL of a query config over [--start, --end] and write the node-metrics "
            "table (parquet by day). Re-runs fetch only the time spans the output does not cover "
            "yet; a failed run leaves the output as it was."
        ),
    )
    collect.add_argument(
        "--prometheus", default=DEFAULT_PROMETHEUS_URL, help="base URL of Prometheus"
    )
    collect.add_argument("--start", help="ISO 8601 with a zone, e.g. 2026-01-01T00:00:00Z")
    collect.add_argument("--end", help="ISO 8601 with a zone (default: now)")
    collect.add_argument(
        "--range-of",
        metavar="MANIFEST",
        help="take --start and --end from a generated data set's manifest.json",
    )
    collect.add_argument("--step", default="30s", help="query resolution, whole seconds: 30s, 1m")
    collect.add_argument("--output", default=str(DEFAULT_OUTPUT), help="node-metrics folder")
    collect.add_argument("--config", help="query config YAML (default: the shipped queries.yaml)")
    collect.add_argument(
        "--window",
        help="range of rate(), $window in the PromQL (default: the config's; auto is "
        "max(step, 4 x scrape interval))",
    )
    collect.add_argument(
        "--scrape-interval",
        help="scrape interval the automatic $window follows (default: the config's; auto reads "
        "Prometheus' targets API)",
    )
    collect.add_argument("--workers", type=positive_int, default=4, help="parallel requests")
    collect.add_argument(
        "--chunk-points", type=positive_int, default=11_000, help="points per series per request"
    )
    collect.add_argument(
        "--attempts", type=positive_int, default=4, help="tries per request (5xx, time-outs)"
    )
    collect.add_argument("--timeout", default="2m", help="time-out of one request")
    collect.add_argument("--gzip", action="store_true", help="ask for compressed answers")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(handler=cmd_collect)
    return collect


def _time(text: str | None, what: str):
    import pandas as pd

    return pd.Timestamp.now(tz="UTC") if text is None else utc_timestamp(text, what)


def _time_range(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.range_of is None:
        if args.start is None:
            raise MlschedError("--start is required (or --range-of MANIFEST)")
        return args.start, args.end
    if args.start is not None or args.end is not None:
        raise MlschedError("--range-of excludes --start and --end")
    manifest = Path(args.range_of)
    try:
        document = json.loads(manifest.read_text())
        return str(document["start"]), str(document["end"])
    except FileNotFoundError:
        raise MlschedError(f"{manifest}: no such manifest; run `mlsched generate` first") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise MlschedError(f"{manifest}: not a data set manifest with 'start' and 'end'") from None


def query_config(path: str | None, window: str | None, scrape_interval: str | None):
    """The query config of ``path`` (None: the shipped one) with the ``--window`` and
    ``--scrape-interval`` flags' values, when given, in place of its own."""
    from components.collect.config import load_collect_config

    config = load_collect_config(path)
    if window is None and scrape_interval is None:
        return config
    return config.with_window(
        config.window_seconds
        if window is None
        else parse_duration_seconds(window, what="--window"),
        None
        if scrape_interval is None
        else parse_duration_seconds(scrape_interval, what="--scrape-interval"),
    )


def cmd_collect(args: argparse.Namespace) -> int:
    """Handle ``mlsched collect``; prints the report, warnings go to stderr."""
    from components.collect.collect import collect_node_metrics
    from components.collect.prometheus_range import FetchSettings

    step = parse_duration_seconds(args.step, what="--step")
    if not float(step).is_integer():
        raise MlschedError(f"--step: must be whole seconds, got {args.step!r}")
    config = query_config(args.config, args.window, args.scrape_interval)
    settings = FetchSettings(
        max_points=args.chunk_points,
        workers=args.workers,
        attempts=args.attempts,
        timeout_seconds=parse_duration_seconds(args.timeout, what="--timeout"),
        compress=args.gzip,
    )
    start_text, end_text = _time_range(args)
    report = collect_node_metrics(
        args.prometheus,
        _time(start_text, "--start"),
        _time(end_text, "--end"),
        int(step),
        Path(args.output),
        config,
        settings=settings,
        progress=not args.quiet,
    )
    for warning in report.warnings:
        print(f"mlsched collect: warning: {warning}", file=sys.stderr)
    print(report.summary())
    return 0
