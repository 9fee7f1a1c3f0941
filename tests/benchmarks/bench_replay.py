"""Replay throughput: a synthetic day (1,440 steps at 60 s) on 50 nodes through a real extender
process over HTTP in a few minutes (target: under 300 s) on 2 cores.

    .venv/bin/python tests/benchmarks/bench_replay.py [--data DIR] [--nodes 50] [--day 1]

Without ``--data`` it generates ``--nodes`` nodes and 2 workload days into a temporary folder.
The nodes' history is applied and materialised into a Feast store in the temporary folder (as
``mlsched features`` does), which the extender reads and the replay writes. The extender runs
with the in-process stand-in predictors (``--predictors recent-usage``) unless
``--extender-args`` says otherwise. Prints ``metric=value`` lines.
"""

from __future__ import annotations

import argparse
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from components.contracts import read_nodes_table, read_workload_trace
from components.features.cli import build_features
from components.generate.history import HistoryConfig
from components.generate.synthetic import generate_synthetic_cluster
from components.harness.replay.run import day_window, format_summary, run_replay, write_outputs
from components.placement.workload import cluster_from_nodes, workload_from_trace

REPO = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 300.0
END = 1_767_225_600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a generated data set (nodes.csv, workload.parquet)")
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--day", type=int, default=1)
    parser.add_argument("--snapshot-every", type=int, default=15)
    parser.add_argument("--extender-args", default="--predictors recent-usage --refresh 250ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data) if args.data else Path(tmp) / "data"
        if not args.data:
            config = HistoryConfig(nodes=args.nodes, days=2, step_seconds=60, end_epoch=END)
            generate_synthetic_cluster(config, folder, openmetrics=False, progress=False)
        cluster = cluster_from_nodes(read_nodes_table(folder / "nodes.csv"))
        trace = read_workload_trace(folder / "workload.parquet")
        workload = day_window(workload_from_trace(trace), args.day)
        feast_home = Path(tmp) / "feast"
        table = Path(tmp) / "features.parquet"
        build_features(folder / "node_metrics", table, feast_home, anomaly=True)
        port = _free_port()
        command = [
            sys.executable, "-m", "scheduler_client", "extender", "--port", str(port),
            "--nodes", str(folder / "nodes.csv"), "--feast-repo", str(feast_home),
            "--log-level", "warning", "--max-feature-age", "0",  # stamped in simulated time
            *shlex.split(args.extender_args),
        ]  # fmt: skip
        log = open(Path(tmp) / "extender.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            began = time.perf_counter()
            result = run_replay(
                workload, cluster, base, feast_home=feast_home,
                snapshot_every=args.snapshot_every, progress=True,
            )  # fmt: skip
            seconds = time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(10)
            log.close()
        write_outputs(result, Path(tmp) / "report.json")
        replay = result.report["replay"]
        print(format_summary(result.report))
        print(f"replay_nodes={len(cluster.nodes)}")
        print(f"replay_steps={workload.n_steps}")
        print(f"replay_pods={workload.n_pods}")
        print(f"replay_extender_only_seconds={replay['replay_seconds']:.1f}")
        print(f"replay_total_seconds={seconds:.1f}")
        print(f"replay_snapshot_writes={replay['snapshots']['written']}")
        print(f"replay_mean_snapshot_write_seconds={replay['snapshots']['mean_write_seconds']:.3f}")
        print(f"replay_target_seconds={TARGET_SECONDS:.0f}")
        print(f"replay_target_met={seconds < TARGET_SECONDS}")


if __name__ == "__main__":
    main()
