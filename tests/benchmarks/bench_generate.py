"""Generator throughput: 200 nodes x 30 days x 30 s (17 M rows) in under 60 s on 2 cores.

Also times the OpenMetrics export and promtool backfill input size for the default data set.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from components.generate.history import HistoryConfig
from components.generate.synthetic import generate_synthetic_cluster

TARGET_SECONDS = 60.0
END = 1_767_225_600  # 2026-01-01T00:00:00Z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--with-default-openmetrics", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = HistoryConfig(nodes=args.nodes, days=args.days, step_seconds=30, end_epoch=END)
        began = time.perf_counter()
        manifest = generate_synthetic_cluster(
            config, Path(tmp) / "big", openmetrics=False, progress=True
        )
        seconds = time.perf_counter() - began
        rows = manifest["node_metrics_rows"]
        print(f"generate_rows={rows}")
        print(f"generate_seconds={seconds:.1f}")
        print(f"generate_rows_per_second={rows / seconds:.0f}")
        print(f"generate_target_seconds={TARGET_SECONDS:.0f}")
        print(f"generate_target_met={seconds < TARGET_SECONDS}")
        print("generate_breakdown=" + json.dumps(manifest["timings"]))
        if args.with_default_openmetrics:
            began = time.perf_counter()
            manifest = generate_synthetic_cluster(
                HistoryConfig(end_epoch=END), Path(tmp) / "default", progress=False
            )
            print(f"default_with_openmetrics_seconds={time.perf_counter() - began:.1f}")
            print(f"default_openmetrics_samples={manifest['openmetrics_samples']}")


if __name__ == "__main__":
    main()
