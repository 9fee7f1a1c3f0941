"""The extender's node inventory: each known node's allocatable, indexed for fast lookups.

With ``nodeCacheCapable: true`` kube-scheduler sends only node names, so the allocatable comes
from here: loaded from a nodes table (``components.contracts``) and updated from the Node
objects of ``nodeCacheCapable: false`` requests. A name it does not know (a node added by a
scale-up) is looked up once through ``read_node`` (the Kubernetes API, when configured); a node
it cannot learn is logged once and stays unknown (position -1), never an error. Reads are
lock-free: every update swaps in a new immutable :class:`InventoryView`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from scheduler_client.api import NodeAllocatable, parse_node

log = logging.getLogger("scheduler_client.inventory")

POSITIONS_MEMO_SIZE = 8
RELEARN_SECONDS = 60.0

NodeReader = Callable[[str], NodeAllocatable | None]
"""Reads one node's allocatable by name (e.g. from the Kubernetes API); None: no such node."""


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


def index_positions(index: dict[str, int], names: Sequence[str]) -> np.ndarray:
    """``index[name]`` for each of ``names``, -1 for a name it lacks."""
    return np.fromiter(map(index.get, names, repeat(-1)), np.int64, len(names))


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
        """Inventory positions of ``names`` (-1 for a node the inventory does not know)."""
        return memoized_positions(
            self._positions, names, lambda names: index_positions(self.index, names)
        )

    def node(self, name: str) -> NodeAllocatable:
        i = self.index[name]
        return NodeAllocatable(
            name, float(self.cpu_cores[i]), int(self.memory_bytes[i]), int(self.gpus[i])
        )


def api_node_reader(api: Any, timeout_seconds: float = 2.0) -> NodeReader:
    """A :data:`NodeReader` over a ``kubernetes`` ``CoreV1Api``: ``GET /api/v1/nodes/{name}``,
    the Node read as kube-scheduler's extender API reads it (:func:`parse_node`)."""
    from kubernetes.client import ApiException

    def read_node(name: str) -> NodeAllocatable | None:
        try:
            answer = api.read_node(name, _preload_content=False, _request_timeout=timeout_seconds)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return parse_node(orjson.loads(answer.data), 0)

    return read_node


class NodeInventory:
    """Thread-safe holder of the current :class:`InventoryView`."""

    def __init__(self, nodes: Iterable[NodeAllocatable] = (), read_node: NodeReader | None = None):
        self._lock = threading.Lock()
        self._view = InventoryView.build(nodes)
        self.read_node = read_node
        self._tried: dict[str, float] = {}  # monotonic time a name was last looked up

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
        rows = index_positions(view.index, names)
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

    def learn(self, names: Sequence[str]) -> InventoryView:
        """The view after looking up the names it does not know through ``read_node``; a node it
        cannot learn is logged once and tried again after ``RELEARN_SECONDS``."""
        now = time.monotonic()
        tried = self._tried
        missing = [
            name
            for name in dict.fromkeys(names)
            if name not in self._view.index and now - tried.get(name, -math.inf) >= RELEARN_SECONDS
        ]
        learned = []
        for name in missing:
            node, why = None, "no Kubernetes API configured (--kubeconfig, or in a pod)"
            if self.read_node is not None:
                try:
                    node = self.read_node(name)
                    why = "the Kubernetes API has no such node"
                except Exception as error:  # the API is down: the node is scored neutrally
                    why = f"reading it from the Kubernetes API failed: {type(error).__name__}"
            if node is not None:
                learned.append(node)
            elif name not in tried:
                log.warning(
                    "node not in the inventory: scored neutrally until its allocatable is known",
                    extra={"fields": {"node": name, "why": why}},
                )
            tried[name] = now
        self.update(learned)
        return self._view

    @classmethod
    def from_nodes_table(
        cls, path: str | os.PathLike, read_node: NodeReader | None = None
    ) -> NodeInventory:
        """Load a nodes table (``node``, ``cpu_cores``, ``memory_bytes``, ``gpus``)."""
        from components.contracts import read_nodes_table

        table = read_nodes_table(path)
        gpus = table["gpus"] if "gpus" in table.columns else [0] * len(table)
        rows = zip(table["node"], table["cpu_cores"], table["memory_bytes"], gpus, strict=True)
        return cls(
            [
                NodeAllocatable(str(n), float(cpu), int(memory), int(gpu))
                for n, cpu, memory, gpu in rows
            ],
            read_node,
        )
