"""``mlsched live-check``: the live path with a real scrape for a short stretch, its freshness."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from components.atomic import write_text
from components.cli_args import positive_int, positive_seconds


def cmd_live_check(args: argparse.Namespace) -> int:
    from components.contracts import read_nodes_table, read_workload_trace
    from components.harness.replay.live import LiveTiming, format_live_report, run_live_check
    from components.harness.replay.run import day_window
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    cluster = cluster_from_nodes(read_nodes_table(args.nodes))
    day = day_window(workload_from_trace(read_workload_trace(args.workload)), "last")
    timing = LiveTiming(scrape=args.scrape, every=args.every, refresh=args.refresh)
    report = run_live_check(
        day.window(0, min(args.steps, day.n_steps)),
        cluster,
        Path(args.nodes),
        Path(args.work),
        timing,
    )
    output = write_text(args.output, json.dumps(report, indent=2))
    print(format_live_report(report))
    print(f"report: {output}")
    return 0


def add_live_check_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``live-check`` to an ``add_subparsers()`` object; return its parser."""
    p = subparsers.add_parser(
        "live-check",
        help="the live path with a real Prometheus scrape for a few seconds; prints freshness",
        description=(
            "Export the simulated cluster on /metrics, let a real Prometheus scrape it, run the "
            "node-state loop into a Feast store and an extender on it, place the first --steps "
            "steps of the workload's last day (one step per second) and print how old the node "
            "state was at each decision. Starts and stops everything it runs."
        ),
    )
    p.add_argument("--nodes", default="data/synthetic/nodes.csv", help="nodes table")
    p.add_argument("--workload", default="data/synthetic/workload.parquet", help="workload trace")
    p.add_argument("--steps", type=positive_int, default=20, help="simulated steps (1 s each)")
    p.add_argument("--scrape", type=positive_seconds, default=1.0, help="scrape interval")
    p.add_argument("--every", type=positive_seconds, default=2.0, help="node-state loop period")
    p.add_argument("--refresh", type=positive_seconds, default=0.5, help="extender refresh")
    p.add_argument("--work", default="data/live", help="folder of the run's servers and stores")
    p.add_argument("--output", default="data/live/report.json", help="report (JSON)")
    p.set_defaults(handler=cmd_live_check)
    return p
