"""Herding in the replay, with and without the ledger of pods in flight: a few hours of a
synthetic workload on 12 nodes with bursts of a ReplicaSet's replicas (all arriving in the same
step, so the node state the extender sees lags them), replayed through a real extender process
twice (``--no-inflight`` the second time) and through the simulator's kube-default.

    .venv/bin/python -m tests.benchmarks.bench_inflight_replay [--bursts 6] [--spread-weight 3]

Prints ``metric=value`` lines: per policy, the largest share of one burst on one node (the worst
burst and the mean over bursts) and the overload node-minutes. Targets (issue 15): the ledger's
herding no worse than kube-default's, its overload no worse than without the ledger.
Also printed: the burst replicas left a single feasible node (free requests) or a single node
that passed the extender's filter, which bound how far any spreading can go.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import (
    validate_nodes_table,
    validate_workload_trace,
)
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.harness.replay.run import run_replay
from components.placement.workload import cluster_from_nodes, workload_from_trace
from tests.integration.processes import (
    launch_extender,
    predictions_usable,
    stop_process,
    wait_until,
)
from tests.support.replay_history import history_in_feast

START = 1_767_225_600
GIB = 2**30
NODES = 12


def burst_rows(bursts: int, replicas: int, hours: float) -> pd.DataFrame:
    """``bursts`` ReplicaSets of ``replicas`` identical pods (2 cores, 4 GiB requested, using
    about 1.6 cores and 3 GiB), each arriving at once and running for an hour."""
    rng = np.random.default_rng(7)
    rows = []
    starts = np.linspace(0.5, hours - 1.2, bursts) * 3600
    for b, start in enumerate(starts):
        for r in range(replicas):
            for minute in range(60):
                at = pd.Timestamp(START + int(start) // 60 * 60 + minute * 60, unit="s", tz="UTC")
                use = float(np.clip(rng.normal(1.6, 0.2), 0.5, 2.5))
                rows.append((f"burst{b}-{r:02d}", at, use, 3.0 * GIB, 2.0, 4.0 * GIB, 0))
    columns = ["pod", "timestamp", "cpu_cores", "memory_bytes", "cpu_request_cores"]
    return pd.DataFrame(rows, columns=[*columns, "memory_request_bytes", "gpus"])


def largest_shares(assignments: pd.DataFrame) -> list[float]:
    """Per burst, the share of its replicas on its most used node."""
    placed = assignments[assignments["pod"].str.startswith("burst")].copy()
    placed["burst"] = placed["pod"].str.split("-").str[0]
    placed = placed[placed["node"].astype(str) != ""]
    return [
        group["node"].value_counts().iloc[0] / len(group) for _, group in placed.groupby("burst")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--snapshot-every", type=int, default=15)
    parser.add_argument("--spread-weight", default="3", help="the ledger run's --spread-weight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nodes = validate_nodes_table(nodes_table(make_nodes(NODES, seed=1)))
        nodes.to_csv(folder / "nodes.csv", index=False)
        config = WorkloadConfig(
            START, days=args.hours / 24, step_seconds=60, seed=3, target_request_ratio=0.6
        )
        trace = pd.concat(
            [generate_workload(config, nodes), burst_rows(args.bursts, args.replicas, args.hours)]
        )
        workload = workload_from_trace(validate_workload_trace(trace.reset_index(drop=True)))
        history_in_feast(folder, NODES, START)
        cluster = cluster_from_nodes(nodes)
        figures: dict[str, dict] = {}
        runs = (
            ("ledger", ("--spread-weight", args.spread_weight)),
            ("no_ledger", ("--no-inflight",)),
        )
        for name, extra in runs:
            port = 18800 + len(figures)
            process = launch_extender(
                port,
                folder / f"{name}.log",
                *("--nodes", str(folder / "nodes.csv"), "--feast-repo", str(folder / "feast")),
                *("--predictors", "recent-usage", "--refresh", "200ms"),
                *("--max-feature-age", "0", "--log-level", "warning", *extra),
            )
            try:
                wait_until(f"http://127.0.0.1:{port}/healthz", process, predictions_usable)
                result = run_replay(
                    workload,
                    cluster,
                    f"http://127.0.0.1:{port}",
                    feast_home=folder / "feast",
                    snapshot_every=args.snapshot_every,
                    baselines=("kube-default",) if not figures else (),
                )
            finally:
                stop_process(process)
            for policy, run in result.results.items():
                label = name if policy == "extender" else policy
                figures[label] = {
                    "shares": largest_shares(run.assignments),
                    "overload": result.report["policies"][policy]["overload_node_minutes"],
                }
            bursts = result.decisions[result.decisions["pod"].str.startswith("burst")]
            # replicas left one node by the cluster's free requests, or by the ML filter
            print(f"burst_replicas_one_feasible_node_{name}={(bursts['candidates'] == 1).sum()}")
            print(f"burst_replicas_one_node_passed_{name}={(bursts['passed'] == 1).sum()}")
        for label, values in figures.items():
            key = label.replace("-", "_")
            print(f"herding_worst_burst_share_{key}={max(values['shares']):.2f}")
            print(f"herding_mean_burst_share_{key}={np.mean(values['shares']):.2f}")
            print(f"herding_burst_shares_{key}={','.join(f'{v:.1f}' for v in values['shares'])}")
            print(f"overload_node_minutes_{key}={values['overload']:g}")
        ledger, kube = figures["ledger"], figures["kube-default"]
        print(f"herding_target_met={max(ledger['shares']) <= max(kube['shares'])}")
        print(f"overload_target_met={ledger['overload'] <= figures['no_ledger']['overload']}")


if __name__ == "__main__":
    main()
