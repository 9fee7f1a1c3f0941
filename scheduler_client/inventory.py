"""The extender's node inventory: each known node's allocatable, indexed for fast lookups.

With ``nodeCacheCapable: true`` kube-scheduler sends only node names, so the allocatable comes
from here: loaded from a nodes table (``components.contracts``) and updated from the Node
objects of ``nodeCacheCapable: false`` requests. Reads are lock-free: every update swaps in a
new immutable :class:`InventoryView`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from scheduler_client.api import ExtenderRequestError, NodeAllocatable

POSITIONS_MEMO_SIZE = 8


def memoized_positions(
    memo: dict[tuple[str, ...], np.ndarray],
    names: Sequence[str],
    compute: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    """``compute(names)``, remembered in ``memo`` for the last few name lists (kube-scheduler
    sends the same candidates call after call); the arrays are read-only."""
    key = tuple(names)
    rows = memo.get(key)
    if rows is None:
        rows = compute(names)
        rows.setflags(write=False)
        if len(memo) >= POSITIONS_MEMO_SIZE:
            memo.pop(next(iter(memo), key), None)
        memo[key] = rows
    return rows


@dataclass(frozen=True)
class InventoryView:
    """An immutable inventory: ``names[i]`` has ``cpu_cores[i]``, ``memory_bytes[i]``,
    ``gpus[i]``; ``index`` maps a name to ``i``."""

    names: tuple[str, ...]
    index: dict[str, int]
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray
    gpus: np.ndarray
    _positions: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, nodes: Iterable[NodeAllocatable]) -> InventoryView:
        by_name = {node.name: node for node in nodes}
        names = tuple(by_name)
        return cls(
            names=names,
            index={name: i for i, name in enumerate(names)},
            cpu_cores=np.array([by_name[n].cpu_cores for n in names], dtype=np.float64),
            memory_bytes=np.array([by_name[n].memory_bytes for n in names], dtype=np.float64),
            gpus=np.array([by_name[n].gpus for n in names], dtype=np.int64),
        )

    def positions(self, names: Sequence[str]) -> np.ndarray:
        """Inventory positions of ``names``.

        Raises:
            ExtenderRequestError: naming the nodes the inventory does not know.
        """
        return memoized_positions(self._positions, names, self._lookup)

    def _lookup(self, names: Sequence[str]) -> np.ndarray:
        try:
            return np.array(list(map(self.index.__getitem__, names)), dtype=np.int64)
        except KeyError:
            unknown = [name for name in names if name not in self.index]
            shown = ", ".join(unknown[:5]) + (
                f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            )
            raise ExtenderRequestError(
                f"unknown node(s) {shown}: not in the extender's node inventory (load a nodes "
                "table with --nodes, or send Node objects with nodeCacheCapable: false)"
            ) from None

    def node(self, name: str) -> NodeAllocatable:
        i = self.index[name]
        return NodeAllocatable(
            name, float(self.cpu_cores[i]), int(self.memory_bytes[i]), int(self.gpus[i])
        )


class NodeInventory:
    """Thread-safe holder of the current :class:`InventoryView`."""

    def __init__(self, nodes: Iterable[NodeAllocatable] = ()):
        self._lock = threading.Lock()
        self._view = InventoryView.build(nodes)

    @property
    def view(self) -> InventoryView:
        return self._view

    def names(self) -> tuple[str, ...]:
        return self._view.names

    def update(self, nodes: Sequence[NodeAllocatable]) -> bool:
        """Add or change nodes; returns whether anything changed."""
        if not nodes:
            return False
        view = self._view
        names, cpu, memory, gpus = zip(*nodes, strict=True)
        rows = np.fromiter(map(view.index.get, names, repeat(-1)), np.int64, len(names))
        known = rows >= 0
        take = np.where(known, rows, 0)
        same = (
            (
                known
                & (view.cpu_cores[take] == cpu)
                & (view.memory_bytes[take] == memory)
                & (view.gpus[take] == gpus)
            )
            if len(view.names)
            else np.zeros(len(nodes), dtype=bool)
        )
        changed = [n for n, unchanged in zip(nodes, same.tolist(), strict=True) if not unchanged]
        if not changed:
            return False
        with self._lock:
            current = {name: self._view.node(name) for name in self._view.names}
            current.update({n.name: n for n in changed})
            self._view = InventoryView.build(current.values())
        return True

    @classmethod
    def from_nodes_table(cls, path: str | os.PathLike) -> NodeInventory:
        """Load a nodes table (``node``, ``cpu_cores``, ``memory_bytes``, ``gpus``)."""
        from components.contracts import read_nodes_table

        table = read_nodes_table(path)
        gpus = table["gpus"] if "gpus" in table.columns else [0] * len(table)
        return cls(
            NodeAllocatable(str(name), float(cpu), int(memory), int(gpu))
            for name, cpu, memory, gpu in zip(
                table["node"], table["cpu_cores"], table["memory_bytes"], gpus, strict=True
            )
        )
