"""The ``mlsched`` command line: the entrypoint where flags and the clock are read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from components.anomaly.cli import add_evaluate_anomaly_parser
from components.cli_args import positive_int, run_command, utc_timestamp
from components.collect.cli import add_collect_parser
from components.durations import parse_duration_seconds
from components.errors import MlschedError
from components.features.cli import add_features_parser, add_node_state_parser
from components.forecast.cli import add_evaluate_forecast_parser
from components.harness.replay.cli import add_replay_parser
from components.harness.replay.live_cli import add_live_check_parser
from components.placement.cli import add_evaluate_placement_parser
from components.tune.cli import add_tune_parser
from data_validation.cli import add_validate_parser
from pipelines.cli import add_pipeline_parser
from scheduler_client.cli import add_extender_parser
from serving.cli import add_manifests_parser, add_serve_parser

DEFAULT_DATA = Path("data/synthetic")
DEFAULT_STACK_HOME = Path(".stack")
CPU_CHECK_QUERY = '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'


def _end_epoch(text: str | None) -> int:
    if text is None:
        return int(pd.Timestamp.now(tz="UTC").floor("D").timestamp())
    return int(utc_timestamp(text, "--end").timestamp())


def _cmd_generate(args: argparse.Namespace) -> int:
    from components.generate.history import HistoryConfig
    from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster

    step = parse_duration_seconds(args.step, what="--step")
    days = parse_duration_seconds(f"{args.days}d", what="--days") / 86_400
    if not float(step).is_integer():
        raise MlschedError(f"--step: must be whole seconds, got {args.step!r}")
    workload_step = parse_duration_seconds(args.workload_step, what="--workload-step")
    config = HistoryConfig(
        nodes=args.nodes,
        days=days,
        step_seconds=int(step),
        seed=args.seed,
        end_epoch=_end_epoch(args.end),
    )
    if (days * 86_400) % step:
        raise MlschedError(f"--days {args.days} is not a whole number of {args.step} steps")
    dataset = SyntheticDataset(Path(args.output))
    if not args.force and dataset.manifest.is_file():
        existing = json.loads(dataset.manifest.read_text())
        wanted_om = not args.no_openmetrics
        if existing.get("config") == json.loads(json.dumps(config.__dict__)) and (
            existing.get("openmetrics_samples", 0) > 0 or not wanted_om
        ):
            print(f"{dataset.root}: already holds this data set (same seed and parameters); kept")
            return 0
    manifest = generate_synthetic_cluster(
        config,
        dataset.root,
        workload_days=min(args.workload_days, days),
        workload_step_seconds=int(workload_step),
        openmetrics=not args.no_openmetrics,
        progress=not args.quiet,
    )
    print(
        f"{dataset.root}: {manifest['node_metrics_rows']:,} node-metric rows "
        f"({manifest['nodes']} nodes, {manifest['start']} .. {manifest['end']}), "
        f"{manifest['anomalies']} labelled anomalies, {manifest['workload_pods']:,} workload pods"
    )
    timings = ", ".join(
        f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in manifest["timings"].items()
    )
    print(f"  timings: {timings}")
    return 0


def _stack_config(args: argparse.Namespace):
    from components.harness.stack import StackConfig

    return StackConfig(
        home=Path(args.home).resolve(),
        prometheus_port=args.prometheus_port,
        mlflow_port=args.mlflow_port,
    )


def _serving_config(args: argparse.Namespace, tracking_uri: str):
    from components.harness.stack.serving import ServingConfig

    return ServingConfig(
        home=Path(args.home),
        tracking_uri=tracking_uri,
        nodes=Path(args.nodes),
        feast_home=Path(args.feast_home),
        model_server_port=args.model_port,
        extender_port=args.extender_port,
    )


def _cmd_stack(args: argparse.Namespace) -> int:
    from components.generate.synthetic import SyntheticDataset
    from components.harness.stack import stack_down, stack_status, stack_up
    from components.harness.stack.serving import serving_down, serving_status, serving_up
    from components.harness.stack.stack import format_services

    config = _stack_config(args)
    serving = _serving_config(args, config.mlflow_url)
    if args.action == "down":
        stopped = serving_down(serving) + stack_down(config)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "status":
        status = stack_status(config)
        print(status.format())
        serving_services = serving_status(serving)
        if any(service.running for service in serving_services):
            print(format_services(serving_services))
        return 0 if all(s.ready for s in status.services) else 1
    if args.action == "serve":
        if not stack_status(config).service("mlflow").ready:
            raise MlschedError(
                f"MLflow is not running at {config.mlflow_url}; run `mlsched stack up` and "
                "train the models (`mlsched pipeline run --local`) first"
            )
        state = serving_up(serving)
        print(format_services(state.services))
        for name, version in state.champions.items():
            print(f"  {name}: " + (f"version {version}" if version else "no champion, not served"))
        print(
            "extender predictions: "
            + (
                "usable (ML scores)"
                if state.predictions_usable
                else "not usable yet (kube-scheduler's scores)"
            )
        )
        return 0
    dataset = SyntheticDataset(Path(args.data))
    openmetrics = dataset.openmetrics
    if not openmetrics.is_file():
        raise MlschedError(
            f"{openmetrics}: no Prometheus history to load; run `mlsched generate --output "
            f"{dataset.root}` first"
        )
    status = stack_up(config, openmetrics=openmetrics.resolve(), force_backfill=args.force_backfill)
    print(status.format())
    if dataset.manifest.is_file():
        _print_promql_check(status, dataset)
    return 0


def _print_promql_check(status, dataset) -> None:
    from components.contracts import read_node_metrics
    from components.promql import instant_query

    manifest = json.loads(dataset.manifest.read_text())
    at = pd.Timestamp(manifest["end"]) - pd.Timedelta(minutes=30)
    prometheus = next(s for s in status.services if s.name == "prometheus")
    values = instant_query(prometheus.url, CPU_CHECK_QUERY, at)
    metrics = read_node_metrics(dataset.node_metrics)
    window = metrics[
        (metrics["timestamp"] > at - pd.Timedelta(minutes=5)) & (metrics["timestamp"] <= at)
    ]
    generated = window.groupby("node")["cpu_utilization"].mean().mean()
    served = sum(values.values()) / max(len(values), 1)
    print(
        f"PromQL check at {at.isoformat()}: {CPU_CHECK_QUERY}\n"
        f"  -> {len(values)} nodes, mean CPU utilisation {served:.3f} "
        f"(generated history: {generated:.3f})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlsched", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write the synthetic cluster history")
    generate.add_argument("--nodes", type=positive_int, default=12)
    generate.add_argument("--days", type=float, default=14)
    generate.add_argument("--step", default="30s", help="scrape interval, e.g. 30s, 1m")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--end", help="UTC end of the history (default: today 00:00 UTC)")
    generate.add_argument("--workload-days", type=float, default=2)
    generate.add_argument("--workload-step", default="60s")
    generate.add_argument("--output", default=str(DEFAULT_DATA))
    generate.add_argument(
        "--no-openmetrics", action="store_true", help="skip the Prometheus export"
    )
    generate.add_argument("--force", action="store_true", help="regenerate even if up to date")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(handler=_cmd_generate)

    stack = commands.add_parser(
        "stack",
        help="the local Prometheus and MLflow servers; the model server and extender (serve)",
        description=(
            "up: start Prometheus (backfilled with the generated history) and MLflow. serve: "
            "(re)start the KServe model server with the registered champions and the scheduler "
            "extender in front of it. down: stop everything. status: what runs."
        ),
    )
    stack.add_argument("action", choices=("up", "serve", "down", "status"))
    stack.add_argument("--home", default=str(DEFAULT_STACK_HOME), help="state folder of the stack")
    stack.add_argument("--data", default=str(DEFAULT_DATA), help="generated data set to load")
    stack.add_argument("--prometheus-port", type=positive_int, default=9090)
    stack.add_argument("--mlflow-port", type=positive_int, default=5000)
    stack.add_argument("--force-backfill", action="store_true")
    stack.add_argument("--model-port", type=positive_int, default=8080, help="serve: model server")
    stack.add_argument("--extender-port", type=positive_int, default=8888, help="serve: extender")
    stack.add_argument(
        "--nodes",
        default=str(DEFAULT_DATA / "nodes.csv"),
        help="serve: nodes table the extender knows the cluster from",
    )
    stack.add_argument(
        "--feast-home",
        default="data/feast",
        help="serve: the applied Feast store the extender reads node state from "
        "(`mlsched features` applies and materialises it)",
    )
    stack.set_defaults(handler=_cmd_stack)

    add_collect_parser(commands)
    add_validate_parser(commands)
    add_features_parser(commands)
    add_node_state_parser(commands)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a model against its baselines on any data set"
    )
    evaluate_what = evaluate.add_subparsers(dest="what", required=True)
    add_evaluate_forecast_parser(evaluate_what)
    add_evaluate_anomaly_parser(evaluate_what)
    add_evaluate_placement_parser(evaluate_what)

    add_tune_parser(commands)
    add_pipeline_parser(commands)
    add_serve_parser(commands)
    add_manifests_parser(commands)
    add_extender_parser(commands)
    add_replay_parser(commands)
    add_live_check_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
