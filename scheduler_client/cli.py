"""``mlsched extender``: the kube-scheduler extender on the command line.

Register it in ``components/cli.py``'s ``build_parser`` with ``add_extender_parser(commands)``;
``python -m scheduler_client extender ...`` runs the same command without the main CLI.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from components.cli_args import (
    non_negative_seconds,
    number_within,
    percent,
    port,
    positive_int,
    positive_seconds,
)
from components.errors import MlschedError

STAND_IN = "recent-usage"
TOKEN_VARIABLE = "MLSCHED_EXTENDER_TOKEN"


@dataclass(frozen=True)
class ExtenderOptions:
    """Everything :func:`build_extender_app` needs (the parsed flags, typed)."""

    predictors: str | None = None
    nodes: str | None = None
    snapshot: str | None = None
    feast_repo: str | None = None
    pod_scorer: str = "auto"
    dqn_model: str | None = None
    url_prefix: str = "/scheduler"
    refresh_seconds: float = 15.0
    max_staleness_seconds: float = 60.0
    max_feature_age_seconds: float = 120.0
    timeout_seconds: float = 2.0
    scorer_timeout_seconds: float = 0.05
    cpu_threshold: float = 0.90
    memory_threshold: float = 0.95
    shadow: bool = False
    rollout_percent: float = 100.0
    token: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    drift_reference: str | None = None
    breaker_failures: int = 3
    breaker_reset_seconds: float = 10.0
    inflight: bool = True
    inflight_cpu_scale: float = 1.0
    inflight_memory_scale: float = 1.0
    inflight_margin_seconds: float = 30.0
    inflight_ttl_seconds: float = 300.0
    spread_weight: float = 3.0
    bind: bool = False
    watch_pods: bool = False
    kubeconfig: str | None = None


def build_extender_app(options: ExtenderOptions):
    """Wire inventory, snapshot source, predictors, cache, breakers, metrics and the ASGI app.

    Returns:
        The :class:`~scheduler_client.server.ExtenderApp` (its lifespan starts the cache).
    """
    from scheduler_client.extender import Extender, ScoringConfig
    from scheduler_client.inventory import NodeInventory, api_node_reader
    from scheduler_client.kube import PodWatch, core_api, pod_binder
    from scheduler_client.ledger import InflightLedger
    from scheduler_client.metrics import ExtenderMetrics
    from scheduler_client.policy_scorer import load_pod_scorer
    from scheduler_client.predictions import PredictionCache
    from scheduler_client.recent_usage import RecentUsagePredictor
    from scheduler_client.remote import RemoteNodePredictor, RemotePodScorer, V2Client
    from scheduler_client.resilience import CircuitBreaker, RolloutPolicy
    from scheduler_client.server import ExtenderApp
    from scheduler_client.sources import feast_snapshot_source, file_snapshot_source

    inventory = NodeInventory.from_nodes_table(options.nodes) if options.nodes else NodeInventory()
    if options.snapshot and options.feast_repo:
        raise MlschedError("--snapshot and --feast-repo exclude each other")
    source = None
    if options.snapshot:
        source = file_snapshot_source(options.snapshot)
    elif options.feast_repo:
        source = feast_snapshot_source(options.feast_repo)
    predictor, scorer, client = None, None, None
    if options.predictors == STAND_IN:
        predictor = RecentUsagePredictor()
    elif options.predictors:
        client = V2Client(options.predictors, timeout_seconds=options.timeout_seconds)
        predictor = RemoteNodePredictor(client)
    choice = options.pod_scorer
    if choice == "auto":
        choice = "dqn" if options.dqn_model else ("remote" if client is not None else "none")
    if choice == "policy":
        choice = "dqn"
    if options.dqn_model and choice != "dqn":
        raise MlschedError("--placement-model goes with --pod-scorer policy (or auto)")
    if choice == "dqn":
        if not options.dqn_model:
            raise MlschedError("--pod-scorer policy needs --placement-model FOLDER_OR_URI")
        scorer = load_pod_scorer(options.dqn_model)
    elif choice == "remote":
        if client is None:
            raise MlschedError("--pod-scorer remote needs --predictors URL")
        scorer = RemotePodScorer(client, timeout_seconds=options.scorer_timeout_seconds)
    if predictor is not None and source is None:
        raise MlschedError("predictions need node state: give --snapshot FILE or --feast-repo DIR")

    def breaker(name: str, slow: float | None = None) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            failure_threshold=options.breaker_failures,
            reset_timeout_seconds=options.breaker_reset_seconds,
            slow_call_seconds=slow,
        )

    reference = None
    if options.drift_reference:
        import pandas as pd

        try:
            reference = pd.read_parquet(options.drift_reference)
        except (OSError, ValueError) as error:
            raise MlschedError(f"--drift-reference {options.drift_reference}: {error}") from None
    cache = PredictionCache(
        inventory,
        source,
        predictor,
        pod_scorer=scorer,
        period_seconds=options.refresh_seconds,
        breaker=breaker("predictors"),
        reference=reference,
    )
    ledger = None
    if options.inflight:
        ledger = InflightLedger(
            cpu_scale=options.inflight_cpu_scale,
            memory_scale=options.inflight_memory_scale,
            margin_seconds=options.inflight_margin_seconds,
            ttl_seconds=options.inflight_ttl_seconds,
            clock=lambda: extender.features_now(),
        )
    if (options.bind or options.watch_pods) and ledger is None:
        raise MlschedError("--bind and --watch-pods feed the in-flight ledger: drop --no-inflight")
    kube = options.bind or options.watch_pods or options.kubeconfig
    api = core_api(options.kubeconfig) if kube else None
    if api is not None:  # nodes added after the nodes table (a scale-up) are read from it
        inventory.read_node = api_node_reader(api)
    watch = PodWatch(api, ledger) if options.watch_pods else None
    metrics = ExtenderMetrics()
    scorer_breaker = breaker("pod_scorer", slow=options.scorer_timeout_seconds)
    metrics.watch(cache, [cache.breaker, scorer_breaker])
    extender = Extender(
        inventory,
        cache,
        config=ScoringConfig(
            cpu_threshold=options.cpu_threshold,
            memory_threshold=options.memory_threshold,
            max_staleness_seconds=options.max_staleness_seconds,
            max_feature_age_seconds=options.max_feature_age_seconds or None,
            spread_weight=options.spread_weight,
        ),
        rollout=RolloutPolicy(percent=options.rollout_percent, shadow=options.shadow),
        pod_scorer=scorer,
        scorer_breaker=scorer_breaker,
        metrics=metrics,
        ledger=ledger,
        binder=pod_binder(api) if options.bind else None,
    )

    def start() -> None:
        cache.start()
        if watch is not None:
            watch.start()

    def stop() -> None:
        cache.stop()
        if watch is not None:
            watch.stop()

    return ExtenderApp(
        extender,
        url_prefix=options.url_prefix,
        token=options.token,
        max_body_bytes=options.max_body_bytes,
        on_startup=start,
        on_shutdown=stop,
    )


def add_extender_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``extender`` command to an ``add_subparsers()`` object; return its parser."""
    p = subparsers.add_parser(
        "extender",
        help="run the kube-scheduler extender (filter/prioritize over HTTP)",
        description=(
            "Serve kube-scheduler's extender API (POST <url-prefix>/filter and /prioritize, "
            "GET /healthz and /metrics). Node predictions are refreshed in the background from "
            "the node state snapshot and the predictors; when they are down or stale the "
            "extender answers with kube-scheduler's LeastAllocated + BalancedAllocation scores."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    p.add_argument("--port", type=port, default=8888)
    p.add_argument("--url-prefix", default="/scheduler", help="path before /filter, /prioritize")
    p.add_argument(
        "--predictors",
        help=f"base URL of the v2 model server (KServe), or '{STAND_IN}' for the in-process "
        "statistical stand-in (no model); without it the extender only serves the fallback",
    )
    p.add_argument("--nodes", help="nodes table (node, cpu_cores, memory_bytes, gpus)")
    state = p.add_mutually_exclusive_group()
    state.add_argument(
        "--feast-repo",
        help="folder of the node features' applied Feast store (registry, online store), e.g. "
        "data/feast (`mlsched features --feast-home`)",
    )
    state.add_argument("--snapshot", help="parquet node state snapshot (re-read when it changes)")
    p.add_argument(
        "--pod-scorer",
        choices=("auto", "policy", "dqn", "remote", "none"),
        default="auto",
        help="per-pod node scores: 'policy' (or 'dqn': the registered placement model in-process, "
        "a DQN or a heuristic champion, --placement-model), 'remote' (the served placement "
        "model, one v2 call per pod), 'none'; auto = policy with --placement-model, else remote "
        "with a --predictors URL",
    )
    p.add_argument(
        "--placement-model",
        "--dqn-model",
        dest="dqn_model",
        help="placement model folder or MLflow URI (a DQN or a heuristic champion), e.g. "
        "models:/placement-dqn@champion",
    )
    for flag, default, text in (
        ("--refresh", 15.0, "refresh period, e.g. 15s"),
        ("--max-staleness", 60.0, "older predictions are not used (fallback)"),
        ("--timeout", 2.0, "per predictor call"),
        ("--scorer-timeout", 0.05, "per pod-scorer call on the scheduling path, e.g. 50ms"),
    ):
        dest = f"{flag[2:].replace('-', '_')}_seconds"  # ExtenderOptions' field
        p.add_argument(
            flag, dest=dest, metavar="DURATION", type=positive_seconds, default=default, help=text
        )
    p.add_argument(
        "--max-feature-age",
        dest="max_feature_age_seconds",
        metavar="DURATION",
        type=non_negative_seconds,
        default=120.0,
        help="a node whose features (their own timestamp) are older is scored by fallback, "
        "e.g. 2m; 0: any age (a replay in simulated time)",
    )
    # predicted P90 utilisation plus the pod's share: above 1 is a node over its capacity
    utilisation = number_within(0.0, 1.5, include_high=True)
    p.add_argument("--cpu-threshold", type=utilisation, default=0.90)
    p.add_argument("--memory-threshold", type=utilisation, default=0.95)
    inflight = p.add_argument_group(
        "pods in flight",
        "pods placed since their node's metrics were taken count on that node (requests, or "
        "limits without a request, scaled) until its metrics are newer than the placement plus "
        "the margin, or the TTL ends; sources: the bind verb, a pod watch, else prioritize's "
        "top node",
    )
    inflight.add_argument(
        "--no-inflight", dest="inflight", action="store_false", help="do not count them"
    )
    scale = number_within(0.0, 10.0, include_low=True, include_high=True)
    for resource in ("cpu", "memory"):
        inflight.add_argument(
            f"--inflight-{resource}-scale", type=scale, default=1.0, help="estimate / request"
        )
    for name, default in (("margin", 30.0), ("ttl", 300.0)):
        inflight.add_argument(
            f"--inflight-{name}",
            dest=f"inflight_{name}_seconds",
            metavar="DURATION",
            type=positive_seconds,
            default=default,
        )
    inflight.add_argument(
        "--spread-weight",
        type=scale,
        default=3.0,
        help="points off a node's 0..10 score per pod in flight there with the pod's owner "
        "(ReplicaSet...), spreading replicas as PodTopologySpread does; 0: off",
    )
    inflight.add_argument(
        "--bind",
        action="store_true",
        help="serve the bind verb (bindVerb: bind): bind through the Kubernetes API",
    )
    inflight.add_argument(
        "--watch-pods", action="store_true", help="watch bound pods through the Kubernetes API"
    )
    inflight.add_argument(
        "--kubeconfig",
        help="for --bind, --watch-pods and nodes missing from --nodes (default with --bind or "
        "--watch-pods: the in-cluster service account)",
    )
    p.add_argument("--shadow", action="store_true", help="log ML decisions, answer with fallback")
    p.add_argument(
        "--rollout-percent", type=percent, default=100.0, help="ML for this share of pods"
    )
    p.add_argument("--token", help=f"bearer token (or set {TOKEN_VARIABLE}, or --token-file)")
    p.add_argument("--token-file", help="file holding the bearer token")
    p.add_argument("--tls-cert", help="server certificate (PEM)")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    p.add_argument(
        "--drift-reference",
        help="parquet feature table the drift PSI compares against (default: the first snapshot)",
    )
    p.add_argument("--max-body-bytes", type=positive_int, default=32 * 1024 * 1024)
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=cmd_extender)
    return p


def _token(args: argparse.Namespace) -> str | None:
    if args.token and args.token_file:
        raise MlschedError("--token and --token-file exclude each other")
    if args.token_file:
        path = Path(args.token_file)
        if not path.is_file():
            raise MlschedError(f"--token-file {path}: no such file")
        token = path.read_text().strip()
        if not token:
            raise MlschedError(f"--token-file {path}: the file is empty")
        return token
    return args.token or os.environ.get(TOKEN_VARIABLE) or None


def cmd_extender(args: argparse.Namespace) -> int:
    from scheduler_client.server import build_uvicorn_server, setup_json_logging, tune_for_latency

    for flag in (
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "nodes",
        "snapshot",
        "drift_reference",
        "kubeconfig",
    ):
        value = getattr(args, flag)
        if value and not Path(value).is_file():
            raise MlschedError(f"--{flag.replace('_', '-')} {value}: no such file")
    flags = {f.name: getattr(args, f.name) for f in fields(ExtenderOptions) if f.name in args}
    options = ExtenderOptions(**{**flags, "token": _token(args)})
    setup_json_logging(args.log_level)
    app = build_extender_app(options)
    tune_for_latency()
    server = build_uvicorn_server(
        app,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
    )
    server.run()
    return 0
