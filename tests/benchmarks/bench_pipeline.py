"""Local training pipeline, end to end: the default data (12 nodes x 14 days) in at most 10 min.

Generates the data set (not timed) unless ``--data`` names one, then runs the training pipeline
with kfp.local's SubprocessRunner against a SQLite MLflow store in a temporary folder and prints
the total and each task's wall time (tasks run one after another). Run from the repository root:
``.venv/bin/python -m tests.benchmarks.bench_pipeline [--data data/synthetic]``.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from components.cli_args import positive_seconds
from components.generate.history import HistoryConfig
from components.generate.synthetic import generate_synthetic_cluster
from pipelines.run import run_local, synthetic_arguments

TARGET_SECONDS = 600.0
END = 1_767_225_600  # 2026-01-01T00:00:00Z


def task_seconds(run_dir: Path, started: float) -> dict[str, float]:
    """Wall time per task, from when each wrote its executor output (tasks run in sequence)."""
    finished = sorted(
        (p.stat().st_mtime, p.parent.name) for p in run_dir.rglob("executor_output.json")
    )
    out, previous = {}, started
    for stamp, name in finished:
        out[name] = stamp - previous
        previous = stamp
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="an existing `mlsched generate` data set")
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--placement-time-budget", type=positive_seconds, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = Path(args.data).resolve() if args.data else root / "synthetic"
        if not args.data:
            config = HistoryConfig(nodes=args.nodes, days=args.days, step_seconds=30, end_epoch=END)
            generate_synthetic_cluster(config, data, openmetrics=False, progress=False)
        arguments = {
            **synthetic_arguments(data),
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "placement_args": [f"--time-budget={args.placement_time_budget:g}"],
        }
        os.chdir(root)
        started = time.time()
        run = run_local("training", arguments, pipeline_root=root / "runs")
        total = time.time() - started
        print(json.dumps({k: round(v, 1) for k, v in task_seconds(run.run_dir, started).items()}))
        verdict = "meets" if total <= TARGET_SECONDS else "MISSES"
        print(f"training pipeline: {total:.0f} s ({verdict} the {TARGET_SECONDS:.0f} s target)")


if __name__ == "__main__":
    main()
