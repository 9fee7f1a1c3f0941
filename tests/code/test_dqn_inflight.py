"""The DQN in the extender sees the pods in flight as the simulator's state shows just-placed
pods in training: pending (estimated use not yet observed) and requested."""

from __future__ import annotations

import numpy as np

from components.model_contracts import NODE_STATE_COLUMNS
from components.placement.dqn.inputs import NodeState, node_state_from_cluster, policy_inputs
from scheduler_client.dqn_scorer import DQNPodScorer
from scheduler_client.ledger import InflightLedger, InflightLoad
from tests.code.test_dqn_inference_path import PODS, TOLERANCE, midway, pod_request


def before_the_pods_show(simulated: NodeState, cpu, memory, **others) -> NodeState:
    """What the node features show: the just-placed pods neither pending nor requested yet
    (``others``: more columns as the features show them)."""
    return NodeState.from_columns(
        **{name: simulated[name] for name in NODE_STATE_COLUMNS}
        | {
            "cpu_pending_cores": 0.0,
            "memory_pending_bytes": 0.0,
            "cpu_pending_use_cores": 0.0,
            "cpu_requested_cores": simulated["cpu_requested_cores"] - cpu,
            "memory_requested_bytes": simulated["memory_requested_bytes"] - memory,
        }
        | others
    )


def test_pods_in_flight_give_the_dqn_the_pending_inputs_it_trained_on():
    policy, state, tracker = midway()
    simulated = node_state_from_cluster(state, tracker)
    cpu, memory = simulated["cpu_pending_cores"], simulated["memory_pending_bytes"]
    assert cpu.any() and memory.any()
    observed = before_the_pods_show(simulated, cpu, memory)
    inflight = InflightLoad(
        cpu,
        memory,
        cpu,
        memory,
        np.zeros(len(cpu), dtype=np.int64),
        cpu_use_guess=simulated["cpu_pending_use_cores"],
    )
    scorer = DQNPodScorer(policy.network)
    prepared = scorer.prepare_nodes(observed)
    everyone = np.arange(state.n_nodes)
    for pod in PODS:
        want = policy.q_values(*policy_inputs(simulated, pod))
        with_ledger = scorer.q_values(pod_request(pod), prepared, everyone, inflight)
        without = scorer.q_values(pod_request(pod), prepared, everyone)
        np.testing.assert_allclose(with_ledger, want, **TOLERANCE, err_msg=pod.pod)
        assert not np.allclose(without, want, **TOLERANCE)  # the ledger is what makes them equal


def test_pods_in_flight_count_on_their_nodes_as_just_placed_pods_do_in_training():
    """The simulator's just-placed pods, recorded in the ledger: its pod count, GPUs and guessed
    CPU use reach every column they move (the prior's CPU guess, GPUs free, empty, pods per
    core), so the extender's Q equals the simulator's."""
    policy, state, tracker = midway()
    simulated = node_state_from_cluster(state, tracker)
    placed = state.placed_since_observed
    assert placed
    nodes = np.array([node for _, node in placed])
    pods = np.bincount(nodes, minlength=state.n_nodes).astype(np.float64)
    cpu = np.bincount(nodes, [p.cpu_request_cores for p, _ in placed], state.n_nodes)
    memory = np.bincount(nodes, [p.memory_request_bytes for p, _ in placed], state.n_nodes)
    gpus = np.bincount(nodes, [p.gpus for p, _ in placed], state.n_nodes).astype(np.int64)
    np.testing.assert_allclose(simulated["cpu_pending_cores"], cpu)
    observed = before_the_pods_show(
        simulated,
        cpu,
        memory,
        gpus_requested=simulated["gpus_requested"] - gpus,
        pod_count=simulated["pod_count"] - pods,
    )
    scorer = DQNPodScorer(policy.network)
    prepared = scorer.prepare_nodes(observed)
    everyone = np.arange(state.n_nodes)
    ledger = InflightLedger()
    for placed_pod, node in placed:
        ledger.record(pod_request(placed_pod), state.nodes[node], "bind")
    counted = ledger.load(state.nodes, {})
    np.testing.assert_allclose(counted.cpu_use_guess, simulated["cpu_pending_use_cores"])
    uncounted = InflightLoad(cpu, memory, cpu, memory, gpus, cpu_use_guess=counted.cpu_use_guess)
    for pod in PODS:
        want = policy.q_values(*policy_inputs(simulated, pod))
        got = scorer.q_values(pod_request(pod), prepared, everyone, counted)
        np.testing.assert_allclose(got, want, **TOLERANCE, err_msg=pod.pod)
        without_pods = scorer.q_values(pod_request(pod), prepared, everyone, uncounted)
        assert not np.allclose(without_pods, want, **TOLERANCE)
