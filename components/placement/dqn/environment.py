"""The simulator as decision episodes: one decision per placed pod, rewards from its metrics.

An episode replays a window of the training workload on a random subset of the nodes (pods
thinned in proportion, so the load stays realistic), which trains one network for clusters of any
size. The learning policy acts inside the simulator through the ordinary policy interface and
records every decision; ``observe`` hands it each step's per-node utilisation and overload flags.
When the replay ends, each decision gets a reward from what followed on the node it chose:
overload steps (real CPU > 90 % or memory > 95 %) and near-overload margin over a horizon
penalised, pending pods penalised, utilisation of the node and balance with the cluster rewarded.
The same reward is computed for the other feasible nodes as if the pod had gone there (its real
use added to theirs), and stored as counterfactual transitions: the simulator's replay makes that
hindsight exact for the pod's own use, and it multiplies what one episode teaches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from components.placement.dqn.agent import DQNAgent
from components.placement.dqn.inputs import (
    CPU_OVERLOAD,
    MEMORY_OVERLOAD,
    UsageTracker,
    node_state_from_cluster,
    policy_inputs,
)
from components.placement.dqn.replay import Observation, Transition
from components.placement.policy import BasePolicy, ClusterState, PodSpec, StepFeedback
from components.placement.simulator import SimulationConfig, SimulationResult, simulate
from components.placement.workload import Cluster, Workload


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward of placing a pod at step ``s`` on node ``j``.

    With ``u(t)`` node j's CPU and ``m(t)`` its memory utilisation with the pod on it, over the
    pod's steps within ``[s, s + horizon)``, and ``H`` the horizon in steps::

        r = -(overload * #{t: u > 0.9 or m > 0.95} + margin * sum clip((u - 0.8) / 0.1, 0, 1)) / H
            + utilization * min(u(s), 0.8) - balance * |u(s) - cluster mean(s)|
            - pending * (pods pending after step s) / nodes

    ``counterfactuals``: how many other feasible nodes get a hindsight transition per decision.
    """

    horizon_seconds: float = 4 * 3600.0
    overload: float = 1.0
    margin: float = 0.5
    margin_start: float = 0.80
    pending: float = 0.05
    utilization: float = 0.05
    balance: float = 0.05
    counterfactuals: int = 8


@dataclass
class Decision:
    step: int
    pod: str
    node: int
    observation: Observation


class LearningPolicy(BasePolicy):
    """Epsilon-greedy DQN acting inside the simulator, recording decisions and step feedback."""

    name = "dqn-learning"

    def __init__(self, agent: DQNAgent, explore: bool = True, learn: bool = True) -> None:
        super().__init__()
        self.agent = agent
        self.explore = explore
        self.learn = learn
        self.tracker = UsageTracker(1)
        self.decisions: list[Decision] = []
        self.cpu_util: list[np.ndarray] = []
        self.memory_util: list[np.ndarray] = []
        self.pending: list[int] = []
        self.losses: list[float] = []
        self._step_seconds = 60.0

    def start(self, step_seconds: float) -> None:
        self._step_seconds = step_seconds

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.tracker = UsageTracker.for_step(self._step_seconds)
        self.decisions, self.cpu_util, self.memory_util, self.pending = [], [], [], []

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        pod_features, node_features = policy_inputs(
            node_state_from_cluster(state, self.tracker), pod
        )
        observation = Observation(node_features, pod_features, feasible.copy())
        node = self.agent.act(observation, explore=self.explore)
        self.decisions.append(Decision(state.step, pod.pod, node, observation))
        if self.learn and self.agent.decisions % self.agent.config.train_every == 0:
            loss = self.agent.learn()
            if loss is not None:
                self.losses.append(loss)
        scores = np.zeros(state.n_nodes)
        scores[node] = 1.0
        return scores

    def observe(self, feedback: StepFeedback, state: ClusterState) -> None:
        self.tracker.record_feedback(feedback)
        self.cpu_util.append(feedback.cpu_utilization.copy())
        self.memory_util.append(feedback.memory_utilization.copy())
        self.pending.append(feedback.pending)


def sample_episode(
    workload: Workload,
    cluster: Cluster,
    rng: np.random.Generator,
    *,
    window_steps: int,
    min_nodes: int = 2,
) -> tuple[Workload, Cluster]:
    """A random time window on a random subset of nodes, pods thinned to the subset's share."""
    n = len(cluster.nodes)
    count = int(rng.integers(min(min_nodes, n), n + 1))
    chosen = np.sort(rng.choice(n, size=count, replace=False))
    sub = Cluster(
        nodes=tuple(cluster.nodes[i] for i in chosen),
        cpu_cores=cluster.cpu_cores[chosen],
        memory_bytes=cluster.memory_bytes[chosen],
        gpus=cluster.gpus[chosen],
    )
    share = float(sub.cpu_cores.sum() / cluster.cpu_cores.sum())
    if workload.n_steps > window_steps:
        first = int(rng.integers(0, workload.n_steps - window_steps + 1))
        workload = workload.window(first, first + window_steps)
    keep = (rng.random(workload.n_pods) < share) & (workload.gpus <= sub.gpus.max(initial=0))
    return thin_workload(workload, keep), sub


def thin_workload(workload: Workload, keep: np.ndarray) -> Workload:
    """The workload restricted to the pods where ``keep`` is True (use arrays shared)."""
    return replace(
        workload,
        pods=workload.pods[keep],
        arrival=workload.arrival[keep],
        length=workload.length[keep],
        offset=workload.offset[keep],
        cpu_request=workload.cpu_request[keep],
        memory_request=workload.memory_request[keep],
        gpus=workload.gpus[keep],
        cpu_limit=workload.cpu_limit[keep],
        owner=workload.owner[keep],
    )


def _pod_use(workload: Workload, index: int, start: int, end: int):
    rows = workload.offset[index] + np.arange(end - start)
    return workload.cpu_usage[rows], workload.memory_usage[rows]


def decision_rewards(
    policy: LearningPolicy,
    workload: Workload,
    cluster: Cluster,
    config: RewardConfig,
    rng: np.random.Generator,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """For each decision: (decision index, node indices, rewards), the chosen node first."""
    cpu_util = np.asarray(policy.cpu_util)
    mem_util = np.asarray(policy.memory_util)
    pending = np.asarray(policy.pending, dtype=np.float64)
    n_steps, n_nodes = cpu_util.shape
    horizon = max(1, int(round(config.horizon_seconds / workload.step_seconds)))
    index_of = {str(name): i for i, name in enumerate(workload.pods)}
    out = []
    for k, decision in enumerate(policy.decisions):
        pod = index_of[decision.pod]
        start = decision.step
        end = min(n_steps, start + horizon, start + int(workload.length[pod]))
        cpu_pod, mem_pod = _pod_use(workload, pod, start, end)
        others = np.flatnonzero(decision.observation.feasible)
        others = others[others != decision.node]
        if len(others) > config.counterfactuals:
            others = rng.choice(others, size=config.counterfactuals, replace=False)
        nodes = np.concatenate([[decision.node], others]).astype(np.int64)
        cpu = cpu_util[start:end, nodes].copy()
        mem = mem_util[start:end, nodes].copy()
        cpu[:, 1:] += cpu_pod[:, None] / cluster.cpu_cores[nodes[1:]]
        mem[:, 1:] += mem_pod[:, None] / cluster.memory_bytes[nodes[1:]]
        over = (cpu > CPU_OVERLOAD) | (mem > MEMORY_OVERLOAD)
        margin = np.clip((cpu - config.margin_start) / (CPU_OVERLOAD - config.margin_start), 0, 1)
        reward = -(config.overload * over.sum(0) + config.margin * margin.sum(0)) / horizon
        mean_cpu = float(cpu_util[start].mean())
        reward += config.utilization * np.minimum(cpu[0], config.margin_start)
        reward -= config.balance * np.abs(cpu[0] - mean_cpu)
        reward -= config.pending * pending[start] / max(n_nodes, 1)
        out.append((k, nodes, reward))
    return out


@dataclass(frozen=True)
class EpisodeStats:
    metrics: dict[str, float]
    decisions: int
    mean_reward: float
    mean_loss: float | None


def run_episode(
    agent: DQNAgent,
    workload: Workload,
    cluster: Cluster,
    reward: RewardConfig,
    *,
    seed: int,
    gamma: float,
    simulation: SimulationConfig | None = None,
) -> EpisodeStats:
    """Replay the episode with exploration and learning; store its transitions in the replay."""
    policy = LearningPolicy(agent, explore=True, learn=True)
    policy.start(workload.step_seconds)
    result: SimulationResult = simulate(workload, cluster, policy, seed=seed, config=simulation)
    rng = np.random.default_rng([seed, 29])
    rewards = decision_rewards(policy, workload, cluster, reward, rng)
    chosen = []
    for k, nodes, values in rewards:
        state = policy.decisions[k].observation
        following = policy.decisions[k + 1].observation if k + 1 < len(policy.decisions) else None
        for node, value in zip(nodes, values, strict=True):
            agent.replay.add(Transition(state, int(node), float(value), following, gamma))
        chosen.append(values[0])
    losses = policy.losses
    return EpisodeStats(
        metrics=result.metrics,
        decisions=len(policy.decisions),
        mean_reward=float(np.mean(chosen)) if chosen else 0.0,
        mean_loss=float(np.mean(losses)) if losses else None,
    )
