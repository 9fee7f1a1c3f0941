"""``mlsched features``: node metrics -> feature table -> Feast apply + materialise."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from components.cli_args import port, positive_int

DEFAULT_METRICS = Path("data/collected/node_metrics")
DEFAULT_TABLE = Path("data/features/node_features.parquet")
DEFAULT_FEAST_HOME = Path("data/feast")


@dataclass(frozen=True)
class FeatureBuildReport:
    """What one run of the features step produced."""

    rows: int
    nodes: int
    features: int
    table: Path
    feast_home: Path | None
    materialized_until: str | None
    online_store: str
    seconds: dict[str, float]

    def summary(self) -> str:
        timings = ", ".join(f"{name} {value:.1f}s" for name, value in self.seconds.items())
        lines = [
            f"{self.table}: {self.rows:,} rows x {self.features} features for {self.nodes} nodes",
        ]
        if self.feast_home is not None:
            lines.append(
                f"Feast repository {self.feast_home} ({self.online_store} online store), "
                f"materialised until {self.materialized_until}"
            )
        lines.append(f"  timings: {timings}")
        return "\n".join(lines)


def build_features(
    metrics_path: Path,
    table_path: Path,
    feast_home: Path | None,
    *,
    online_store: str | None = None,
    step_seconds: int | None = None,
    anomaly: bool = False,
) -> FeatureBuildReport:
    """Compute the feature table of a node-metrics data set and load it into Feast.

    Args:
        metrics_path: node metrics in the contract (folder, parquet or CSV).
        table_path: where the feature table (Feast's offline source) is written, atomically.
        feast_home: folder of the registry and sqlite online store ``feature_repo/`` is applied
            and materialised into (its own default: ``data/feast``); ``None`` skips Feast.
        online_store: ``None`` for sqlite, or a Redis URL ``redis://host:port/db``.
        step_seconds: scrape interval (default: inferred from the data).
        anomaly: also compute the anomaly detector's feature group, write it beside the table
            (``<table stem>_anomaly.parquet``) and register and materialise its Feast view.
    """
    from components.contracts import NODE, read_node_metrics
    from components.features.definitions import FEATURE_NAMES
    from components.features.engineering import compute_node_features, write_feature_table
    from components.features.feast_store import apply_feature_repo, materialize_features

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    metrics = read_node_metrics(metrics_path)
    seconds["read"] = time.perf_counter() - started
    started = time.perf_counter()
    features = compute_node_features(metrics, step_seconds)
    seconds["features"] = time.perf_counter() - started
    started = time.perf_counter()
    write_feature_table(features, table_path)
    seconds["write"] = time.perf_counter() - started
    anomaly_table = None
    if anomaly:
        from components.features.anomaly_group import (
            anomaly_table_path,
            compute_anomaly_features,
            write_anomaly_table,
        )

        started = time.perf_counter()
        anomaly_table = write_anomaly_table(
            compute_anomaly_features(metrics, step_seconds), anomaly_table_path(table_path)
        )
        seconds["anomaly_features"] = time.perf_counter() - started
    until = None
    if feast_home is not None:
        started = time.perf_counter()
        store = apply_feature_repo(
            feast_home, table_path, online_store=online_store, anomaly_table_path=anomaly_table
        )
        seconds["feast_apply"] = time.perf_counter() - started
        started = time.perf_counter()
        until = materialize_features(store).isoformat()
        seconds["materialize"] = time.perf_counter() - started
    return FeatureBuildReport(
        rows=len(features),
        nodes=int(features[NODE].nunique()),
        features=len(FEATURE_NAMES),
        table=table_path,
        feast_home=feast_home,
        materialized_until=until,
        online_store="redis" if online_store else "sqlite",
        seconds=seconds,
    )


def _cmd_features(args: argparse.Namespace) -> int:
    from components.durations import parse_duration_seconds
    from components.errors import MlschedError

    step = None
    if args.step is not None:
        value = parse_duration_seconds(args.step, what="--step")
        if not float(value).is_integer():
            raise MlschedError(f"--step: must be whole seconds, got {args.step!r}")
        step = int(value)
    report = build_features(
        Path(args.metrics),
        Path(args.output),
        None if args.no_feast else Path(args.feast_home),
        online_store=args.online_store,
        step_seconds=step,
        anomaly=args.anomaly,
    )
    print(report.summary())
    return 0


def add_features_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``features`` command to an ``add_subparsers()`` object; return its parser."""
    features = subparsers.add_parser(
        "features",
        help="compute node features and load them into Feast (apply + materialise)",
        description=(
            "Compute the node features of a node-metrics data set, write the feature table "
            "(Feast's offline source), apply the Feast repository and materialise the latest "
            "features into the online store."
        ),
    )
    features.add_argument("--metrics", default=str(DEFAULT_METRICS), help="node metrics")
    features.add_argument("--output", default=str(DEFAULT_TABLE), help="feature table (parquet)")
    features.add_argument(
        "--feast-home",
        default=str(DEFAULT_FEAST_HOME),
        help="folder of feature_repo's registry and sqlite online store",
    )
    features.add_argument(
        "--online-store",
        help="redis://host:port/db for a Redis online store (default: sqlite in --feast-home)",
    )
    features.add_argument("--step", help="scrape interval (default: inferred)")
    features.add_argument("--no-feast", action="store_true", help="only write the feature table")
    features.add_argument(
        "--anomaly",
        action="store_true",
        help="also build the anomaly detector's feature group (<output stem>_anomaly.parquet and "
        "the Feast view node_anomaly_features) for the served anomaly detector",
    )
    features.set_defaults(handler=_cmd_features)
    return features


def _cmd_node_state(args: argparse.Namespace) -> int:
    import logging

    from components.collect.cli import query_config
    from components.collect.prometheus_range import FetchSettings
    from components.contracts import NODE, read_nodes_table
    from components.durations import parse_duration_seconds
    from components.errors import MlschedError
    from components.features.feast_store import open_feature_store, write_online_features
    from components.features.live import (
        LoopStatus,
        NodeHistory,
        prometheus_fetch,
        run_loop,
        serve_status_metrics,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    step = parse_duration_seconds(args.step, what="--step")
    if not float(step).is_integer():
        raise MlschedError(f"--step: must be whole seconds, got {args.step!r}")
    every = parse_duration_seconds(args.every, what="--every")
    settings = FetchSettings(
        attempts=args.attempts,
        timeout_seconds=parse_duration_seconds(args.timeout, what="--timeout"),
    )
    config = query_config(args.config, args.window, args.scrape_interval)
    fetch = prometheus_fetch(args.prometheus, int(step), config, settings)
    store = open_feature_store(args.feast_home, online_store=args.online_store)
    inventory = None if args.nodes is None else set(read_nodes_table(args.nodes)[NODE])

    def write(features):
        if inventory is not None:
            features = features[features[NODE].isin(inventory)]
        return write_online_features(store, features)

    status = LoopStatus()
    if args.metrics_port:
        serve_status_metrics(lambda: status, args.metrics_port)
    run_loop(NodeHistory(int(step)), fetch, write, every, status=status, periods=args.periods)
    return 0


def add_node_state_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``node-state`` command (the live loop) to an ``add_subparsers()`` object."""
    from components.collect.cli import DEFAULT_PROMETHEUS_URL

    loop = subparsers.add_parser(
        "node-state",
        help="keep the Feast online store's node features fresh from Prometheus (runs for ever)",
        description=(
            "Every period, query the samples newer than the loop's history from Prometheus "
            "(the collector's queries), compute each node's latest features and write them to "
            "the Feast online store under their sample times. A failed period is logged and "
            "retried the next; /metrics reports the loop's lag."
        ),
    )
    loop.add_argument("--prometheus", default=DEFAULT_PROMETHEUS_URL, help="base URL")
    loop.add_argument("--every", default="30s", help="period of the loop")
    loop.add_argument("--step", default="30s", help="query resolution (the scrape interval)")
    loop.add_argument(
        "--feast-home", default=str(DEFAULT_FEAST_HOME), help="the applied Feast store"
    )
    loop.add_argument("--online-store", help="redis://host:port/db (default: sqlite)")
    loop.add_argument("--nodes", help="nodes table: write only these nodes (default: all)")
    loop.add_argument("--config", help="query config YAML (default: the shipped queries.yaml)")
    loop.add_argument("--window", help="range of rate(), $window (default: the config's)")
    loop.add_argument("--scrape-interval", help="scrape interval the automatic $window follows")
    loop.add_argument("--timeout", default="10s", help="time-out of one query request")
    loop.add_argument(
        "--attempts", type=positive_int, default=3, help="tries per request (backoff)"
    )
    loop.add_argument(
        "--metrics-port", type=port, help="port of the loop's /metrics (default: none)"
    )
    loop.add_argument(
        "--periods", type=positive_int, help="stop after this many periods (default: never)"
    )
    loop.set_defaults(handler=_cmd_node_state)
    return loop
