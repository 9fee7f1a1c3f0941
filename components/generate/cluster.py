"""The synthetic cluster's nodes: heterogeneous machine types and the workload role each serves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GIB = 1024**3


@dataclass(frozen=True)
class MachineType:
    name: str
    cpu_cores: int
    memory_bytes: int
    gpus: int = 0


MACHINE_TYPES = {
    "general": MachineType("general", 8, 32 * GIB),
    "compute": MachineType("compute", 16, 32 * GIB),
    "memory": MachineType("memory", 8, 64 * GIB),
    "large": MachineType("large", 32, 128 * GIB),
    "gpu": MachineType("gpu", 48, 192 * GIB, gpus=4),
}

ROLE_MACHINES = {
    "web": ("general", "general", "large"),
    "service": ("memory", "memory", "general"),
    "batch": ("compute", "large"),
    "mixed": ("large", "general"),
    "gpu": ("gpu",),
}
ROLES = tuple(ROLE_MACHINES)
ROLE_SHARES = np.array([0.32, 0.24, 0.22, 0.12, 0.10])


@dataclass(frozen=True)
class SyntheticNode:
    name: str
    role: str
    machine: MachineType
    index: int


def node_name(index: int, count: int) -> str:
    width = max(2, len(str(count)))
    return f"node-{index + 1:0{width}d}"


def make_nodes(count: int, seed: int) -> list[SyntheticNode]:
    """Assign roles in the cluster's proportions (every role present from 5 nodes on) and sizes."""
    rng = np.random.default_rng([seed, 1])
    quotas = np.floor(ROLE_SHARES * count).astype(int)
    if count >= len(ROLES):
        quotas = np.maximum(quotas, 1)
    while quotas.sum() > count:
        quotas[np.argmax(quotas)] -= 1
    remainder = count - quotas.sum()
    extra = rng.choice(len(ROLES), size=remainder, p=ROLE_SHARES) if remainder else []
    roles = [ROLES[i] for i, q in enumerate(quotas) for _ in range(q)]
    roles += [ROLES[i] for i in extra]
    roles = [roles[i] for i in rng.permutation(len(roles))]
    nodes = []
    for index, role in enumerate(roles):
        choices = ROLE_MACHINES[role]
        machine = MACHINE_TYPES[choices[rng.integers(len(choices))]]
        nodes.append(SyntheticNode(node_name(index, count), role, machine, index))
    return nodes


def nodes_table(nodes: list[SyntheticNode]) -> pd.DataFrame:
    """The nodes-table contract for these nodes."""
    return pd.DataFrame(
        {
            "node": [n.name for n in nodes],
            "cpu_cores": [float(n.machine.cpu_cores) for n in nodes],
            "memory_bytes": [float(n.machine.memory_bytes) for n in nodes],
            "gpus": [n.machine.gpus for n in nodes],
        }
    )
