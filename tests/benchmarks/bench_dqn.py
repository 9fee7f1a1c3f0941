"""DQN serving latency and training throughput on CPU.

Targets: ``q_values`` for one pod over 1,000 nodes in < 10 ms on CPU (one torch thread), from
ready feature arrays, and the full ``score`` (features from a cluster state + Q-values). Also
times one training episode on a synthetic cluster.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
from components.placement.dqn.policy import DQNPolicy
from components.placement.policy import ClusterState, PodSpec

TARGET_MS = 10.0
GIB = 1024**3


def _timed(call, repeats: int) -> tuple[list[float], float]:
    """Wall milliseconds per call, and mean CPU milliseconds (robust on a busy machine)."""
    call()
    times = []
    cpu_began = time.process_time()
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times, (time.process_time() - cpu_began) * 1000 / repeats


def _state(n: int, rng: np.random.Generator) -> ClusterState:
    state = ClusterState.empty(
        [f"n{i}" for i in range(n)], np.full(n, 16.0), np.full(n, 64.0 * GIB), np.zeros(n)
    )
    for _ in range(15):
        state.record_usage(rng.uniform(0, 14, n), rng.uniform(0, 60, n) * GIB, 15)
    return state


def _episode_seconds() -> float:
    from components.generate.cluster import make_nodes, nodes_table
    from components.generate.workload import WorkloadConfig, generate_workload
    from components.placement.dqn.training import TrainConfig, train_dqn
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    table = nodes_table(make_nodes(12, 0))
    trace = generate_workload(WorkloadConfig(1_767_225_600, days=0.5), table)
    workload, cluster = workload_from_trace(trace), cluster_from_nodes(table)
    began = time.process_time()
    trained = train_dqn(workload, cluster, TrainConfig(episodes=3, validate_every=1000))
    return (time.process_time() - began) / max(trained.episodes, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = DQNPolicy(network=NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES)))
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(args.nodes, N_NODE_FEATURES)).astype(np.float32)
    pod = rng.normal(size=N_POD_FEATURES).astype(np.float32)
    q_ms, q_cpu = _timed(lambda: policy.q_values(pod, nodes), args.repeats)
    state = _state(args.nodes, rng)
    spec = PodSpec("bench", 0.5, 1.0 * GIB)
    feasible = np.ones(args.nodes, dtype=bool)
    score_ms, score_cpu = _timed(
        lambda: policy.score(spec, state, feasible), max(20, args.repeats // 4)
    )
    p99 = float(np.percentile(q_ms, 99))
    print(f"dqn_nodes={args.nodes}")
    print(f"dqn_q_values_ms_p50={statistics.median(q_ms):.3f}")
    print(f"dqn_q_values_ms_p99={p99:.3f}")
    print(f"dqn_q_values_cpu_ms_mean={q_cpu:.3f}")
    print(f"dqn_score_with_features_cpu_ms_mean={score_cpu:.3f}")
    print(f"dqn_score_with_features_ms_p50={statistics.median(score_ms):.3f}")
    print(f"dqn_score_with_features_ms_p99={float(np.percentile(score_ms, 99)):.3f}")
    print(f"dqn_q_values_target_ms={TARGET_MS:.0f}")
    print(f"dqn_q_values_target_met={p99 < TARGET_MS}")
    with tempfile.TemporaryDirectory() as tmp:
        from components.placement.dqn.policy import load_dqn_policy, save_dqn_model

        save_dqn_model(policy.network, Path(tmp) / "m")
        began = time.perf_counter()
        load_dqn_policy(Path(tmp) / "m")
        print(f"dqn_load_ms={(time.perf_counter() - began) * 1000:.1f}")
    if not args.skip_training:
        print(f"dqn_training_cpu_seconds_per_episode={_episode_seconds():.2f}")


if __name__ == "__main__":
    main()
