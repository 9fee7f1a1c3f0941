"""The placement evaluation's speed: 1,600 pods x 5 seeds x 8 policies in under 5 minutes.

One workload family (default ``bitbrains-rnd``, about 1,600 pods over 4 days at 5-minute steps;
``synthetic`` when the real traces are absent) is drawn with 5 seeds; every draw is replayed whole
(train fraction 0, cut into 3 test windows) under the 7 heuristics and the DQN, with
``evaluate_placement``'s process pool. The DQN is trained once before the clock starts (a short
budget: its replay costs the same whatever it learned) or loaded with ``--dqn-model``. Prints the
wall time against the target, then the per-policy table with intervals and the herding figures.

    .venv/bin/python -m tests.benchmarks.bench_placement_eval [--family F] [--seeds 5]
        [--workers N] [--dqn-model URI | --dqn-train-seconds 60 | --no-dqn]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from components.cpus import available_cpus
from components.placement.cli import summary_table
from components.placement.evaluate import FamilySource, evaluate_placement
from components.placement.families import available_families
from components.placement.policy import policy_names

TARGET_SECONDS = 300.0


def trained_dqn(family: FamilySource, seconds: float, model: str | None):
    """The DQN (a factory loading ``model``, or one trained for ``seconds`` on the first draw's
    first half), and how long that took."""
    began = time.perf_counter()
    if model:
        import functools

        from components.placement.dqn.policy import load_dqn_policy

        return functools.partial(load_dqn_policy, model), time.perf_counter() - began
    from components.placement.dqn.train import train_config, train_dqn_policy

    workload, cluster = family.build(0)
    trained = train_dqn_policy(
        workload.window(0, workload.n_steps // 2),
        cluster,
        seed=0,
        config=train_config(seed=0, time_budget_seconds=seconds),
    )
    policy = trained[0] if isinstance(trained, tuple) else trained
    return policy, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", help="workload family (default bitbrains-rnd, else synthetic)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--dqn-model", help="a saved DQN (folder or MLflow URI)")
    parser.add_argument("--dqn-train-seconds", type=float, default=60.0)
    parser.add_argument("--no-dqn", action="store_true", help="the heuristics only")
    parser.add_argument("--output", help="report path (default: a temporary folder)")
    args = parser.parse_args()

    available = available_families()
    name = args.family or ("bitbrains-rnd" if "bitbrains-rnd" in available else "synthetic")
    family = FamilySource(name)
    policies = [n for n in policy_names() if n != "dqn"]
    dqn = None
    if not args.no_dqn:
        dqn, seconds = trained_dqn(family, args.dqn_train_seconds, args.dqn_model)
        policies.append("dqn")
        print(f"dqn_ready_seconds={seconds:.1f} (not timed)")
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(args.output) if args.output else Path(tmp) / "report.json"
        began = time.perf_counter()
        report = evaluate_placement(
            [family],
            policies,
            seeds=list(range(args.seeds)),
            windows=args.windows,
            train_fraction=0.0,
            dqn=dqn,
            output=output,
            workers=args.workers,
            progress=True,
        )
        seconds = time.perf_counter() - began
    block = report["families"][name]
    print(summary_table(report))
    print(
        f"\nfamily={name} pods_per_draw={block['workload']['pods']} "
        f"steps={block['workload']['steps']} nodes={block['workload']['nodes']} "
        f"seeds={args.seeds} windows={args.windows} policies={len(policies)} "
        f"workers={args.workers}"
    )
    print(f"replays={report['timing']['replays']}")
    print(f"simulation_seconds_summed={report['timing']['simulation_seconds']:.1f}")
    print(f"evaluation_seconds={seconds:.1f}")
    print(f"target_seconds={TARGET_SECONDS:.0f}")
    print(f"target_met={seconds < TARGET_SECONDS}")
    for policy, metrics in block["policies"].items():
        share = metrics["max_burst_share"]
        print(
            f"herding[{policy}] max_burst_share={share['mean']:.2f} "
            f"[{share['low']:.2f}, {share['high']:.2f}] "
            f"mean_burst_share={metrics['mean_burst_share']['mean']:.2f}"
        )


if __name__ == "__main__":
    main()
