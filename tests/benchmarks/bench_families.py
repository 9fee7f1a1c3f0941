"""Build every workload family (default knobs) over a few seeds: build time and the figures that
tell the families apart (pods, nodes, mean CPU use of the cluster, bursts).

    .venv/bin/python -m tests.benchmarks.bench_families --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from components.placement.families import available_families, build_family, family_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--families", nargs="+", default=None)
    parser.add_argument("--randomised", action="store_true", help="randomised_knobs per seed")
    args = parser.parse_args(argv)
    from components.placement.families import randomised_knobs

    columns = (
        "pods",
        "nodes",
        "cores",
        "mean_cpu_use_share",
        "cpu_pool_use_share",
        "peak_cpu_use_share",
        "cpu_request_to_use",
        "bursts",
        "pods_in_bursts",
        "gpu_pods",
        "gpu_nodes",
    )
    print("| family | seed | build s | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 3) + "|")
    for name in args.families or available_families():
        for seed in args.seeds:
            knobs = randomised_knobs(np.random.default_rng(seed)) if args.randomised else None
            began = time.perf_counter()
            workload, cluster = build_family(name, seed=seed, knobs=knobs)
            took = time.perf_counter() - began
            stats = family_stats(workload, cluster)
            cells = " | ".join(f"{stats[c]:.3g}" for c in columns)
            print(f"| {name} | {seed} | {took:.1f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
