"""How real the synthetic load looks: the statistics of ``components/generate/realism.py`` for
the synthetic default (12 nodes x 14 days at 30 s), a larger synthetic cluster, and each shared
real trace, side by side, per resource; with ``--ceiling``, the latent-state oracle's CPU skill
on the synthetic default (``components/generate/ceiling.py``).

Real traces (skipped when ``../shared/data`` is absent): Bitbrains fastStorage (CPU), Bitbrains
Rnd (CPU and memory, all 500 VMs and the 60 most active), NAB ec2 CPU. Memory in Rnd is the
hypervisor's active-memory counter, so it reads lower than a Kubernetes node's working set.
Run from the repository root: ``.venv/bin/python -m tests.benchmarks.bench_realism``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION
from components.generate.ceiling import CEILING_HORIZONS, latent_state_ceiling
from components.generate.cluster import make_nodes
from components.generate.history import (
    HistoryConfig,
    generate_node,
    latent_factors,
    node_metrics_frame,
)
from components.generate.realism import realism_statistics

END = 1_767_225_600  # 2026-01-01T00:00:00Z
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ACTIVE_RND_VMS = 60


def synthetic(config: HistoryConfig) -> pd.DataFrame:
    factors = latent_factors(config)
    nodes = make_nodes(config.nodes, config.seed)
    return node_metrics_frame(config, [generate_node(config, n, factors) for n in nodes])


def real_traces() -> dict[str, pd.DataFrame]:
    from components.datasets.bitbrains import read_bitbrains
    from components.datasets.bitbrains_rnd import most_active, read_bitbrains_rnd
    from components.datasets.nab import read_nab_series

    traces = {}
    if (SHARED / "bitbrains-faststorage-50vm").is_dir():
        fast = read_bitbrains(SHARED / "bitbrains-faststorage-50vm")
        traces["fastStorage"] = fast.assign(**{MEMORY_UTILIZATION: float("nan")})
    if (SHARED / "bitbrains-rnd-500vm" / "usage.parquet").is_file():
        rnd = read_bitbrains_rnd(SHARED / "bitbrains-rnd-500vm", top=None, days=None)
        traces["rnd-500"] = rnd
        traces[f"rnd-top{ACTIVE_RND_VMS}"] = most_active(rnd, ACTIVE_RND_VMS)
    nab_files = sorted((SHARED / "nab-ec2-cpu").glob("ec2_cpu_utilization_*.csv"))
    if nab_files:
        traces["nab-ec2"] = pd.concat([read_nab_series(f) for f in nab_files], ignore_index=True)
    return traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100, help="nodes of the larger synthetic")
    parser.add_argument("--ceiling", action="store_true", help="also the oracle's CPU skill")
    args = parser.parse_args()
    frames = {
        "synthetic-default": synthetic(HistoryConfig(end_epoch=END)),
        f"synthetic-{args.nodes}": synthetic(
            HistoryConfig(nodes=args.nodes, days=28, step_seconds=60, end_epoch=END)
        ),
    }
    if SHARED.is_dir():
        frames.update(real_traces())
    else:
        print(f"real traces: skipped, {SHARED} not found")
    for resource, column in (("cpu", CPU_UTILIZATION), ("memory", MEMORY_UTILIZATION)):
        began = time.perf_counter()
        table = {name: realism_statistics(frame, column) for name, frame in frames.items()}
        table = pd.DataFrame({name: stats for name, stats in table.items() if stats})
        print(f"== {resource} ({time.perf_counter() - began:.0f} s)")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.round(3).to_string())
    if args.ceiling:
        ceiling = latent_state_ceiling(HistoryConfig(end_epoch=END))
        for name in CEILING_HORIZONS:
            print(f"cpu_{name}_latent_state_oracle_skill={ceiling[name]:.4f}")
        print(f"latent_state_replica_match={ceiling['replica_match']:.4f}")


if __name__ == "__main__":
    main()
