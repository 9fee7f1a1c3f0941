"""Training entrypoint of the load forecaster (pipeline, Katib and local runs alike).

``python -m components.forecast.train --metrics PATH [--horizons 5m,15m,30m] [--max-depth 5]
[--learning-rate 0.05] [--n-estimators 200] [--tracking-uri URI] [--register]`` trains on the
first ``--train-fraction`` of each node's history, evaluates on the rest, prints ``metric=value``
lines (Katib's StdOut collector format, e.g. ``validation_mae=0.0123``, ``cpu_15m_skill=0.04``),
logs the run to MLflow (a local SQLite store under ``--tracking-dir`` when no URI is given) and,
with ``--register``, registers ``node-load-forecaster`` and runs the promotion gate.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path

from components.errors import MlschedError
from components.forecast.dataset import DEFAULT_HORIZONS

EXPERIMENT = "node-load-forecaster"
DEFAULT_TRACKING_DIR = Path(".mlflow")


def build_parser() -> argparse.ArgumentParser:
    from components.forecast.model import ForecastParams

    parser = argparse.ArgumentParser(
        prog="python -m components.forecast.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--metrics", required=True, help="node-metrics file or folder")
    parser.add_argument("--horizons", default=",".join(DEFAULT_HORIZONS))
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--resources", default="cpu,memory", help="comma-separated: cpu,memory")
    defaults = ForecastParams()
    for field in fields(ForecastParams):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(getattr(defaults, field.name)), default=None)
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI")
    parser.add_argument(
        "--tracking-dir",
        type=Path,
        default=DEFAULT_TRACKING_DIR,
        help="local SQLite store when no tracking URI is given",
    )
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--no-tracking", action="store_true", help="print metrics only")
    parser.add_argument("--register", action="store_true", help="register + promotion gate")
    parser.add_argument("--model-dir", type=Path, help="also save the model artefact here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def params_from_args(args: argparse.Namespace):
    from components.forecast.model import ForecastParams

    given = {
        field.name: getattr(args, field.name)
        for field in fields(ForecastParams)
        if getattr(args, field.name) is not None
    }
    return ForecastParams(**given)


def run(args: argparse.Namespace) -> int:

    from components.contracts import read_node_metrics
    from components.forecast.evaluate import run_forecast_experiment
    from components.forecast.mlflow_logging import (
        log_experiment,
        log_model,
        register_and_gate,
        report_metrics,
    )
    from components.tracking.runs import (
        dataset_digest,
        get_or_create_experiment,
        open_tracking,
        point_mlflow_at,
    )

    params = params_from_args(args)
    metrics_frame = read_node_metrics(args.metrics)
    resources = tuple(r.strip() for r in args.resources.split(",") if r.strip())
    experiment = run_forecast_experiment(
        metrics_frame,
        args.horizons,
        args.train_fraction,
        params=params,
        resources=resources,
        progress=not args.quiet,
    )
    metrics = report_metrics(experiment.report)
    for name, value in metrics.items():
        print(f"{name}={value:.6g}")
    if args.model_dir is not None:
        experiment.forecaster.save(args.model_dir)
    if args.no_tracking:
        return 0
    client = open_tracking(args.tracking_uri, default_dir=args.tracking_dir)
    point_mlflow_at(client)
    experiment_id = get_or_create_experiment(client, args.experiment)
    run_info = client.create_run(experiment_id, run_name="forecast-train").info
    run_id = run_info.run_id
    status = "FAILED"
    try:
        logged_params = {
            **asdict(params),
            "horizons": ",".join(h.name for h in experiment.dataset.horizons),
            "train_fraction": args.train_fraction,
            "resources": ",".join(resources),
            "step_seconds": experiment.dataset.step_seconds,
            "metrics_path": str(args.metrics),
        }
        log_experiment(
            client,
            run_id,
            experiment,
            params=logged_params,
            digest=dataset_digest(metrics_frame),
        )
        model_uri = log_model(experiment, run_id)
        print(f"mlflow_run_id={run_id}", file=sys.stderr)
        if args.register:
            decision = register_and_gate(client, experiment, model_uri=model_uri, run_id=run_id)
            print(
                f"promotion: version {decision.candidate_version} "
                f"{'promoted to champion' if decision.promoted else 'not promoted'}: "
                f"{decision.reason}",
                file=sys.stderr,
            )
            print(f"promoted={int(decision.promoted)}")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tracking_uri is None:
        args.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or None
    try:
        return run(args)
    except MlschedError as error:
        print(f"python -m components.forecast.train: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
