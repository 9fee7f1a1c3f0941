"""Anomaly detector figures and training time on the default synthetic data (and NAB if present).

Targets on the synthetic labels: event precision >= 0.94, point FPR <= 0.08, window recall >= 0.8;
training well under a minute. Generates the default data set (12 nodes x 14 days at 30 s) unless
``--data`` names one (``mlsched generate --output DIR --no-openmetrics``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from components.anomaly.evaluate import DEFAULT_TRAIN_FRACTION, evaluate_anomaly
from components.anomaly.evaluation import METRICS
from components.contracts import read_anomaly_labels, read_node_metrics
from components.datasets.nab import read_nab
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster

END = 1_795_564_800  # 2026-11-25T00:00:00Z
NAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab-ec2-cpu"
TARGETS = {"event_precision": (">=", 0.94), "point_fpr": ("<=", 0.08), "window_recall": (">=", 0.8)}


def _print(prefix: str, report: dict, seconds: float) -> None:
    for who, figures in (("", report["overall"]), ("baseline_", report["baseline"]["overall"])):
        for name in METRICS:
            value = figures[name]
            print(f"{prefix}{who}{name}={'nan' if value is None else f'{value:.4f}'}")
    counts = report["overall"]
    print(
        f"{prefix}events={counts['events']} true_events={counts['true_events']} "
        f"windows={counts['windows']} hit_windows={counts['hit_windows']}"
    )
    print(f"{prefix}seconds={seconds:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="a generated data set (default: generate one)")
    parser.add_argument("--train-fraction", type=float, default=DEFAULT_TRAIN_FRACTION)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else Path(tmp) / "default"
        if not args.data:
            generate_synthetic_cluster(
                HistoryConfig(end_epoch=END), root, openmetrics=False, progress=False
            )
        dataset = SyntheticDataset(root)
        metrics = read_node_metrics(dataset.node_metrics)
        labels = read_anomaly_labels(dataset.anomaly_labels)
        began = time.perf_counter()
        report = evaluate_anomaly(metrics, labels, args.train_fraction)
        seconds = time.perf_counter() - began
    _print("synthetic_", report, seconds)
    overall = report["overall"]
    met = all(
        overall[k] is not None and (overall[k] >= v if op == ">=" else overall[k] <= v)
        for k, (op, v) in TARGETS.items()
    )
    print(f"synthetic_targets_met={met}")
    if NAB.is_dir():
        metrics, labels = read_nab(NAB)
        began = time.perf_counter()
        report = evaluate_anomaly(metrics, labels, args.train_fraction, cpu_only=True)
        _print("nab_", report, time.perf_counter() - began)
    else:
        print(f"nab: skipped, {NAB} absent")


if __name__ == "__main__":
    main()
