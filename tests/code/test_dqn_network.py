"""The DQN's scoring network, replay buffer and agent: shapes, masking, invariance, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.placement.dqn.agent import AgentConfig, DQNAgent, epsilon_at
from components.placement.dqn.network import MASKED_Q, NetworkConfig, NodeScoringNetwork
from components.placement.dqn.replay import Observation, ReplayBuffer, Transition, collate

NODE_F, POD_F = 5, 3


def network(seed: int = 0) -> NodeScoringNetwork:
    torch.manual_seed(seed)
    return NodeScoringNetwork(NetworkConfig(NODE_F, POD_F, hidden=16, embedding=8)).eval()


def observation(rng: np.random.Generator, n: int, feasible: np.ndarray | None = None):
    return Observation(
        rng.normal(size=(n, NODE_F)).astype(np.float32),
        rng.normal(size=POD_F).astype(np.float32),
        np.ones(n, dtype=bool) if feasible is None else feasible,
    )


def test_one_masked_q_value_per_node():
    rng = np.random.default_rng(0)
    nodes = torch.from_numpy(rng.normal(size=(4, 7, NODE_F)).astype(np.float32))
    pod = torch.from_numpy(rng.normal(size=(4, POD_F)).astype(np.float32))
    feasible = torch.from_numpy(rng.random((4, 7)) < 0.6)
    with torch.no_grad():
        q = network()(nodes, pod, feasible)
    assert q.shape == (4, 7)
    assert torch.all(q[~feasible] == MASKED_Q)
    assert torch.all(q[feasible] > MASKED_Q / 2)


def test_reordering_nodes_reorders_q_values_the_same_way():
    rng = np.random.default_rng(1)
    nodes = torch.from_numpy(rng.normal(size=(1, 9, NODE_F)).astype(np.float32))
    pod = torch.from_numpy(rng.normal(size=(1, POD_F)).astype(np.float32))
    feasible = torch.ones(1, 9, dtype=torch.bool)
    order = torch.from_numpy(rng.permutation(9))
    net = network()
    with torch.no_grad():
        q = net(nodes, pod, feasible)[0]
        q_permuted = net(nodes[:, order], pod, feasible[:, order])[0]
    torch.testing.assert_close(q_permuted, q[order])


def test_padding_leaves_real_nodes_q_values_unchanged():
    rng = np.random.default_rng(2)
    small, large = observation(rng, 3), observation(rng, 6)
    nodes, pod, feasible, valid = collate([small, large])
    assert nodes.shape == (2, 6, NODE_F) and valid.sum().item() == 9
    net = network()
    with torch.no_grad():
        padded = net(nodes, pod, feasible, valid)[0, :3]
        alone = net(
            torch.from_numpy(small.nodes)[None],
            torch.from_numpy(small.pod)[None],
            torch.ones(1, 3, dtype=torch.bool),
        )[0]
    torch.testing.assert_close(padded, alone)
    with torch.no_grad():
        assert torch.all(net(nodes, pod, feasible, valid)[0, 3:] == MASKED_Q)


def test_one_network_scores_clusters_of_any_size():
    net = network()
    rng = np.random.default_rng(3)
    for n in (1, 2, 50, 1000):
        obs = observation(rng, n)
        with torch.no_grad():
            q = net(
                torch.from_numpy(obs.nodes)[None],
                torch.from_numpy(obs.pod)[None],
                torch.from_numpy(obs.feasible)[None],
            )
        assert q.shape == (1, n) and torch.isfinite(q).all()


def test_replay_ring_keeps_the_newest_and_marks_episode_ends():
    rng = np.random.default_rng(4)
    buffer = ReplayBuffer(capacity=3, seed=0)
    states = [observation(rng, 2 + i) for i in range(5)]
    for i in range(5):
        nxt = states[i + 1] if i < 4 else None
        buffer.add(Transition(states[i], 0, float(i), nxt, 0.9))
    assert len(buffer) == 3
    assert {t.reward for t in buffer._items} == {2.0, 3.0, 4.0}
    batch = buffer.sample(64)
    assert batch.nodes.shape[0] == 64 and batch.next_nodes.shape[0] == 64
    ended = batch.reward == 4.0
    assert ended.any() and torch.all(batch.discount[ended] == 0)
    torch.testing.assert_close(batch.discount[~ended], torch.full_like(batch.discount[~ended], 0.9))


def test_epsilon_decays_linearly_to_its_floor():
    config = AgentConfig(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_decisions=100)
    assert epsilon_at(0, config) == 1.0
    assert epsilon_at(50, config) == pytest.approx(0.55)
    assert epsilon_at(1000, config) == pytest.approx(0.1)


def test_agent_only_picks_feasible_nodes_exploring_or_not():
    agent = DQNAgent(NetworkConfig(NODE_F, POD_F, 16, 8), AgentConfig(), seed=0)
    rng = np.random.default_rng(5)
    for explore in (True, False):
        for _ in range(50):
            feasible = rng.random(6) < 0.4
            feasible[rng.integers(6)] = True
            action = agent.act(observation(rng, 6, feasible), explore=explore)
            assert feasible[action]
    with pytest.raises(ValueError):
        agent.act(observation(rng, 3, np.zeros(3, dtype=bool)))


def _train_briefly(seed: int) -> tuple[list[float], list[int]]:
    config = AgentConfig(batch_size=8, warmup_transitions=8, target_update_every=3)
    agent = DQNAgent(NetworkConfig(NODE_F, POD_F, 16, 8), config, seed=seed)
    rng = np.random.default_rng(seed)
    states = [observation(rng, 4) for _ in range(20)]
    for i, state in enumerate(states):
        nxt = states[i + 1] if i + 1 < len(states) else None
        agent.replay.add(Transition(state, i % 4, float(rng.normal()), nxt, 0.5))
    losses = [agent.learn() for _ in range(6)]
    actions = [agent.act(s, explore=True) for s in states]
    return losses, actions


def test_same_seed_same_learning_and_actions():
    first, second = _train_briefly(7), _train_briefly(7)
    assert first == second
    assert all(loss is not None and np.isfinite(loss) for loss in first[0])
    assert _train_briefly(8) != first


def test_learning_waits_for_the_warmup():
    agent = DQNAgent(NetworkConfig(NODE_F, POD_F, 16, 8), AgentConfig(warmup_transitions=10))
    rng = np.random.default_rng(6)
    agent.replay.add(Transition(observation(rng, 2), 0, 1.0, None, 0.9))
    assert agent.learn() is None
