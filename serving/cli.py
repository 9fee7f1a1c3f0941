"""``mlsched serve`` and ``mlsched serving manifests``: flags and handlers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from components.cli_args import port
from components.errors import MlschedError
from components.model_contracts import REGISTERED_MODELS

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
DEFAULT_MANIFESTS = Path("build/serving")


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _percents(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected percents such as 10,50,100, got {text!r}"
        ) from None


def _tracking_uri(args: argparse.Namespace) -> str:
    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``serve`` sub-command to ``subparsers`` (from ``add_subparsers``)."""

    serve = subparsers.add_parser(
        "serve",
        help="serve the models with kserve's ModelServer (v1 + v2 REST)",
        description=(
            "Load the forecaster, the anomaly detector and the DQN placement policy and serve "
            "them over KServe's v1 and v2 (Open Inference Protocol) REST APIs on one port."
        ),
    )
    serve.add_argument("--port", type=port, default=8080, help="HTTP port")
    serve.add_argument("--grpc-port", type=port, help="also serve v2 gRPC on this port")
    serve.add_argument(
        "--models-from",
        default="registry",
        metavar="registry|PATH",
        help="'registry': models:/<name>@<alias> from MLflow; PATH: a folder with one "
        "sub-folder per model name",
    )
    serve.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    serve.add_argument("--alias", default="champion", help="registry alias to serve")
    serve.add_argument(
        "--model",
        action="append",
        choices=sorted(REGISTERED_MODELS),
        help="serve only this model (repeatable; default: all three)",
    )
    serve.add_argument(
        "--model-uri",
        action="append",
        type=_pair,
        default=[],
        metavar="NAME=URI",
        help="load NAME from this URI or path instead (repeatable)",
    )
    serve.add_argument(
        "--threads", type=int, default=1, help="CPU threads per request (torch, XGBoost)"
    )
    serve.add_argument(
        "--skip-missing", action="store_true", help="serve the models that load, warn about others"
    )
    serve.set_defaults(handler=cmd_serve)
    return serve


def model_sources(args: argparse.Namespace) -> dict[str, str]:
    """``{model name: source}`` from the ``serve`` flags.

    Raises:
        MlschedError: PATH does not exist or holds none of the models.
    """
    from serving.loading import registry_uri
    from serving.predictors import MODEL_CLASSES

    overrides = dict(args.model_uri)
    names = list(dict.fromkeys(args.model or (list(overrides) or list(MODEL_CLASSES))))
    sources: dict[str, str] = {}
    if args.models_from == "registry":
        for name in names:
            sources[name] = overrides.get(name, registry_uri(name, args.alias))
        return sources
    root = Path(args.models_from)
    if not root.is_dir():
        raise MlschedError(f"--models-from {root}: no such folder")
    for name in names:
        if name in overrides:
            sources[name] = overrides[name]
        elif (root / name).exists():
            sources[name] = str(root / name)
        elif args.model:
            raise MlschedError(f"--models-from {root}: no folder {name}/")
    if not sources:
        raise MlschedError(
            f"--models-from {root}: holds none of {', '.join(names)} (one sub-folder per model)"
        )
    return sources


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.server import models_from_sources, serve_models

    sources = model_sources(args)
    tracking_uri = _tracking_uri(args)
    for name, source in sources.items():
        print(f"serve: {name} <- {source}", file=sys.stderr)
    models = models_from_sources(sources, tracking_uri=tracking_uri)
    serve_models(
        models,
        args.port,
        grpc_port=args.grpc_port,
        skip_failed=args.skip_missing,
        threads=args.threads if args.threads > 0 else None,
    )
    return 0


def add_manifests_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``serving manifests`` (InferenceService YAML per model and canary step)."""
    from serving.manifests import DEFAULT_IMAGE, ROLLOUT_PERCENTS, ServiceOptions

    serving = subparsers.add_parser("serving", help="KServe deployment of the models")
    actions = serving.add_subparsers(dest="serving_command", required=True)
    manifests = actions.add_parser(
        "manifests",
        help="render InferenceService YAML for a canary rollout (10 -> 50 -> 100)",
        description=(
            "Resolve each model's registry alias to its version and write "
            "<output>/<model>/canary-<percent>.yaml, one per rollout step."
        ),
    )
    manifests.add_argument("--output", default=str(DEFAULT_MANIFESTS), help="output folder")
    manifests.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"
    )
    manifests.add_argument("--alias", default="champion", help="registry alias to deploy")
    manifests.add_argument(
        "--model", action="append", choices=sorted(REGISTERED_MODELS), help="only this model"
    )
    manifests.add_argument(
        "--model-uri",
        action="append",
        type=_pair,
        default=[],
        metavar="NAME=URI",
        help="deploy this URI for NAME instead of asking the registry (repeatable)",
    )
    manifests.add_argument("--percents", type=_percents, default=ROLLOUT_PERCENTS)
    manifests.add_argument("--image", default=DEFAULT_IMAGE, help="predictor container image")
    manifests.add_argument("--namespace", default=ServiceOptions.namespace)
    manifests.add_argument(
        "--cluster-tracking-uri",
        default=ServiceOptions.tracking_uri,
        help="MLflow tracking URI as the predictors reach it inside the cluster",
    )
    manifests.set_defaults(handler=cmd_manifests)
    champion = actions.add_parser(
        "placement-champion",
        help="the placement policy the registry's alias serves, why, and its validation figures",
        description=(
            "Print which policy the placement model's alias serves (the DQN or a heuristic), "
            "the gate's reason and every policy's validation figures with 95 % intervals."
        ),
    )
    champion.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"
    )
    champion.add_argument("--alias", default="champion", help="registry alias")
    champion.set_defaults(handler=cmd_placement_champion)
    return manifests


def cmd_placement_champion(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from components.placement.selection import champion_summary

    uri = _tracking_uri(args)
    print(champion_summary(MlflowClient(tracking_uri=uri, registry_uri=uri), args.alias))
    return 0


def cmd_manifests(args: argparse.Namespace) -> int:
    from serving.manifests import ServiceOptions, champion_uri, write_manifests
    from serving.predictors import MODEL_CLASSES

    overrides = dict(args.model_uri)
    names = list(dict.fromkeys(args.model or list(MODEL_CLASSES)))
    uris = {name: overrides[name] for name in names if name in overrides}
    missing = [name for name in names if name not in uris]
    if missing:
        from mlflow import MlflowClient

        tracking_uri = _tracking_uri(args)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        uris.update({name: champion_uri(client, name, args.alias) for name in missing})
    options = ServiceOptions(
        namespace=args.namespace, image=args.image, tracking_uri=args.cluster_tracking_uri
    )
    for path in write_manifests(uris, args.output, percents=args.percents, options=options):
        print(path)
    return 0
