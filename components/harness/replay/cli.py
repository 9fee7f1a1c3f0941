"""``mlsched replay``: a day of pod arrivals through the running extender, over HTTP.

Register it in ``components/cli.py``'s ``build_parser`` with ``add_replay_parser(commands)``.
Typical use (the extender reads the Feast online store the replay writes into)::

    mlsched features --metrics data/synthetic/node_metrics --anomaly   # apply + materialise
    mlsched extender --nodes data/synthetic/nodes.csv --feast-repo data/feast \
        --predictors recent-usage --refresh 250ms &
    mlsched replay --extender http://127.0.0.1:8888 --workload data/synthetic/workload.parquet \
        --nodes data/synthetic/nodes.csv --feast-home data/feast --output data/replay/report.json
"""

from __future__ import annotations

import argparse
import os

from components.cli_args import non_negative_seconds, positive_int, positive_seconds
from components.errors import MlschedError

TOKEN_VARIABLE = "MLSCHED_EXTENDER_TOKEN"


def add_replay_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``replay`` command to an ``add_subparsers()`` object; return its parser."""
    p = subparsers.add_parser(
        "replay",
        help="replay a day of pod arrivals through the extender over HTTP, beside kube-default",
        description=(
            "Replay one day of the workload trace in the placement simulator, asking the running "
            "extender (filter, then prioritize, nodeCacheCapable) where every pod goes, while "
            "writing the simulated cluster's node state into the Feast online store it reads; "
            "replay the same day "
            "with kube-default and random; print the summary and write the report (JSON) with "
            "assignment and decision logs (CSV) beside it."
        ),
    )
    p.add_argument(
        "--extender", help="base URL of the running extender, e.g. http://127.0.0.1:8888"
    )
    p.add_argument("--url-prefix", default="/scheduler", help="the extender's urlPrefix path")
    p.add_argument("--workload", required=True, help="workload trace (.parquet or .csv)")
    p.add_argument("--nodes", required=True, help="nodes table (.parquet or .csv)")
    p.add_argument(
        "--day",
        type=_day,
        default=1,
        help="day of the trace: 1 = the first, 'last' = the last (held out from training)",
    )
    p.add_argument(
        "--feast-home",
        help="folder of the applied Feast store the extender reads (its --feast-repo; "
        "`mlsched features --feast-home`), written from the simulated cluster. Without it the "
        "extender keeps its own node state",
    )
    p.add_argument(
        "--snapshot-every", type=positive_int, default=15, help="simulated steps between writes"
    )
    p.add_argument(
        "--sync-timeout",
        type=non_negative_seconds,
        default=5.0,
        help="seconds to wait for the extender to re-read each write (0: do not wait)",
    )
    p.add_argument(
        "--baselines",
        default="kube-default,random",
        help="comma-separated simulator policies replayed on the same day",
    )
    p.add_argument("--timeout", type=positive_seconds, default=5.0, help="seconds per HTTP call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="data/replay/report.json", help="report path (.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_replay)
    return p


def _day(text: str) -> int | str:
    from components.harness.replay.run import LAST_DAY

    if text.strip().lower() == LAST_DAY:
        return LAST_DAY
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a day number (1 = the first) or {LAST_DAY!r}, got {text!r}"
        ) from None


def cmd_replay(args: argparse.Namespace) -> int:
    from components.contracts import read_nodes_table, read_workload_trace
    from components.harness.replay.run import day_window, format_summary, run_replay, write_outputs
    from components.placement.policy import policy_names
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    cluster = cluster_from_nodes(read_nodes_table(args.nodes))
    workload = day_window(workload_from_trace(read_workload_trace(args.workload)), args.day)
    if not args.extender:
        raise MlschedError("--extender URL is required")
    baselines = [name.strip() for name in args.baselines.split(",") if name.strip()]
    known = policy_names()
    unknown = [name for name in baselines if name not in known]
    if unknown:
        raise MlschedError(f"--baselines: unknown policy {unknown[0]!r}; known: {', '.join(known)}")
    result = run_replay(
        workload,
        cluster,
        args.extender,
        url_prefix=args.url_prefix,
        token=os.environ.get(TOKEN_VARIABLE) or None,
        timeout_seconds=args.timeout,
        feast_home=args.feast_home,
        snapshot_every=args.snapshot_every,
        sync_timeout_seconds=args.sync_timeout or None,
        baselines=baselines,
        seed=args.seed,
        progress=not args.quiet,
    )
    paths = write_outputs(result, args.output)
    print(format_summary(result.report))
    print(f"report: {paths['report']}")
    return 0
