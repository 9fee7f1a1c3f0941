"""Collect error per Prometheus layout: p90 of |collected - truth| at a 5-minute step <= 0.01.

Generates a day of a few nodes scraped every 30 s, writes it in each layout of the OpenMetrics
export, backfills a real Prometheus per layout and collects it at a 5-minute step with the shipped
queries (automatic ``$window``), then once with the former automatic window (20m at this step).
The truth and the Prometheus set-up are those of ``tests/integration/test_collect_layouts.py``.

    .venv/bin/python -m tests.benchmarks.bench_collect_layouts [--nodes 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from components.collect import load_collect_config
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION
from components.generate.history import HistoryConfig
from components.generate.openmetrics import LAYOUTS
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from tests.integration.test_collect_layouts import END, ERROR_P90, STEP, layout_errors, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-layouts-") as work:
        root = Path(work)
        config = HistoryConfig(
            nodes=args.nodes, days=1, step_seconds=30, seed=5, end_epoch=int(END.timestamp())
        )
        generate_synthetic_cluster(
            config, root / "data", workload_days=0.1, openmetrics=False, progress=False
        )
        dataset = SyntheticDataset(root / "data")
        window = load_collect_config().window_for(STEP, 30)
        print(f"step {STEP}s, scrape 30s: automatic $window {window:g}s; target p90 <= {ERROR_P90}")
        print(f"{'layout':<15} {'window':>6} {'cpu p90':>8} {'mem p90':>8} {'rows':>6}")
        runs = [(layout, None) for layout in LAYOUTS] + [("instance-port", "20m")]
        for index, (layout, fixed) in enumerate(runs):
            home = root / f"run-{index}"
            home.mkdir()
            with served(dataset, layout, home) as url:
                errors = layout_errors(dataset, url, home / "collected", window=fixed)
            print(
                f"{layout:<15} {fixed or 'auto':>6} {errors[CPU_UTILIZATION]:>8.4f} "
                f"{errors[MEMORY_UTILIZATION]:>8.4f} {errors['rows']:>6}"
            )


if __name__ == "__main__":
    main()
