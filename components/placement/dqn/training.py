"""The training loop: episodes on random node subsets and windows, best greedy checkpoint kept."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from components.placement.dqn.agent import AgentConfig, DQNAgent
from components.placement.dqn.environment import RewardConfig, run_episode, sample_episode
from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
from components.placement.dqn.policy import DQNPolicy
from components.placement.simulator import simulate
from components.placement.workload import Cluster, Workload


@dataclass(frozen=True)
class TrainConfig:
    """What and how long to train.

    Attributes:
        episodes: at most this many episodes.
        time_budget_seconds: stop starting episodes after this much CPU time of the process
            (so that a busy machine gives fewer episodes per wall second, not fewer in all).
        window_seconds: length of an episode's replay window.
        min_nodes: smallest node subset an episode draws.
        validate_every: greedy validation run (whole training slice, all nodes) every N episodes.
    """

    episodes: int = 400
    time_budget_seconds: float = 300.0
    window_seconds: float = 12 * 3600.0
    min_nodes: int = 2
    validate_every: int = 10
    seed: int = 0
    agent: AgentConfig = field(default_factory=AgentConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    hidden: int = 64
    embedding: int = 32


@dataclass
class TrainedDQN:
    """The best network found, its validation metrics, and the per-episode history."""

    network: NodeScoringNetwork
    validation: dict[str, float]
    history: list[dict[str, float]]
    episodes: int
    seconds: float
    cpu_seconds: float
    last_network: NodeScoringNetwork | None = None

    def policy(self) -> DQNPolicy:
        return DQNPolicy(network=self.network)


def _validation_key(metrics: dict[str, float]) -> tuple[float, float]:
    return (metrics["overload_node_minutes"], metrics["pods_pending"])


def train_dqn(
    workload: Workload,
    cluster: Cluster,
    config: TrainConfig,
    *,
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrainedDQN:
    """Train the DQN on ``workload`` (the training slice only) over ``cluster``'s nodes."""
    began, began_cpu = time.perf_counter(), time.process_time()
    network_config = NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES, config.hidden, config.embedding)
    agent = DQNAgent(network_config, config.agent, seed=config.seed)
    rng = np.random.default_rng([config.seed, 3])
    window = max(2, int(round(config.window_seconds / workload.step_seconds)))
    best, best_key, history = None, None, []
    episodes = range(config.episodes)
    if progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc="dqn episodes", unit="episode")
    done = 0
    for episode in episodes:
        if time.process_time() - began_cpu > config.time_budget_seconds:
            break
        sub_workload, sub_cluster = sample_episode(
            workload, cluster, rng, window_steps=window, min_nodes=config.min_nodes
        )
        if sub_workload.n_pods == 0:
            continue
        stats = run_episode(
            agent,
            sub_workload,
            sub_cluster,
            config.reward,
            seed=config.seed * 100_003 + episode,
            gamma=config.agent.gamma,
        )
        done += 1
        row = {
            "episode": float(episode),
            "nodes": float(len(sub_cluster.nodes)),
            "decisions": float(stats.decisions),
            "epsilon": agent.epsilon,
            "mean_reward": stats.mean_reward,
            "overload_node_minutes": stats.metrics["overload_node_minutes"],
            "pods_pending": float(stats.metrics["pods_pending"]),
            "replay": float(len(agent.replay)),
            "seconds": time.perf_counter() - began,
            "cpu_seconds": time.process_time() - began_cpu,
        }
        if stats.mean_loss is not None:
            row["loss"] = stats.mean_loss
        last = episode + 1 == config.episodes
        if (episode + 1) % config.validate_every == 0 or last:
            metrics = simulate(workload, cluster, DQNPolicy(network=agent.online), seed=0).metrics
            row["validation_overload_node_minutes"] = metrics["overload_node_minutes"]
            row["validation_pods_pending"] = float(metrics["pods_pending"])
            if best_key is None or _validation_key(metrics) < best_key:
                best_key, best = _validation_key(metrics), (copy.deepcopy(agent.online), metrics)
        history.append(row)
        if on_episode is not None:
            on_episode(episode, row)
    if best is None or done % config.validate_every != 0:
        metrics = simulate(workload, cluster, DQNPolicy(network=agent.online), seed=0).metrics
        if best_key is None or _validation_key(metrics) < best_key:
            best = (copy.deepcopy(agent.online), metrics)
    network, validation = best
    network.eval()
    return TrainedDQN(
        network,
        validation,
        history,
        done,
        time.perf_counter() - began,
        time.process_time() - began_cpu,
        agent.online.eval(),
    )
