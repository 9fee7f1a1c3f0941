"""Training entrypoint of the load forecaster (pipeline, Katib and local runs alike).

``python -m components.forecast.train --metrics PATH [--horizons 5m,15m,30m] [--max-depth 5]
[--learning-rate 0.05] [--n-estimators 200]`` plus the shared training flags
(:mod:`components.tracking.entrypoint`) trains on the first ``--train-fraction`` of each node's
history, evaluates on the rest, prints ``metric=value`` lines (Katib's StdOut collector format,
e.g. ``validation_mae=0.0123``, ``cpu_15m_skill=0.04``), logs the run to MLflow and, with
``--register``, registers a candidate version of ``node-load-forecaster``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields
from pathlib import Path

from components.forecast.dataset import DEFAULT_HORIZONS
from components.model_contracts import FORECASTER
from components.tracking.entrypoint import add_training_flags, run_entrypoint_main

PROG = f"python -m {FORECASTER.entrypoint}"


def build_parser() -> argparse.ArgumentParser:
    from components.forecast.model import ForecastParams

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", required=True, help="node-metrics file or folder")
    parser.add_argument(
        "--features",
        help="the feature table of --metrics (the pipeline's features artifact); computed "
        "from --metrics when not given",
    )
    parser.add_argument("--horizons", default=",".join(DEFAULT_HORIZONS))
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--resources", default="cpu,memory", help="comma-separated: cpu,memory")
    defaults = ForecastParams()
    for field in fields(ForecastParams):
        if field.name != "seed":  # the shared --seed
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=type(getattr(defaults, field.name)), default=None)
    add_training_flags(parser, FORECASTER)
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


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate, log and (with ``--register``) register; returns the result document."""
    from components.contracts import read_node_metrics
    from components.features.engineering import read_feature_table
    from components.forecast.evaluate import run_forecast_experiment
    from components.forecast.mlflow_logging import log_experiment, log_model, report_metrics
    from components.tracking.entrypoint import (
        print_metric_lines,
        tracked_run,
        training_result,
        write_result_file,
    )
    from components.tracking.runs import dataset_digest

    params = params_from_args(args)
    metrics_frame = read_node_metrics(args.metrics)
    resources = tuple(r.strip() for r in args.resources.split(",") if r.strip())
    experiment = run_forecast_experiment(
        metrics_frame,
        args.horizons,
        args.train_fraction,
        params=params,
        resources=resources,
        features=read_feature_table(args.features) if args.features else None,
        progress=not args.quiet,
    )
    metrics = report_metrics(experiment.report)
    print_metric_lines(metrics)
    if args.model_dir is not None:
        experiment.forecaster.save(args.model_dir)
    horizons = [h.name for h in experiment.dataset.horizons]
    held_out = {
        "metrics": str(args.metrics),
        "features": args.features,
        "horizons": horizons,
        "train_fraction": args.train_fraction,
        "validation_fraction": params.validation_fraction,
        "resources": list(resources),
    }
    summary = experiment.report["summary"]
    outcome = {
        "value": summary["model_mean_mae"],
        "baselines": {name: summary[f"{name}_mean_mae"] for name in FORECASTER.baselines},
        "metrics": metrics,
        "held_out": held_out,
    }
    if not args.no_tracking:
        logged = {
            **asdict(params),
            "horizons": ",".join(horizons),
            "train_fraction": args.train_fraction,
            "resources": ",".join(resources),
            "step_seconds": experiment.dataset.step_seconds,
            "metrics_path": str(args.metrics),
        }
        with tracked_run(args, FORECASTER, logged, dataset_digest(metrics_frame)) as tracked:
            log_experiment(tracked, experiment)
            model_uri = log_model(tracked, experiment)
            version = tracked.register(model_uri) if args.register else None
        outcome |= {"run": tracked, "model_uri": model_uri, "registered_version": version}
    result = training_result(FORECASTER, **outcome)
    write_result_file(result, args.result_file)
    return result


def score_model(model_uri: str, held_out: dict) -> float:
    """The gate metric (mean test MAE) of the forecaster at ``model_uri`` on the held-out rows
    a training result describes (the tracking URI is the caller's)."""
    from components.contracts import read_node_metrics
    from components.features.engineering import read_feature_table
    from components.forecast.dataset import build_forecast_dataset, time_split
    from components.forecast.evaluate import predict_levels
    from components.forecast.mlflow_logging import mean_test_mae
    from components.forecast.model import load_forecaster

    features = held_out["features"]
    dataset = build_forecast_dataset(
        read_node_metrics(held_out["metrics"]),
        held_out["horizons"],
        features=read_feature_table(features) if features else None,
    )
    split = time_split(dataset, held_out["train_fraction"], held_out["validation_fraction"])
    predictions = predict_levels(load_forecaster(model_uri), dataset, split.test(dataset))
    return mean_test_mae(dataset, split, held_out["resources"], predictions)


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint_main(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
