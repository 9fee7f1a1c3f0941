"""``mlsched pipeline compile|run``: compile the Kubeflow pipelines, run them here or remotely."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from components.cli_args import positive_seconds
from components.errors import MlschedError
from components.tracking.entrypoint import add_store_flags

DEFAULT_DATA = Path("data/synthetic")
DEFAULT_PLACEMENT_BUDGET = 120


def add_pipeline_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``pipeline`` command to an ``add_subparsers()`` object; return its parser."""
    pipeline = subparsers.add_parser(
        "pipeline",
        help="compile the Kubeflow pipelines, or run one locally (kfp.local) or on a cluster",
    )
    actions = pipeline.add_subparsers(dest="action", required=True)
    compile_ = actions.add_parser("compile", help="write the pipelines' IR YAML")
    compile_.add_argument("--output", default="build/pipelines", help="folder for the YAML files")
    compile_.add_argument(
        "--image", help="base image of every component (default: $MLSCHED_IMAGE or the project's)"
    )
    compile_.set_defaults(handler=cmd_compile)

    run = actions.add_parser(
        "run", help="run a pipeline locally (--local) or on a cluster (--host)"
    )
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="kfp.local SubprocessRunner, here")
    where.add_argument("--host", help="Kubeflow Pipelines API URL")
    run.add_argument("--pipeline", choices=("training", "retraining"), default="training")
    run.add_argument("--data", default=str(DEFAULT_DATA), help="a `mlsched generate` data set")
    run.add_argument("--metrics", help="node metrics to use instead of the data set's")
    run.add_argument("--prometheus", help="collect node metrics from this Prometheus instead")
    run.add_argument("--range-of", metavar="MANIFEST", help="collect over this manifest's span")
    run.add_argument("--start", help="with --prometheus: ISO 8601 start, with a zone")
    run.add_argument("--end", help="with --prometheus: ISO 8601 end, with a zone")
    add_store_flags(run)
    run.add_argument("--tune", action="store_true", help="tune every model first (Katib YAMLs)")
    run.add_argument("--tune-trials", type=int, default=3)
    run.add_argument(
        "--placement-time-budget",
        type=positive_seconds,
        default=DEFAULT_PLACEMENT_BUDGET,
        help="DQN training time, e.g. 120 or 2m",
    )
    run.add_argument(
        "--evaluation-data",
        metavar="SETS",
        help="compare the forecaster and anomaly candidates and their champions on these real "
        "traces at the gate: comma-separated named sets (bitbrains-rnd, bitbrains-faststorage, "
        "nab-ec2-cpu; from $MLSCHED_SHARED_DATA or ../shared/data) or folders",
    )
    run.add_argument("--no-register", action="store_true", help="train and log, register nothing")
    run.add_argument("--pipeline-root", default="build/pipeline_runs", help="local outputs")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="with --local: kfp.local's output whole, with each task's executor input",
    )
    run.add_argument("--image", help="base image (default: $MLSCHED_IMAGE or the project's)")
    run.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other pipeline argument (JSON values allowed)",
    )
    run.set_defaults(handler=cmd_run)
    return pipeline


def _image(args: argparse.Namespace) -> str:
    from components.pipeline_steps.factory import DEFAULT_IMAGE

    return args.image or os.environ.get("MLSCHED_IMAGE") or DEFAULT_IMAGE


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_pipelines

    for path in compile_pipelines(args.output, _image(args)):
        print(path)
    return 0


def _tracking_uri(args: argparse.Namespace) -> str:
    from components.tracking.runs import local_tracking_uri

    if args.tracking_uri:
        return args.tracking_uri
    args.local_store.mkdir(parents=True, exist_ok=True)
    return local_tracking_uri(args.local_store)


def pipeline_arguments(args: argparse.Namespace) -> dict:
    """The pipeline's arguments from the command line."""
    from pipelines.run import synthetic_arguments

    if args.evaluation_data and not args.host:
        # Checked before any training; a cluster reads its own paths.
        from components.datasets.evaluation_sets import parse_evaluation_data

        parse_evaluation_data(args.evaluation_data)
    # A cluster cannot see this machine's files: remote runs take paths through --arg.
    arguments: dict = {} if args.host else dict(synthetic_arguments(args.data))
    if args.metrics:
        arguments["node_metrics_path"] = str(Path(args.metrics).resolve())
    if args.prometheus:
        start, end = args.start, args.end
        if args.range_of:
            try:
                manifest = json.loads(Path(args.range_of).read_text())
                start, end = str(manifest["start"]), str(manifest["end"])
            except (OSError, json.JSONDecodeError, KeyError) as error:
                raise MlschedError(f"{args.range_of}: not a data set manifest ({error})") from None
        if not start or not end:
            raise MlschedError("--prometheus needs --range-of MANIFEST or --start and --end")
        arguments.update(node_metrics_path="", prometheus_url=args.prometheus, start=start, end=end)
    if args.host and not args.tracking_uri:
        raise MlschedError("--host needs --tracking-uri: the MLflow server the cluster reaches")
    if args.evaluation_data:
        arguments["evaluation_data"] = args.evaluation_data
    arguments["tracking_uri"] = _tracking_uri(args)
    arguments["register"] = not args.no_register
    arguments["placement_args"] = [f"--time-budget={args.placement_time_budget:g}"]
    if args.pipeline == "training":
        arguments["tune_models"] = args.tune
        arguments["tune_trials"] = args.tune_trials
    elif args.tune:
        raise MlschedError("--tune applies to the training pipeline")
    for item in args.arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise MlschedError(f"--arg {item!r}: expected KEY=VALUE")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


def cmd_run(args: argparse.Namespace) -> int:
    arguments = pipeline_arguments(args)
    if args.host:
        from pipelines.run import run_remote

        run_id = run_remote(args.pipeline, arguments, args.host, image=_image(args))
        print(f"submitted {args.pipeline} pipeline to {args.host}: run {run_id}")
        return 0
    from components.model_contracts import REGISTERED_MODELS
    from components.tracking.gate import decision_verb, registry_state
    from components.tracking.runs import open_tracking
    from pipelines.run import run_local

    run = run_local(
        args.pipeline,
        arguments,
        pipeline_root=args.pipeline_root,
        image=_image(args),
        verbose=args.verbose,
    )
    client = open_tracking(arguments["tracking_uri"], default_dir=args.local_store)
    print(f"\n{args.pipeline} pipeline succeeded in {run.seconds:.0f}s")
    print(f"  outputs (artifacts per task): {run.run_dir}")
    print(f"  MLflow runs: {arguments['tracking_uri']}")
    for name, state in registry_state(client, REGISTERED_MODELS).items():
        print(
            f"  registered model {name}: {state['versions']} version(s), "
            f"champion = {state['champion'] or 'none'}"
        )
    if run.run_dir is not None:
        for decisions in sorted(run.run_dir.rglob("evaluate-candidates/decisions")):
            for kind, decision in json.loads(decisions.read_text()).items():
                verdict = decision_verb(decision["promoted"], decision.get("serve_policy", ""))
                print(f"  gate {kind}: {verdict}: {decision['reason']}")
        for manifest in sorted(run.run_dir.rglob("canary-*.yaml")):
            print(f"  serving manifest: {manifest}")
    return 0
