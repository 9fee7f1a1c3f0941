"""Pods in flight: the pods the extender expects on each node before the node's metrics show them.

Between a placement and the first scrape that sees the pod running, a node's metrics still show
it without the pod, so every replica of a burst would see the same coolest node (herding).
kube-scheduler counts its just-assumed pods at once; this ledger does the same for the extender's
load view: each entry holds a pod's requests and its estimated use (requests, or limits where
nothing is requested, scaled per resource) on the node it went to, and the extender adds both to
that node until the node's metrics are newer than the placement plus a margin, or the entry's
time to live runs out.

Sources, most trusted first (:data:`SOURCE_TRUST`): ``bind`` (kube-scheduler's bind verb names
the final node), ``watch`` (a pod watch saw it bound), ``prioritize`` (the extender's own top
choice, tentative). A pod seen again replaces its own entry; a less trusted source never moves
an entry a more trusted one wrote; a deleted pod is forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from components.errors import MlschedError
from components.placement.profiles import cpu_use_guess
from scheduler_client.api import PodRequest

SOURCE_TRUST = {"prioritize": 0, "watch": 1, "bind": 2}
REMEMBERED_PODS = 10_000
"""How many recently scheduled pods' requests are kept for a bind that names only the pod."""


@dataclass(frozen=True)
class InflightPod:
    """One pod the extender expects on ``node`` (times in the clock's seconds)."""

    key: str
    namespace: str
    name: str
    node: str
    cpu_cores: float
    memory_bytes: float
    gpus: int
    cpu_request_cores: float
    memory_request_bytes: float
    placed_at: float
    source: str
    owner: str = ""
    cpu_use_guess: float = 0.0


@dataclass(frozen=True)
class InflightLoad:
    """Per-node sums over the ledger, aligned on the nodes asked for: estimated use
    (``cpu_cores``, ``memory_bytes``), requests (``cpu_request_cores``,
    ``memory_request_bytes``, ``gpus``), the pods (``pods``), those of the scored pod's owner
    (``same_owner``) and the placement prior's guess of their CPU use (``cpu_use_guess``,
    :func:`components.placement.profiles.cpu_use_guess`)."""

    cpu_cores: np.ndarray
    memory_bytes: np.ndarray
    cpu_request_cores: np.ndarray
    memory_request_bytes: np.ndarray
    gpus: np.ndarray
    same_owner: np.ndarray | None = None
    pods: np.ndarray | None = None
    cpu_use_guess: np.ndarray | None = None


class InflightLedger:
    """The pods in flight, safe to use from the request path and a watch thread at once.

    Args:
        cpu_scale, memory_scale: estimated use = request x scale, per resource.
        margin_seconds: an entry stays until its node's metrics are newer than placed_at plus
            this (scrape, feature and refresh lag: the pod's use shows only after it).
        ttl_seconds: an entry goes after this long whatever the metrics say (or when the clock
            is this much behind its placement).
        clock: seconds on the same scale as the node metrics' timestamps (Unix time; the
            simulated time in a replay).
    """

    def __init__(
        self,
        *,
        cpu_scale: float = 1.0,
        memory_scale: float = 1.0,
        margin_seconds: float = 30.0,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        if min(cpu_scale, memory_scale) < 0:
            raise MlschedError("in-flight scales must not be negative")
        if margin_seconds < 0 or ttl_seconds <= 0:
            raise MlschedError("in-flight margin must be >= 0 and the TTL positive")
        self.cpu_scale, self.memory_scale = float(cpu_scale), float(memory_scale)
        self.margin_seconds, self.ttl_seconds = float(margin_seconds), float(ttl_seconds)
        self.clock = clock
        self._entries: dict[str, InflightPod] = {}
        self._recent: OrderedDict[str, PodRequest] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[InflightPod]:
        return list(self._entries.values())

    def remember(self, pod: PodRequest) -> None:
        """Keep a pod's requests for a later :meth:`bind`, which names only the pod."""
        with self._lock:
            self._recent[pod.key] = pod
            self._recent.move_to_end(pod.key)
            while len(self._recent) > REMEMBERED_PODS:
                self._recent.popitem(last=False)

    def record(
        self, pod: PodRequest, node: str, source: str, placed_at: float | None = None
    ) -> InflightPod | None:
        """Expect ``pod`` on ``node`` (replacing its own entry); None when a more trusted source
        already placed it or the placement is older than the TTL."""
        trust = SOURCE_TRUST[source]
        at = self.clock() if placed_at is None else float(placed_at)
        if at + self.ttl_seconds <= self.clock():
            return None
        entry = InflightPod(
            pod.key,
            pod.namespace,
            pod.name,
            node,
            pod.cpu_cores * self.cpu_scale,
            pod.memory_bytes * self.memory_scale,
            pod.gpus,
            pod.cpu_cores,
            float(pod.memory_bytes),
            at,
            source,
            pod.owner,
            cpu_use_guess(pod.cpu_cores, None),
        )
        with self._lock:
            previous = self._entries.get(pod.key)
            if previous is not None and SOURCE_TRUST[previous.source] > trust:
                return None
            self._entries[pod.key] = entry
        return entry

    def bind(self, key: str, node: str) -> InflightPod | None:
        """kube-scheduler bound pod ``key`` to ``node``: its entry moves there (None when the
        pod's requests are unknown: never seen by filter or prioritize)."""
        with self._lock:
            pod = self._recent.get(key)
        if pod is None:
            return None
        return self.record(pod, node, "bind")

    def forget(self, key: str) -> None:
        """The pod is gone (deleted, finished, or its binding failed)."""
        with self._lock:
            self._entries.pop(key, None)

    def load(
        self,
        nodes: Sequence[str],
        metrics_at: Mapping[str, float],
        owner: str = "",
        exclude: str = "",
    ) -> InflightLoad | None:
        """The ledger's sums on ``nodes`` (None when nothing is in flight there; pods of
        ``owner`` counted apart, none when it is empty; the pod ``exclude``, the one being
        scheduled again, left out: it is not on its earlier node), after dropping
        the entries past their TTL and those whose node's metrics (``metrics_at``: node -> time
        of its latest features) are newer than the placement plus the margin."""
        if not self._entries:
            return None
        now = self.clock()
        totals: dict[str, list[float]] = {}
        with self._lock:
            for key, entry in list(self._entries.items()):
                seen_at = metrics_at.get(entry.node, math.nan)
                # a clock gone back by more than the TTL (a replay started again) also ends it
                if (
                    abs(now - entry.placed_at) >= self.ttl_seconds
                    or seen_at > entry.placed_at + self.margin_seconds
                ):
                    del self._entries[key]
                    continue
                if key == exclude:
                    continue
                sums = totals.setdefault(entry.node, [0.0] * 8)
                sums[0] += entry.cpu_cores
                sums[1] += entry.memory_bytes
                sums[2] += entry.cpu_request_cores
                sums[3] += entry.memory_request_bytes
                sums[4] += entry.gpus
                sums[5] += bool(owner) and entry.owner == owner
                sums[6] += 1
                sums[7] += entry.cpu_use_guess
        if not totals:
            return None
        zero = (0.0,) * 8
        columns = np.array([totals.get(name, zero) for name in nodes], dtype=np.float64)
        columns = columns.reshape(len(nodes), 8).T
        return InflightLoad(
            *columns[:4],
            gpus=columns[4].astype(np.int64),
            same_owner=columns[5],
            pods=columns[6],
            cpu_use_guess=columns[7],
        )
