"""The DQN's features, its policy files and batched Q-values, and the training environment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from components.errors import MlschedError
from components.placement.dqn.environment import (
    LearningPolicy,
    RewardConfig,
    decision_rewards,
    sample_episode,
    thin_workload,
)
from components.placement.dqn.inputs import (
    N_NODE_FEATURES,
    N_POD_FEATURES,
    UsageTracker,
    node_features,
    node_state_from_cluster,
    pod_features,
)
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
from components.placement.dqn.policy import (
    DQNPolicy,
    load_dqn_network,
    load_dqn_policy,
    save_dqn_model,
)
from components.placement.dqn.replay import Observation
from components.placement.policy import ClusterState, PodSpec, make_policy
from components.placement.simulator import simulate
from components.placement.workload import Cluster, workload_from_trace

GIB = 1024**3
T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def cluster(cores=(4.0, 8.0, 16.0), gpus=(0, 0, 0)) -> Cluster:
    n = len(cores)
    return Cluster(
        nodes=tuple(f"n{i}" for i in range(n)),
        cpu_cores=np.asarray(cores, dtype=float),
        memory_bytes=np.full(n, 32.0 * GIB),
        gpus=np.asarray(gpus, dtype=np.int64),
    )


def trace(pods: list[tuple[str, int, int, float, float]]) -> pd.DataFrame:
    """Pods as (name, first minute, minutes, cpu use, cpu request), 1 GiB each."""
    rows = []
    for name, first, minutes, use, request in pods:
        for m in range(first, first + minutes):
            rows.append((name, T0 + pd.Timedelta(minutes=m), use, 1.0 * GIB, request, 1.0 * GIB))
    columns = ["pod", "timestamp", "cpu_cores", "memory_bytes", "cpu_request_cores"]
    return pd.DataFrame(rows, columns=[*columns, "memory_request_bytes"])


def busy_state() -> ClusterState:
    nodes = cluster()
    state = nodes.empty_state(60)
    state.record_usage(np.array([3.0, 2.0, 1.0]), np.array([1, 2, 3]) * GIB, 15)
    state.record_usage(np.array([3.5, 2.0, 1.0]), np.array([1, 2, 3]) * GIB, 15)
    state.place(PodSpec("p", 1.0, GIB), 1)
    return state


def tiny_network(seed=0) -> NodeScoringNetwork:
    torch.manual_seed(seed)
    return NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES, 16, 8)).eval()


def test_features_are_finite_fractions_of_each_node():
    state = busy_state()
    pod = PodSpec("q", 2.0, 2 * GIB)
    features = node_features(node_state_from_cluster(state), pod)
    assert features.shape == (3, N_NODE_FEATURES) and features.dtype == np.float32
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[:, 0], [3.5 / 4, 2 / 8, 1 / 16], rtol=1e-6)
    np.testing.assert_allclose(features[:, 10], [0, 1 / 8, 0], rtol=1e-6)
    np.testing.assert_allclose(features[:, 14], [2 / 4, 2 / 8, 2 / 16], rtol=1e-6)
    assert pod_features(pod).shape == (N_POD_FEATURES,)
    assert pod_features(PodSpec("be", 0.0, 0.0))[3] == 1.0


def test_long_window_tracker_keeps_its_window():
    tracker = UsageTracker(3)
    for value in (0.9, 0.1, 0.2, 0.3):
        tracker.record(np.array([value, value]), np.array([0.5, 0.5]))
    mean, peak, memory_peak = tracker.long_stats(2)
    np.testing.assert_allclose(mean, [0.2, 0.2])
    np.testing.assert_allclose(peak, [0.3, 0.3])
    np.testing.assert_allclose(memory_peak, [0.5, 0.5])
    assert UsageTracker(3).long_stats(2)[0].tolist() == [0.0, 0.0]


def test_saved_model_scores_like_the_trained_network(tmp_path):
    network = tiny_network()
    save_dqn_model(network, tmp_path / "model", training={"episodes": 3})
    assert json.loads((tmp_path / "model" / "config.json").read_text())["training"] == {
        "episodes": 3
    }
    loaded = load_dqn_policy(tmp_path / "model")
    state = busy_state()
    pod = PodSpec("q", 0.5, GIB)
    feasible = np.array([True, False, True])
    scores = loaded.score(pod, state, feasible)
    expected = DQNPolicy(network=network).score(pod, state, feasible)
    np.testing.assert_allclose(scores, expected)
    assert scores[1] < -1e8


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(MlschedError, match="not a DQN model folder"):
        load_dqn_network(tmp_path)
    save_dqn_model(tiny_network(), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["node_features"] = ["something", "else"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(MlschedError, match="other features"):
        load_dqn_network(tmp_path / "m")
    with pytest.raises(MlschedError, match="needs a trained model"):
        make_policy("dqn")


def test_registry_builds_the_dqn_from_a_model_folder(tmp_path):
    save_dqn_model(tiny_network(), tmp_path / "m")
    policy = make_policy("dqn", model=tmp_path / "m")
    assert policy.name == "dqn"


def test_batched_q_values_match_single_calls():
    policy = DQNPolicy(network=tiny_network())
    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(3, 5, N_NODE_FEATURES)).astype(np.float32)
    pods = rng.normal(size=(3, N_POD_FEATURES)).astype(np.float32)
    batched = policy.q_values(pods, nodes)
    assert batched.shape == (3, 5)
    for i in range(3):
        np.testing.assert_allclose(policy.q_values(pods[i], nodes[i]), batched[i], rtol=1e-5)
    with pytest.raises(MlschedError, match="node features"):
        policy.q_values(pods[0], nodes[0][:, :3])


def test_dqn_policy_replays_deterministically():
    frame = trace([(f"p{i}", i, 30, 0.5 + 0.1 * i, 0.25) for i in range(12)])
    workload = workload_from_trace(frame)
    runs = [
        simulate(workload, cluster(), DQNPolicy(network=tiny_network()), seed=s) for s in (0, 0)
    ]
    pd.testing.assert_frame_equal(runs[0].assignments, runs[1].assignments)
    assert runs[0].metrics["pods_never_placed"] == 0


def test_episodes_sample_node_subsets_and_thin_pods_in_proportion():
    frame = trace([(f"p{i:03d}", i % 50, 20, 0.3, 0.1) for i in range(400)])
    workload = workload_from_trace(frame)
    nodes = cluster(cores=(8.0,) * 8, gpus=(0,) * 8)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(20):
        sub_workload, sub_cluster = sample_episode(workload, nodes, rng, window_steps=30)
        sizes.add(len(sub_cluster.nodes))
        share = len(sub_cluster.nodes) / 8
        assert sub_workload.n_steps == 30
        assert sub_workload.n_pods <= workload.n_pods
        if share == 1:
            continue
        assert set(sub_cluster.nodes) <= set(nodes.nodes)
    assert len(sizes) > 3
    kept = thin_workload(workload, np.arange(workload.n_pods) % 2 == 0)
    assert kept.n_pods == workload.n_pods // 2
    assert np.array_equal(kept.offset, workload.offset[::2])


class FixedAgent:
    """Stands in for the agent: always picks node 0 (acting is not under test here)."""

    class config:
        train_every = 10**9

    decisions = 0

    def act(self, observation: Observation, explore: bool = True) -> int:
        return 0


def test_rewards_charge_overload_to_the_chosen_node_and_counterfactuals():
    # n0 has 4 cores: the pod (3.7 cores) overloads it alone; n1 (8) or n2 (16) would not be.
    frame = trace([("big", 0, 10, 3.7, 0.5)])
    workload = workload_from_trace(frame)
    nodes = cluster()
    policy = LearningPolicy(FixedAgent(), explore=False, learn=False)
    simulate(workload, nodes, policy, seed=0)
    config = RewardConfig(
        horizon_seconds=600, margin=0.0, utilization=0.0, balance=0.0, pending=0.0
    )
    [(k, order, rewards)] = decision_rewards(
        policy, workload, nodes, config, np.random.default_rng(0)
    )
    assert k == 0 and order[0] == 0 and sorted(order[1:]) == [1, 2]
    by_node = dict(zip(order.tolist(), rewards.tolist(), strict=True))
    assert by_node[0] == pytest.approx(-1.0)
    assert by_node[1] == pytest.approx(0.0) and by_node[2] == pytest.approx(0.0)


def test_fast_p90_matches_numpy():
    from components.placement.dqn.inputs import p90

    history = np.random.default_rng(0).normal(size=(15, 7))
    np.testing.assert_allclose(p90(history), np.percentile(history, 90, axis=0))
    np.testing.assert_allclose(p90(history[:1]), history[0])


def test_prior_weights_travel_with_the_saved_model_and_change_the_ranking(tmp_path):
    from components.placement.dqn.network import with_weights

    network = tiny_network()
    mixed = with_weights(network, 1.0, 0.25)
    save_dqn_model(mixed, tmp_path / "model")
    loaded, document = load_dqn_network(tmp_path / "model")
    assert document["network"]["prior_weight"] == 1.0
    assert document["network"]["learned_weight"] == 0.25
    state, pod = busy_state(), PodSpec("q", 0.5, GIB)
    feasible = np.array([True, False, True])
    scores = DQNPolicy(network=loaded).score(pod, state, feasible)
    np.testing.assert_allclose(scores, DQNPolicy(network=mixed).score(pod, state, feasible))
    learned = DQNPolicy(network=network).score(pod, state, feasible)
    prior = DQNPolicy(network=with_weights(network, 1.0, 0.0)).score(pod, state, feasible)
    np.testing.assert_allclose(
        scores[feasible], (prior + 0.25 * learned)[feasible], rtol=1e-5, atol=1e-6
    )
    assert scores[1] < -1e8  # infeasible stays masked


def test_the_tracker_records_what_a_live_cluster_shows_not_the_truth():
    from components.placement.policy import StepFeedback

    tracker = UsageTracker(4)
    truth, seen = np.array([0.95, 0.2]), np.array([0.5, 0.1])
    step = dict(
        step=0, placements=(), overloaded=truth > 0.9, throttled_pods=np.zeros(2), pending=0
    )
    tracker.record_feedback(StepFeedback(**step, cpu_utilization=truth, memory_utilization=truth))
    assert tracker.long_stats(2)[1].tolist() == [0.0, 0.0]  # nothing observed yet
    tracker.record_feedback(
        StepFeedback(
            **step,
            cpu_utilization=truth,
            memory_utilization=truth,
            observed_cpu_utilization=seen,
            observed_memory_utilization=seen,
        )
    )
    np.testing.assert_allclose(tracker.long_stats(2)[1], seen)


def test_validation_scores_overload_relative_to_the_heuristic_per_window():
    from components.placement.dqn.training import validation_score

    reference = [
        {"overload_node_minutes": 95.0, "pods_pending": 0, "step_seconds": 300},
        {"overload_node_minutes": 0.0, "pods_pending": 0, "step_seconds": 300},
    ]
    runs = [
        {"overload_node_minutes": 45.0, "pods_pending": 2, "step_seconds": 300},
        {"overload_node_minutes": 5.0, "pods_pending": 1, "step_seconds": 300},
    ]
    relative, pending = validation_score(runs, reference)
    assert relative == pytest.approx(50 / 100 + 10 / 5)
    assert pending == 3
    assert validation_score(reference, reference)[0] == pytest.approx(2.0)
