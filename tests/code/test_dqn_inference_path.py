"""One cluster state through the DQN's three inference paths, the simulator's policy (training
and evaluation), the KServe predictor over v2 and the extender's in-process scorer, gives the
same Q-values: all three build the policy's inputs with ``components.placement.dqn.inputs``."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd
import torch

from components.model_contracts import NODE_STATE_COLUMNS, PLACEMENT_MODEL
from components.placement.dqn.inputs import (
    N_NODE_FEATURES,
    N_POD_FEATURES,
    NodeState,
    UsageTracker,
    node_state_from_cluster,
    policy_inputs,
)
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork, with_weights
from components.placement.dqn.policy import DQNPolicy
from components.placement.policy import BasePolicy, ClusterState, PodSpec, make_policy
from components.placement.simulator import simulate
from components.placement.workload import Cluster, workload_from_trace
from scheduler_client.api import PodRequest
from scheduler_client.dqn_scorer import DQNPodScorer, cache_node_state
from scheduler_client.predictions import CacheState
from serving.predictors import PlacementDqnModel
from tests.code.test_serving_models import call, outputs_of, tensor, v2_request

GIB = 2.0**30
T0 = pd.Timestamp("2026-01-05T00:00:00Z")
PODS = (
    PodSpec("web", 0.5, 0.5 * GIB),
    PodSpec("train", 4.0, 16 * GIB, gpus=1),
    PodSpec("best-effort", 0.0, 0.0),
    PodSpec("cache", 0.25, 24 * GIB),
)
# float32 rounding: the served record travels as FP32, the extender's forward pass is float32 numpy
TOLERANCE = {"rtol": 1e-6, "atol": 1e-6}


def trace() -> pd.DataFrame:
    """Three hours of pods with requests, without (BestEffort) and with GPUs."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        first, minutes = int(rng.integers(0, 150)), int(rng.integers(10, 60))
        best_effort, gpus = i % 7 == 0, int(i % 9 == 0)
        cpu, memory = (0.0, 0.0) if best_effort else (float(rng.choice([0.5, 1, 2])), 2 * GIB)
        for m in range(first, first + minutes):
            use = float(rng.uniform(0.2, 2.5))
            rows.append((f"p{i}", T0 + pd.Timedelta(minutes=m), use, GIB, cpu, memory, gpus))
    columns = ["pod", "timestamp", "cpu_cores", "memory_bytes", "cpu_request_cores"]
    return pd.DataFrame(rows, columns=[*columns, "memory_request_bytes", "gpus"])


class Recording(BasePolicy):
    """The DQN in the simulator, keeping its last decision's state that has pods pending and
    GPUs requested (what the record must carry)."""

    name = "recording"

    def __init__(self, policy: DQNPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.kept: tuple[ClusterState, UsageTracker] | None = None

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.policy.reset(seed)

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        scores = self.policy.score(pod, state, feasible)
        if state.cpu_requested_since_observed.any() and state.gpus_requested.any():
            self.kept = (state.copy(), copy.deepcopy(self.policy.tracker))
        return scores

    def observe(self, feedback, state: ClusterState) -> None:
        self.policy.observe(feedback, state)


@functools.cache
def midway() -> tuple[DQNPolicy, ClusterState, UsageTracker]:
    """A DQN and a cluster state (with its long-window tracker) from the middle of a replay."""
    torch.manual_seed(0)
    policy = DQNPolicy(network=NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES)))
    nodes = Cluster(
        nodes=tuple(f"node-{i}" for i in range(6)),
        cpu_cores=np.array([4.0, 8.0, 16.0, 8.0, 32.0, 4.0]),
        memory_bytes=np.array([16.0, 32.0, 64.0, 32.0, 128.0, 8.0]) * GIB,
        gpus=np.array([0, 0, 2, 0, 4, 0]),
    )
    recording = Recording(policy)
    simulate(workload_from_trace(trace()), nodes, recording, seed=0)
    state, tracker = recording.kept
    return policy, state, tracker


def pod_request(pod: PodSpec) -> PodRequest:
    return PodRequest(
        pod.pod, "default", "", pod.cpu_request_cores, int(pod.memory_request_bytes), pod.gpus
    )


def served_q_values(served: PlacementDqnModel, nodes: NodeState, pod: PodSpec) -> np.ndarray:
    request = v2_request(
        PLACEMENT_MODEL,
        tensor("node_state", nodes.values.astype(np.float32)),
        tensor("pod", np.array([[pod.cpu_request_cores, pod.memory_request_bytes, pod.gpus]])),
    )
    return outputs_of(call(served, request))["q_values"]


def test_the_simulator_the_kserve_predictor_and_the_extender_give_the_same_q_values():
    policy, state, tracker = midway()
    nodes = node_state_from_cluster(state, tracker)
    assert nodes["cpu_pending_cores"].any() and nodes["gpus_requested"].any()
    assert nodes["cpu_util_long_max"].any()
    served = PlacementDqnModel(model=policy)
    scorer = DQNPodScorer(policy.network)
    prepared = scorer.prepare_nodes(nodes)
    everywhere = np.ones(state.n_nodes, dtype=bool)
    for pod in PODS:
        policy.tracker = copy.deepcopy(tracker)
        simulator = policy.score(pod, state, everywhere)
        np.testing.assert_array_equal(simulator, policy.q_values(*policy_inputs(nodes, pod)))
        kserve = served_q_values(served, nodes, pod)
        extender = scorer.q_values(pod_request(pod), prepared, np.arange(state.n_nodes))
        np.testing.assert_allclose(kserve, simulator, **TOLERANCE, err_msg=pod.pod)
        np.testing.assert_allclose(extender, simulator, **TOLERANCE, err_msg=pod.pod)
        assert len(set(np.round(simulator, 4))) > 1  # the nodes differ: the check has teeth


def test_the_three_paths_agree_when_the_network_mixes_in_the_heuristic_prior():
    policy, state, tracker = midway()
    mixed = DQNPolicy(network=with_weights(policy.network, 1.0, 0.5))
    nodes = node_state_from_cluster(state, tracker)
    served = PlacementDqnModel(model=mixed)
    scorer = DQNPodScorer(mixed.network)
    prepared = scorer.prepare_nodes(nodes)
    everywhere = np.ones(state.n_nodes, dtype=bool)
    for pod in PODS:
        mixed.tracker = copy.deepcopy(tracker)
        simulator = mixed.score(pod, state, everywhere)
        plain = policy.q_values(*policy_inputs(nodes, pod))
        assert not np.allclose(simulator, plain)  # the prior is in the scores
        kserve = served_q_values(served, nodes, pod)
        extender = scorer.q_values(pod_request(pod), prepared, np.arange(state.n_nodes))
        np.testing.assert_allclose(kserve, simulator, **TOLERANCE, err_msg=pod.pod)
        np.testing.assert_allclose(extender, simulator, **TOLERANCE, err_msg=pod.pod)


def test_the_prior_alone_is_greedy_predictive_with_a_per_pod_use_guess():
    """greedy-predictive's rule (observed load + what is placed but not yet observed + the pod),
    the load the mean of the recent P90 and the 6 h peak, the unobserved pods' CPU guessed as
    half their request plus 0.3 cores each (no profiles)."""
    from components.placement.dqn.inputs import PRIOR_CORES_PER_POD
    from components.placement.profiles import PRIOR_USE_PER_REQUESTED_CORE

    policy, state, tracker = midway()
    assert state.cpu_requested_since_observed.sum() > 0  # pending pods: the guess has teeth
    prior_only = DQNPolicy(network=with_weights(policy.network, 1.0, 0.0))
    greedy = make_policy("greedy-predictive")
    greedy.reset(0)
    everywhere = np.ones(state.n_nodes, dtype=bool)
    cpu_p90 = np.percentile(state.cpu_usage_history, 90, axis=0)
    memory_p90 = np.percentile(state.memory_usage_history, 90, axis=0)
    _, long_max, _ = tracker.long_stats(state.n_nodes)
    assert (long_max * state.cpu_capacity > cpu_p90 + 1e-6).any()  # the long peak has teeth
    cpu_load = 0.5 * cpu_p90 + 0.5 * long_max * state.cpu_capacity
    for pod in PODS:
        prior_only.tracker = copy.deepcopy(tracker)
        guess = PRIOR_USE_PER_REQUESTED_CORE * (
            state.cpu_requested_since_observed + pod.nonzero_cpu_cores
        ) + PRIOR_CORES_PER_POD * (state.pod_count + 1)
        cpu = (cpu_load + guess) / state.cpu_capacity / 0.9
        memory = (
            memory_p90 + state.memory_requested_since_observed + pod.nonzero_memory_bytes
        ) / state.memory_capacity
        expected = -np.maximum(cpu, memory / 0.95)
        np.testing.assert_allclose(
            prior_only.score(pod, state, everywhere), expected, rtol=1e-5, err_msg=pod.pod
        )
        assert not np.allclose(expected, greedy.score(pod, state, everywhere))


def test_the_extender_reads_the_record_from_the_node_features():
    """The Feast features name the record's quantities (1 h window, 6 h long window); they
    carry neither pending requests nor GPU requests, which the extender takes as 0."""
    policy, state, tracker = midway()
    nodes = node_state_from_cluster(state, tracker)
    unknown = {
        "gpus_requested": 0.0,
        "cpu_pending_cores": 0.0,
        "memory_pending_bytes": 0.0,
        "cpu_pending_use_cores": 0.0,
    }
    observed = NodeState.from_columns(
        **{name: nodes[name] for name in NODE_STATE_COLUMNS} | unknown
    )
    cpu, memory = nodes["cpu_capacity_cores"], nodes["memory_capacity_bytes"]
    features = pd.DataFrame(
        {
            "cpu_utilization": nodes["cpu_util_now"],
            "cpu_mean_1h": nodes["cpu_util_mean"],
            "cpu_std_1h": nodes["cpu_util_std"],
            "cpu_p95_1h": nodes["cpu_util_p90"],
            "cpu_max_1h": nodes["cpu_util_max"],
            "cpu_mean_6h": nodes["cpu_util_long_mean"],
            "cpu_max_6h": nodes["cpu_util_long_max"],
            "memory_utilization": nodes["memory_util_now"],
            "memory_p95_1h": nodes["memory_util_p90"],
            "memory_max_6h": nodes["memory_util_long_max"],
            "pod_count": nodes["pod_count"],
            "cpu_requested_ratio": nodes["cpu_requested_cores"] / cpu,
            "memory_requested_ratio": nodes["memory_requested_bytes"] / memory,
        },
        index=pd.Index(state.nodes, name="node"),
    )
    refreshed = CacheState(
        nodes=tuple(state.nodes),
        index={name: i for i, name in enumerate(state.nodes)},
        cpu_cores=cpu,
        memory_bytes=memory,
        gpus=state.gpu_capacity,
        cpu_requested_ratio=features["cpu_requested_ratio"].to_numpy(),
        memory_requested_ratio=features["memory_requested_ratio"].to_numpy(),
        cpu_utilization=features["cpu_utilization"].to_numpy(),
        memory_utilization=features["memory_utilization"].to_numpy(),
        snapshot=features,
    )
    np.testing.assert_allclose(cache_node_state(refreshed).values, observed.values, rtol=1e-12)
    scorer = DQNPodScorer(policy.network)
    prepared = scorer.prepare(refreshed)
    for pod in PODS:
        extender = scorer.q_values(pod_request(pod), prepared, np.arange(state.n_nodes))
        want = policy.q_values(*policy_inputs(observed, pod))
        np.testing.assert_allclose(extender, want, **TOLERANCE, err_msg=pod.pod)
