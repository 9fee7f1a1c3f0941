"""``mlsched tune``: run a Katib Experiment locally with Optuna, or submit it to a cluster."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from components.cli_args import positive_seconds
from components.errors import MlschedError
from components.tracking.entrypoint import add_store_flags
from components.tune.experiment import REPO_ROOT


def add_tune_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tune`` command to an ``add_subparsers()`` object; return its parser."""
    tune = subparsers.add_parser(
        "tune",
        help="run a Katib Experiment: locally with Optuna (--local) or on a cluster (--host)",
        description=(
            "Read a Katib v1beta1 Experiment, check it against Katib's API schema and rules, and "
            "run its trials here (each an MLflow child run) or submit it through the Katib SDK."
        ),
    )
    tune.add_argument(
        "--experiment", required=True, help="Experiment YAML, e.g. katib/forecaster.yaml"
    )
    where = tune.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="run the trials on this machine")
    where.add_argument("--host", help="Kubernetes API server URL to submit to")
    tune.add_argument("--namespace", help="namespace on the cluster (default: the YAML's)")
    tune.add_argument("--max-trials", type=int, help="override maxTrialCount (local)")
    tune.add_argument("--parallel", type=int, help="override parallelTrialCount (local)")
    tune.add_argument(
        "--trial-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="flag appended to every local trial command, e.g. --trial-arg=--data=data/synthetic",
    )
    tune.add_argument(
        "--trial-timeout",
        type=positive_seconds,
        help="a local trial longer than this fails (10m, 600)",
    )
    add_store_flags(tune)
    tune.add_argument("--mlflow-experiment", default="katib-local", help="MLflow experiment name")
    tune.add_argument("--output", help="write the best parameters as JSON here (local)")
    tune.add_argument(
        "--schema", help="Katib swagger JSON (default: ../shared/schemas's, if present)"
    )
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(handler=cmd_tune)
    return tune


def _schema_path(text: str | None) -> Path | None:
    from components.tune.experiment import default_schema_path

    if text is not None:
        return Path(text)
    path = default_schema_path(REPO_ROOT)
    return path if path.is_file() else None


def cmd_tune(args: argparse.Namespace) -> int:
    """Handle ``mlsched tune``."""
    from components.tune.experiment import load_experiment

    experiment = load_experiment(args.experiment, _schema_path(args.schema))
    if args.host:
        from components.tune.submit import katib_client, submit_experiment

        created = submit_experiment(
            katib_client(args.host, os.environ.get("KUBE_TOKEN")),
            experiment.document,
            args.namespace,
        )
        meta = created.get("metadata", {})
        print(f"submitted Experiment {meta.get('namespace')}/{meta.get('name')} to {args.host}")
        return 0
    from components.tracking.runs import get_or_create_experiment, open_tracking
    from components.tune.local import run_local_tune

    if args.max_trials is not None and args.max_trials <= 0:
        raise MlschedError("--max-trials must be positive")
    client = open_tracking(args.tracking_uri, default_dir=args.local_store)
    result = run_local_tune(
        experiment,
        client=client,
        mlflow_experiment_id=get_or_create_experiment(client, args.mlflow_experiment),
        max_trials=args.max_trials,
        parallel=args.parallel,
        extra_args=args.trial_arg,
        trial_timeout_s=args.trial_timeout,
        progress=not args.quiet,
    )
    print(result.summary())
    print(f"MLflow parent run: {result.parent_run_id} ({client.tracking_uri})")
    if args.output:
        from components.atomic import write_text

        target = write_text(args.output, json.dumps(result.best_params, indent=2))
        print(f"best parameters: {target}")
    return 0 if result.best_value is not None else 1
