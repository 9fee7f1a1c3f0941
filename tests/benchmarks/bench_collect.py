"""Collection throughput: 100 nodes x 30 days at 30 s pulled from Prometheus in <= 60 s.

Generates the synthetic cluster with its OpenMetrics export, backfills it into a local stack on
free ports, and times ``collect_node_metrics`` with the shipped queries (all six columns) into a
fresh folder, then a re-run that has nothing to fetch. The export is large (about 6 MB per
node-day, ~19 GB for 100 x 30); when the disk cannot hold it, a shorter history is used and the
time is scaled linearly to the requested days (said in the output).

    .venv/bin/python -m tests.benchmarks.bench_collect [--nodes 100] [--days 30]
        [--workdir DIR --keep]   # keep (and on the next run reuse) the data set and the stack
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from components.collect import FetchSettings, collect_node_metrics
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.harness.stack import StackConfig, stack_down, stack_up
from tests.conftest import find_free_ports

TARGET_SECONDS = 60.0
TARGET_DAYS = 30
END = 1_767_225_600  # 2026-01-01T00:00:00Z
STEP = 30
BYTES_PER_NODE_DAY = 6.5e6  # OpenMetrics export, measured at 100 nodes x 30 days
DISK_HEADROOM = 1.3  # plus the TSDB blocks and some room for everyone else


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _days_that_fit(nodes: int, days: float, workdir: Path) -> float:
    free = shutil.disk_usage(workdir).free
    need = nodes * days * BYTES_PER_NODE_DAY * DISK_HEADROOM
    print(f"disk: {free / 1e9:.1f} GB free, the export needs about {need / 1e9:.1f} GB")
    if need <= free:
        return days
    fitting = int(free / (nodes * BYTES_PER_NODE_DAY * DISK_HEADROOM))
    if fitting < 1:
        raise SystemExit("not enough disk for one day of history")
    print(f"disk too small for {days:g} days: measuring {fitting} days and scaling to {days:g}")
    return float(fitting)


def _reusable(config: HistoryConfig, root: Path) -> bool:
    dataset = SyntheticDataset(root)
    if not (dataset.manifest.is_file() and dataset.openmetrics.is_file()):
        return False
    manifest = json.loads(dataset.manifest.read_text())
    return manifest.get("config") == json.loads(json.dumps(asdict(config)))


def _dataset(config: HistoryConfig, root: Path) -> SyntheticDataset:
    dataset = SyntheticDataset(root)
    if _reusable(config, root):
        samples = json.loads(dataset.manifest.read_text())["openmetrics_samples"]
        print(f"reusing {root} ({samples:,} OpenMetrics samples)")
        return dataset
    began = time.perf_counter()
    manifest = generate_synthetic_cluster(config, root, workload_days=0.1, progress=True)
    print(
        f"generated {manifest['node_metrics_rows']:,} rows, "
        f"{manifest['openmetrics_samples']:,} OpenMetrics samples "
        f"in {time.perf_counter() - began:.0f} s"
    )
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--days", type=float, default=TARGET_DAYS)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--workdir", help="where the data set and stack live (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-collect-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = HistoryConfig(nodes=args.nodes, days=args.days, step_seconds=STEP, end_epoch=END)
    if not _reusable(config, workdir / "data"):
        days = _days_that_fit(args.nodes, args.days, workdir)
        config = HistoryConfig(nodes=args.nodes, days=days, step_seconds=STEP, end_epoch=END)
    days = config.days
    prometheus_port, mlflow_port = find_free_ports(2)
    stack = StackConfig(
        home=workdir / "stack", prometheus_port=prometheus_port, mlflow_port=mlflow_port
    )
    try:
        dataset = _dataset(config, workdir / "data")
        began = time.perf_counter()
        status = stack_up(stack, openmetrics=dataset.openmetrics)
        print(f"stack up (backfill if needed) in {time.perf_counter() - began:.0f} s")
        prometheus_pid = status.service("prometheus").pid
        output = workdir / "collected"
        shutil.rmtree(output, ignore_errors=True)
        start = pd.Timestamp(END - int(days * 86_400), unit="s", tz="UTC")
        end = pd.Timestamp(END, unit="s", tz="UTC")
        settings = FetchSettings(workers=args.workers)

        load_before = _load()
        prometheus_cpu, own_cpu = _cpu_seconds(prometheus_pid), _own_cpu_seconds()
        report = collect_node_metrics(
            status.service("prometheus").url, start, end, STEP, output, settings=settings
        )
        prometheus_cpu = _cpu_seconds(prometheus_pid) - prometheus_cpu
        own_cpu = _own_cpu_seconds() - own_cpu
        load_after = _load()
        rerun = collect_node_metrics(
            status.service("prometheus").url, start, end, STEP, output, progress=False
        )

        scale = args.days / days  # > 1 only when the disk forced a shorter history
        seconds = report.seconds * scale
        note = (
            "" if scale == 1 else f" (measured {report.seconds:.1f} s on {days:g} days, x{scale:g})"
        )
        print(report.summary())
        print(
            f"collect_rows={report.rows_added}, collect_seconds={seconds:.1f}, "
            f"target_seconds={TARGET_SECONDS:.0f}{note}"
        )
        print(f"collect_target_met={seconds <= TARGET_SECONDS}")
        print(f"collect_rows_per_second={report.rows_added / report.seconds:,.0f}")
        print("collect_breakdown=" + json.dumps(report.timings))
        print(
            f"collect_cpu_seconds: prometheus={prometheus_cpu:.1f}, collector={own_cpu:.1f} "
            f"on {os.cpu_count()} cores"
        )
        print(f"load_average (1, 5, 15 min): before {load_before}, after {load_after}")
        print(f"collect_rerun_rows={rerun.rows_added}, collect_rerun_seconds={rerun.seconds:.1f}")
    finally:
        stack_down(stack)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
