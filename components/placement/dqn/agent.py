"""Double DQN: an online and a target scoring network, epsilon-greedy actions, Huber loss.

The loss fits the network's learned values; actions (and the next action of the target) follow
the policy's scores, which mix in the heuristic prior when the network has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
from components.placement.dqn.replay import Observation, ReplayBuffer, collate


@dataclass(frozen=True)
class AgentConfig:
    """Learning hyperparameters."""

    learning_rate: float = 1e-3
    gamma: float = 0.5
    batch_size: int = 64
    target_update_every: int = 200
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_decisions: int = 20_000
    gradient_clip: float = 10.0
    huber_delta: float = 1.0
    replay_capacity: int = 50_000
    warmup_transitions: int = 500
    train_every: int = 4

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def epsilon_at(decision: int, config: AgentConfig) -> float:
    """Linear decay from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_decay_decisions``."""
    if config.epsilon_decay_decisions <= 0:
        return config.epsilon_end
    fraction = min(1.0, decision / config.epsilon_decay_decisions)
    return config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)


class DQNAgent:
    """Acts epsilon-greedily over feasible nodes and learns from a replay buffer.

    Args:
        network: sizes of the scoring network.
        config: learning hyperparameters.
        seed: seeds torch's initialisation, exploration and replay sampling.
    """

    def __init__(self, network: NetworkConfig, config: AgentConfig, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.online = NodeScoringNetwork(network)
        self.target = NodeScoringNetwork(network)
        self.target.load_state_dict(self.online.state_dict())
        self.target.eval()
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.learning_rate)
        self.loss_fn = nn.HuberLoss(delta=config.huber_delta)
        self.replay = ReplayBuffer(config.replay_capacity, seed=seed)
        self.rng = np.random.default_rng([seed, 17])
        self.decisions = 0
        self.updates = 0

    @property
    def epsilon(self) -> float:
        return epsilon_at(self.decisions, self.config)

    def q_values(self, observation: Observation) -> np.ndarray:
        """Masked Q-values of one observation (greedy scores)."""
        with torch.no_grad():
            nodes = torch.from_numpy(observation.nodes).unsqueeze(0)
            pod = torch.from_numpy(observation.pod).unsqueeze(0)
            feasible = torch.from_numpy(observation.feasible).unsqueeze(0)
            return self.online(nodes, pod, feasible)[0].numpy()

    def act(self, observation: Observation, explore: bool = True) -> int:
        """A feasible node index: random with probability epsilon (when exploring), else greedy."""
        feasible = np.flatnonzero(observation.feasible)
        if len(feasible) == 0:
            raise ValueError("no feasible node to act on")
        self.decisions += int(explore)
        if explore and self.rng.uniform() < self.epsilon:
            return int(feasible[self.rng.integers(len(feasible))])
        return int(np.argmax(self.q_values(observation)))

    def learn(self) -> float | None:
        """One gradient step on a replay sample; returns the loss (None while warming up)."""
        if len(self.replay) < max(self.config.warmup_transitions, self.config.batch_size):
            return None
        batch = self.replay.sample(self.config.batch_size)
        q = self.online.learned(batch.nodes, batch.pod, batch.feasible, batch.valid)
        chosen = q.gather(1, batch.action.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            # the next action is the policy's (learned values mixed with the prior), its value
            # the target network's learned one
            next_online = self.online(
                batch.next_nodes, batch.next_pod, batch.next_feasible, batch.next_valid
            )
            best = next_online.argmax(dim=1, keepdim=True)
            next_target = self.target.learned(
                batch.next_nodes, batch.next_pod, batch.next_feasible, batch.next_valid
            )
            bootstrap = next_target.gather(1, best).squeeze(1)
            has_next = batch.next_feasible.any(dim=1)
            bootstrap = torch.where(has_next, bootstrap, torch.zeros_like(bootstrap))
            target = batch.reward + batch.discount * bootstrap
        loss = self.loss_fn(chosen, target)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.config.gradient_clip)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.config.target_update_every == 0:
            self.target.load_state_dict(self.online.state_dict())
        return float(loss.item())


__all__ = ["AgentConfig", "DQNAgent", "collate", "epsilon_at"]
