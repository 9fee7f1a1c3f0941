"""Placement simulator speed and the policy comparison.

1. Speed: 2,000 pods x 1,000 steps x 50 nodes in under 30 s per policy run (synthetic pods).
2. Comparison: ``evaluate_placement`` (train fraction 0.5, ``--seeds`` x 2 test windows) on the
   synthetic workload (50 nodes, 2 days at 1-minute steps) and, when ``../shared/data`` is
   present, on the Bitbrains workload: every metric per policy with its 95 % interval.
   ``--with-dqn`` trains the DQN on each workload's first half (minutes of CPU).

    .venv/bin/python -m tests.benchmarks.bench_placement [--skip-speed] [--with-dqn] [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import validate_nodes_table, validate_workload_trace
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.placement.cli import dqn_trainer, summary_table
from components.placement.evaluate import custom_family, evaluate_placement
from components.placement.families import build_family_frames, family_folder
from components.placement.policy import make_policy, policy_names
from components.placement.simulator import simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace

TARGET_SECONDS = 30.0
START = 1_767_225_600  # 2026-01-01T00:00:00Z
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def synthetic(nodes: int, days: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = validate_nodes_table(nodes_table(make_nodes(nodes, seed)))
    trace = generate_workload(WorkloadConfig(START, days=days, step_seconds=60, seed=seed), table)
    return validate_workload_trace(trace), table


def speed_workload(pods: int = 2000, steps: int = 1000, nodes: int = 50):
    trace, table = synthetic(nodes, steps / 1440)
    names = np.sort(trace["pod"].unique())
    keep = np.random.default_rng(0).choice(names, size=min(pods, len(names)), replace=False)
    return workload_from_trace(trace[trace["pod"].isin(keep)].reset_index(drop=True)), table


def baselines() -> list[str]:
    return [n for n in policy_names() if n != "dqn"]


def bench_speed() -> None:
    workload, table = speed_workload()
    cluster = cluster_from_nodes(table)
    print(f"speed_pods={workload.n_pods} speed_steps={workload.n_steps} nodes={len(table)}")
    worst = 0.0
    for name in baselines():
        began = time.perf_counter()
        result = simulate(workload, cluster, make_policy(name), seed=0)
        seconds = time.perf_counter() - began
        worst = max(worst, seconds)
        print(
            f"speed_seconds[{name}]={seconds:.2f} "
            f"overload_node_minutes={result.metrics['overload_node_minutes']:.0f}"
        )
    print(f"speed_worst_seconds={worst:.2f}")
    print(f"speed_target_seconds={TARGET_SECONDS:.0f}")
    print(f"speed_target_met={worst < TARGET_SECONDS}")


def compare(label: str, trace, table, policies: list[str], dqn, output: Path, seeds: int) -> None:
    began = time.perf_counter()
    report = evaluate_placement(
        [custom_family(trace, table, name=label)],
        policies,
        seeds=list(range(seeds)),
        windows=2,
        train_fraction=0.5,
        dqn=dqn,
        dqn_unavailable="not requested (--with-dqn)",
        output=output / f"{label}.json",
    )
    print(summary_table(report))
    print(f"[{label}] {time.perf_counter() - began:.0f}s, report {output / f'{label}.json'}")


def trained_dqn(trace, table):
    """The DQN trained on the first half of the workload (what the test windows follow)."""
    trainer, why = dqn_trainer()
    if trainer is None:
        return None
    workload, cluster = workload_from_trace(trace), cluster_from_nodes(table)
    trained = trainer(workload.window(0, workload.n_steps // 2), cluster, seed=0)
    return trained[0] if isinstance(trained, tuple) else trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--with-dqn", action="store_true")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per comparison")
    parser.add_argument("--output", help="folder for the reports (default: a temporary one)")
    args = parser.parse_args()
    if not args.skip_speed:
        bench_speed()
    if args.skip_compare:
        return
    policies = baselines() + (["dqn"] if args.with_dqn else [])
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(args.output) if args.output else Path(tmp)
        output.mkdir(parents=True, exist_ok=True)
        trace, table = synthetic(50, 2)
        dqn = trained_dqn(trace, table) if args.with_dqn else None
        compare("synthetic", trace, table, policies, dqn, output, args.seeds)
        if family_folder("bitbrains-faststorage", SHARED).is_dir():
            trace, table = build_family_frames("bitbrains-faststorage", seed=0, data_dir=SHARED)
            dqn = trained_dqn(trace, table) if args.with_dqn else None
            compare("bitbrains", trace, table, policies, dqn, output, args.seeds)
        else:
            print(f"\n[bitbrains] skipped: {SHARED} is absent")


if __name__ == "__main__":
    main()
