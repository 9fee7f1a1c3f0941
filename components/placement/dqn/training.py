"""The training loop: episodes on random sources, node subsets and windows; the best greedy
checkpoint kept, then its mixing weights with the heuristic prior chosen on validation.

Validation replays fixed windows of every training source on all its nodes (the same for every
checkpoint). The score it ranks by is the sum over those windows of overload node-minutes divided
by the heuristic prior's own (plus one step), so no single large source dominates; pods pending
break ties. After training, the best checkpoint scores each :attr:`TrainConfig.mixes` candidate
on the same windows and keeps the best; the pure heuristic ``(1, 0)`` is one of them, so a network
whose correction does not help on validation falls back to the heuristic's ranking.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from components.placement.dqn.agent import AgentConfig, DQNAgent
from components.placement.dqn.environment import RewardConfig, run_episode, sample_episode
from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
from components.placement.dqn.mix import Source
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork, with_weights
from components.placement.dqn.policy import DQNPolicy
from components.placement.simulator import SimulationConfig, simulate
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
        validate_every: greedy validation on the validation windows every N episodes.
        validation_windows: validation windows per source; validation_window_seconds: their
            length (the whole source when shorter).
        prior_weight, learned_weight: how the policy mixes the heuristic prior and the learned
            values while training (see :mod:`~components.placement.dqn.network`).
        mixes: the (prior, learned) weights compared on validation after training;
            mix_tolerance: scores within this share of the best count as equal, and the mix
            nearest the heuristic among them wins.
        simulation: the simulator's knobs (observation lag included) for training episodes
            and validation replays.
    """

    episodes: int = 400
    time_budget_seconds: float = 240.0
    window_seconds: float = 12 * 3600.0
    min_nodes: int = 2
    validate_every: int = 10
    seed: int = 0
    agent: AgentConfig = field(default_factory=AgentConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    hidden: int = 64
    embedding: int = 32
    validation_windows: int = 1
    validation_window_seconds: float = 24 * 3600.0
    prior_weight: float = 1.0
    learned_weight: float = 1.0
    mixes: tuple[tuple[float, float], ...] = (
        (1.0, 0.0),
        (1.0, 0.25),
        (1.0, 0.5),
        (1.0, 1.0),
        (1.0, 2.0),
        (0.0, 1.0),
    )
    mix_tolerance: float = 0.05
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


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
    mix_scores: dict[str, float] = field(default_factory=dict)

    def policy(self) -> DQNPolicy:
        return DQNPolicy(network=self.network)


def validation_windows(
    sources: Sequence[Source], config: TrainConfig, rng: np.random.Generator
) -> list[Source]:
    """``config.validation_windows`` fixed windows of every source, on all its nodes."""
    out = []
    for workload, cluster in sources:
        steps = max(2, int(round(config.validation_window_seconds / workload.step_seconds)))
        for _ in range(config.validation_windows):
            if workload.n_steps > steps:
                first = int(rng.integers(0, workload.n_steps - steps + 1))
                out.append((workload.window(first, first + steps), cluster))
            else:
                out.append((workload, cluster))
    return out


def _replay(
    network: NodeScoringNetwork, windows: list[Source], simulation: SimulationConfig | None = None
) -> list[dict[str, float]]:
    return [
        simulate(w, c, DQNPolicy(network=network), seed=0, config=simulation).metrics
        for w, c in windows
    ]


def validation_score(
    runs: list[dict[str, float]], reference: list[dict[str, float]]
) -> tuple[float, float]:
    """(sum of overload relative to the reference's per window, pods pending): lower is better."""
    relative = 0.0
    for run, ref in zip(runs, reference, strict=True):
        step_minutes = run["step_seconds"] / 60.0
        relative += (run["overload_node_minutes"] + step_minutes) / (
            ref["overload_node_minutes"] + step_minutes
        )
    return relative, float(sum(run["pods_pending"] for run in runs))


def train_dqn(
    workload: Workload,
    cluster: Cluster,
    config: TrainConfig,
    *,
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrainedDQN:
    """Train the DQN on one workload (the training slice only) over ``cluster``'s nodes."""
    return train_dqn_mix([(workload, cluster)], config, on_episode=on_episode, progress=progress)


def train_dqn_mix(
    sources: Sequence[Source],
    config: TrainConfig,
    *,
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrainedDQN:
    """Train the DQN on episodes drawn from ``sources`` (workload, cluster) uniformly."""
    if not sources:
        raise ValueError("train_dqn_mix needs at least one (workload, cluster) source")
    began, began_cpu = time.perf_counter(), time.process_time()
    network_config = NetworkConfig(
        N_NODE_FEATURES,
        N_POD_FEATURES,
        config.hidden,
        config.embedding,
        prior_weight=config.prior_weight,
        learned_weight=config.learned_weight,
    )
    agent = DQNAgent(network_config, config.agent, seed=config.seed)
    rng = np.random.default_rng([config.seed, 3])
    windows = validation_windows(sources, config, np.random.default_rng([config.seed, 5]))
    heuristic = _replay(with_weights(agent.online, 1.0, 0.0), windows, config.simulation)
    best, best_key, history = None, None, []
    episodes = range(config.episodes)
    if progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc="dqn episodes", unit="episode")
    done = 0

    def validate(row: dict[str, float] | None) -> None:
        nonlocal best, best_key
        runs = _replay(agent.online, windows, config.simulation)
        key = validation_score(runs, heuristic)
        if row is not None:
            row["validation_relative_overload"] = key[0] / len(windows)
            row["validation_overload_node_minutes"] = sum(r["overload_node_minutes"] for r in runs)
            row["validation_pods_pending"] = key[1]
        if best_key is None or key < best_key:
            best_key, best = key, copy.deepcopy(agent.online)

    for episode in episodes:
        if time.process_time() - began_cpu > config.time_budget_seconds:
            break
        workload, cluster = sources[int(rng.integers(len(sources)))]
        window = max(2, int(round(config.window_seconds / workload.step_seconds)))
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
            simulation=config.simulation,
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
        if done % config.validate_every == 0:
            validate(row)
        history.append(row)
        if on_episode is not None:
            on_episode(episode, row)
    if best is None or done % config.validate_every != 0:
        validate(None)
    network, mix_scores = choose_mix(
        best, windows, heuristic, config.mixes, config.mix_tolerance, config.simulation
    )
    validation = _summed(_replay(network, windows, config.simulation))
    return TrainedDQN(
        network.eval(),
        validation,
        history,
        done,
        time.perf_counter() - began,
        time.process_time() - began_cpu,
        agent.online.eval(),
        mix_scores,
    )


def choose_mix(
    network: NodeScoringNetwork,
    windows: list[Source],
    heuristic: list[dict[str, float]],
    mixes: Sequence[tuple[float, float]],
    tolerance: float = 0.05,
    simulation: SimulationConfig | None = None,
) -> tuple[NodeScoringNetwork, dict[str, float]]:
    """The network with the (prior, learned) weights that validate best, and every candidate's
    relative overload (its validation score over the windows, per window). Mixes within
    ``tolerance`` (relative) of the best score go to the one with the least learned weight per
    prior weight."""
    scored = []
    for prior, learned in mixes:
        candidate = with_weights(network, prior, learned).eval()
        key = validation_score(_replay(candidate, windows, simulation), heuristic)
        scored.append((key, candidate, f"prior_{prior:g}_learned_{learned:g}"))
    best = min(key[0] for key, _, _ in scored)
    # validation windows are few: a mix within the tolerance of the best counts as as good, and
    # the one nearest the heuristic (the earliest listed) wins
    near = [item for item in scored if item[0][0] <= best * (1.0 + tolerance)]
    _, chosen, _ = min(near, key=lambda item: (_distance(item[1]), item[0]))
    return chosen, {name: k[0] / len(windows) for k, _, name in scored}


def _distance(network: NodeScoringNetwork) -> float:
    """How far a mix strays from the heuristic: the learned weight over the prior's."""
    config = network.config
    return config.learned_weight / max(config.prior_weight, 1e-9)


def _summed(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "overload_node_minutes": float(sum(r["overload_node_minutes"] for r in runs)),
        "pods_pending": float(sum(r["pods_pending"] for r in runs)),
    }
