"""Feature throughput: 100 nodes x 30 days x 30 s (8.6 M rows) in at most 120 s on 2 cores.

Generates the synthetic history (not timed), reads it through the contract reader, then times
``compute_node_features`` over all of it; also times writing the Feast feature table and one call
of the online path (``latest_node_features``). Run from the repository root:
``.venv/bin/python -m tests.benchmarks.bench_features``.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from components.contracts import read_node_metrics
from components.features import (
    FEATURE_NAMES,
    compute_node_features,
    latest_node_features,
    write_feature_table,
)
from components.generate.history import HistoryConfig
from components.generate.synthetic import generate_synthetic_cluster

TARGET_SECONDS = 120.0
END = 1_767_225_600  # 2026-01-01T00:00:00Z


def _peak_gigabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--skip-write", action="store_true", help="do not time the parquet write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = HistoryConfig(nodes=args.nodes, days=args.days, step_seconds=30, end_epoch=END)
        began = time.perf_counter()
        generate_synthetic_cluster(config, Path(tmp) / "cluster", openmetrics=False, progress=False)
        print(f"generate_seconds={time.perf_counter() - began:.1f}")
        began = time.perf_counter()
        metrics = read_node_metrics(Path(tmp) / "cluster" / "node_metrics")
        print(f"read_seconds={time.perf_counter() - began:.1f}")
        print(f"load_average_before={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"peak_rss_gigabytes_after_read={_peak_gigabytes():.1f}")

        began = time.perf_counter()
        features = compute_node_features(metrics, step_seconds=30)
        seconds = time.perf_counter() - began
        print(f"features_rows={len(features)}")
        print(f"features_count={len(FEATURE_NAMES)}")
        print(f"features_seconds={seconds:.1f}")
        print(f"target_seconds={TARGET_SECONDS:.0f}")
        print(f"features_target_met={seconds <= TARGET_SECONDS}")
        print(f"features_rows_per_second={len(features) / seconds:.0f}")
        print(f"load_average_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"peak_rss_gigabytes_after_features={_peak_gigabytes():.1f}")

        began = time.perf_counter()
        latest = latest_node_features(metrics, metrics["timestamp"].max(), step_seconds=30)
        print(f"online_latest_seconds={time.perf_counter() - began:.2f} (nodes={len(latest)})")
        if not args.skip_write:
            began = time.perf_counter()
            path = write_feature_table(features, Path(tmp) / "node_features.parquet")
            print(f"write_table_seconds={time.perf_counter() - began:.1f}")
            print(f"table_megabytes={path.stat().st_size / 2**20:.0f}")
        print(f"peak_rss_gigabytes={_peak_gigabytes():.1f}")


if __name__ == "__main__":
    main()
