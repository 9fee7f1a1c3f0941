"""Experience replay for decision episodes whose clusters differ in size (padded per batch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Observation:
    """One placement decision as the network sees it.

    Attributes:
        nodes: (n, node_features) float32.
        pod: (pod_features,) float32.
        feasible: (n,) bool, the nodes the pod may go to.
    """

    nodes: np.ndarray
    pod: np.ndarray
    feasible: np.ndarray


@dataclass(frozen=True)
class Transition:
    """(s, a, r, s') with the discount to apply to s' (0 when the episode ended)."""

    state: Observation
    action: int
    reward: float
    next_state: Observation | None
    discount: float


@dataclass(frozen=True)
class Batch:
    """Padded tensors for a sample of transitions (``valid`` marks real nodes)."""

    nodes: torch.Tensor
    pod: torch.Tensor
    feasible: torch.Tensor
    valid: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_nodes: torch.Tensor
    next_pod: torch.Tensor
    next_feasible: torch.Tensor
    next_valid: torch.Tensor


def collate(observations: list[Observation]) -> tuple[torch.Tensor, ...]:
    """Pad observations to the largest cluster: (nodes, pod, feasible, valid) tensors."""
    width = max(len(o.feasible) for o in observations)
    features = observations[0].nodes.shape[1]
    nodes = np.zeros((len(observations), width, features), dtype=np.float32)
    feasible = np.zeros((len(observations), width), dtype=bool)
    valid = np.zeros((len(observations), width), dtype=bool)
    for row, observation in enumerate(observations):
        n = len(observation.feasible)
        nodes[row, :n] = observation.nodes
        feasible[row, :n] = observation.feasible
        valid[row, :n] = True
    pod = np.stack([o.pod for o in observations]).astype(np.float32)
    return (
        torch.from_numpy(nodes),
        torch.from_numpy(pod),
        torch.from_numpy(feasible),
        torch.from_numpy(valid),
    )


class ReplayBuffer:
    """A fixed-capacity ring of transitions, sampled uniformly with its own seeded RNG."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._items: list[Transition] = []
        self._next = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, transition: Transition) -> None:
        if len(self._items) < self.capacity:
            self._items.append(transition)
        else:
            self._items[self._next] = transition
        self._next = (self._next + 1) % self.capacity

    def sample(self, size: int) -> Batch:
        """``size`` transitions drawn uniformly with replacement, padded into a :class:`Batch`."""
        if not self._items:
            raise ValueError("cannot sample from an empty replay buffer")
        picks = [self._items[i] for i in self._rng.integers(0, len(self._items), size)]
        nodes, pod, feasible, valid = collate([t.state for t in picks])
        placeholder = picks[0].state
        next_states = [t.next_state if t.next_state is not None else placeholder for t in picks]
        next_nodes, next_pod, next_feasible, next_valid = collate(next_states)
        ended = np.array([t.next_state is None for t in picks])
        discount = np.array([0.0 if e else t.discount for t, e in zip(picks, ended, strict=True)])
        return Batch(
            nodes=nodes,
            pod=pod,
            feasible=feasible,
            valid=valid,
            action=torch.tensor([t.action for t in picks], dtype=torch.int64),
            reward=torch.tensor([t.reward for t in picks], dtype=torch.float32),
            discount=torch.tensor(discount, dtype=torch.float32),
            next_nodes=next_nodes,
            next_pod=next_pod,
            next_feasible=next_feasible,
            next_valid=next_valid,
        )
