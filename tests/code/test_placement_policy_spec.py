"""A heuristic champion as a registered model: its spec file, and its scores on the served record
equal to the simulator's on the same cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.errors import MlschedError
from components.placement.dqn.inputs import node_state_from_cluster
from components.placement.policy import ClusterState, PodSpec, make_policy
from components.placement.policy_spec import (
    PolicySpec,
    cluster_state_from_node_state,
    load_placement_model,
    read_policy_spec,
    save_policy_spec,
    score_node_state,
)
from scheduler_client.api import PodRequest
from scheduler_client.ledger import InflightLoad
from scheduler_client.policy_scorer import HeuristicPodScorer, load_pod_scorer

GIB = 1024.0**3


def simulated_cluster(seed: int = 0) -> ClusterState:
    """Six nodes (two with GPUs), pods placed, five observed steps of use."""
    rng = np.random.default_rng(seed)
    state = ClusterState.empty(
        [f"n{i}" for i in range(6)],
        np.array([16, 16, 32, 32, 48, 48.0]),
        np.array([64, 64, 128, 128, 192, 192]) * GIB,
        np.array([0, 0, 0, 0, 4, 4]),
    )
    for i in range(14):
        pod = PodSpec(
            f"p{i}", float(rng.choice([0.5, 1, 2, 4])), float(rng.choice([1, 2, 8])) * GIB
        )
        state.place(pod, int(rng.integers(6)))
    for _ in range(5):
        cpu = state.cpu_requested * rng.uniform(0.3, 1.4, 6)
        memory = state.memory_requested * rng.uniform(0.5, 1.1, 6)
        state.record_usage(cpu, memory, window=15)
    state.place(PodSpec("late", 3.0, 4 * GIB), 2)  # placed since the last observation
    return state


POD = PodSpec("new", 2.0, 4 * GIB)


@pytest.mark.parametrize(
    "name", ["kube-default", "least-allocated", "most-allocated", "greedy-predictive"]
)
def test_served_scores_equal_the_simulators_on_the_same_cluster(name):
    state = simulated_cluster()
    policy = make_policy(name)
    policy.reset(0)
    expected = policy.score(POD, state, np.ones(6, dtype=bool))
    served = score_node_state(make_policy(name), node_state_from_cluster(state), POD)
    np.testing.assert_allclose(served, expected, rtol=1e-9)


def test_target_load_packing_adds_back_the_pods_placed_since_the_observation():
    state = simulated_cluster()
    policy = make_policy("trimaran-tlp")
    policy.reset(0)
    expected = policy.score(POD, state, np.ones(6, dtype=bool))
    served = score_node_state(make_policy("trimaran-tlp"), node_state_from_cluster(state), POD)
    np.testing.assert_allclose(served, expected, atol=1.0)  # Go rounding per pod vs per node
    rebuilt = cluster_state_from_node_state(node_state_from_cluster(state))
    assert [node for _, node in rebuilt.placed_since_observed] == [2]
    assert rebuilt.cpu_requested_since_observed[2] == 3.0


def test_spec_round_trip_and_clear_errors(tmp_path):
    spec = PolicySpec("trimaran-tlp", {"target_percent": 50.0}, reason="dqn loses")
    folder = save_policy_spec(spec, tmp_path / "policy")
    assert read_policy_spec(folder) == spec
    assert load_placement_model(tmp_path) == spec  # found below a downloaded artifact root
    assert (
        make_policy("trimaran-tlp", target_percent=50.0).target_percent
        == spec.build().target_percent
    )
    with pytest.raises(MlschedError, match="not a servable heuristic"):
        PolicySpec("dqn")
    with pytest.raises(MlschedError, match="not a servable heuristic"):
        PolicySpec("random")
    with pytest.raises(MlschedError, match="bad parameters"):
        PolicySpec("kube-default", {"target_percent": 1})
    (folder / "policy.json").write_text(json.dumps({"params": {}}))
    with pytest.raises(MlschedError, match="policy.json: not a placement policy spec"):
        read_policy_spec(folder)
    with pytest.raises(MlschedError, match="no such placement model folder"):
        load_placement_model(tmp_path / "nothing")


def test_a_dqn_folder_loads_as_the_dqn_scorer(tmp_path):
    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
    from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
    from components.placement.dqn.policy import save_dqn_model
    from scheduler_client.dqn_scorer import DQNPodScorer

    network = NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES))
    save_dqn_model(network, tmp_path / "dqn")
    assert isinstance(load_pod_scorer(tmp_path / "dqn"), DQNPodScorer)
    save_policy_spec(PolicySpec("kube-default"), tmp_path / "policy")
    assert isinstance(load_pod_scorer(tmp_path / "policy"), HeuristicPodScorer)


def test_the_heuristic_scorer_counts_pods_in_flight():
    state = simulated_cluster()
    scorer = HeuristicPodScorer(PolicySpec("greedy-predictive"))
    nodes = node_state_from_cluster(state)
    pod = PodRequest("web-1", "default", "uid-1", 2.0, int(4 * GIB), 0)
    positions = np.array([0, 1, 2])
    before = scorer.q_values(pod, nodes, positions)
    zero = np.zeros(3)
    inflight = InflightLoad(np.array([8.0, 0, 0]), zero, np.array([8.0, 0, 0]), zero, zero)
    after = scorer.q_values(pod, nodes, positions, inflight)
    assert after[0] < before[0] and np.allclose(after[1:], before[1:])
