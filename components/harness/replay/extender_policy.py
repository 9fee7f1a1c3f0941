"""A placement policy that asks a running scheduler extender, over HTTP, where each pod goes.

For every pod the simulator schedules, :class:`ExtenderPolicy` does what kube-scheduler does
with an extender configured ``nodeCacheCapable: true``: ``POST <prefix>/filter`` with the pod
(a ``v1.Pod`` whose container requests are the workload's) and the candidate ``NodeNames``, then
``POST <prefix>/prioritize`` with the nodes that passed. The best-scored node that passed wins
(ties broken by the simulator's seeded RNG). Each call is timed on the client side.

When a call fails (connection refused, time-out, HTTP error, an ``Error`` answer) the pod is
scored with kube-scheduler's own LeastAllocated + BalancedAllocation, as kube-scheduler does
with an ``ignorable`` extender, and the decision is counted as not decided over HTTP.

At the end of every simulated step (``observe``) the live cluster state is recorded as node
metrics; every ``snapshot_every`` steps a :class:`~.snapshot.SnapshotWriter`
writes the node state into the Feast online store the extender reads, and before the next pod is
scored the policy waits (bounded) until the extender has re-read it (:class:`SnapshotSync`, from
its refresh count).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import requests

from components.errors import MlschedError
from components.harness.replay.prometheus import PREFIX, scrape_counters, total
from components.harness.replay.snapshot import SnapshotWriter
from components.placement.baselines import kube_default_node_scores
from components.placement.policy import ClusterState, PodSpec, StepFeedback
from scheduler_client.api import GPU_RESOURCE
from scheduler_client.client import ExtenderClient, make_pod

REPLAY_NAMESPACE = "replay"
FILTERED_OUT = -1.0
REFRESHES = f"{PREFIX}_prediction_refreshes_total"


def pod_manifest(pod: PodSpec, namespace: str = REPLAY_NAMESPACE) -> dict:
    """The ``v1.Pod`` kube-scheduler would send for ``pod``: one container whose requests (and
    CPU limit) are the workload's; no requests at all for a BestEffort pod. Its ``generateName``
    is the name up to its last dash (``burst0-03``: ``burst0-``), standing for the ReplicaSet the
    traces do not name, so that the extender knows the replicas of one workload."""
    millicores = int(round(pod.cpu_request_cores * 1000))
    memory = int(round(pod.memory_request_bytes))
    manifest = make_pod(
        pod.pod,
        cpu=f"{millicores}m" if millicores > 0 else None,
        memory=str(memory) if memory > 0 else None,
        gpus=int(pod.gpus),
        namespace=namespace,
    )
    prefix, dash, _ = pod.pod.rpartition("-")
    if dash:
        manifest["metadata"]["generateName"] = f"{prefix}-"
    resources = manifest["spec"]["containers"][0]["resources"]
    limits: dict[str, str] = {}
    if pod.cpu_limit_cores is not None and pod.cpu_limit_cores > 0:
        limits["cpu"] = f"{int(round(pod.cpu_limit_cores * 1000))}m"
    if pod.gpus:
        limits[GPU_RESOURCE] = str(int(pod.gpus))
    if limits:
        resources["limits"] = limits
    return manifest


@dataclass
class PodDecision:
    """One pod's trip through the extender (one row of the decision log)."""

    pod: str
    step: int
    candidates: int
    passed: int = 0
    filtered_out: int = 0
    top_nodes: tuple[str, ...] = ()
    top_score: float | None = None
    filter_ms: float | None = None
    prioritize_ms: float | None = None
    over_http: bool = False
    error: str | None = None


class SnapshotSync:
    """Waits until the extender has re-read the node state written last.

    :meth:`mark`, right after a write, reads the extender's count of background refreshes
    (``mlsched_extender_prediction_refreshes_total`` on ``/metrics``); :meth:`wait` returns once
    two more have finished: refreshes run one at a time, so the second began after the mark,
    hence after the write, and read the new state. At most ``timeout_seconds`` per wait; after a
    time-out the next wait looks only once (an extender that is down does not cost a time-out
    per snapshot) until a wait succeeds again.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 5.0,
        poll_seconds: float = 0.02,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.session = session or requests.Session()
        self.waits: list[float] = []
        self.timeouts = 0
        self._missed = False

    def refreshes(self) -> float | None:
        """The extender's finished background refreshes, or None when it does not answer."""
        try:
            counters = scrape_counters(self.base_url, session=self.session, timeout_seconds=2)
        except MlschedError:
            return None
        return total(counters, REFRESHES)

    def mark(self) -> float | None:
        """Call right after writing the node state; hand the result to :meth:`wait`."""
        return self.refreshes()

    def wait(self, mark: float | None) -> bool:
        """True once the extender finished a refresh that began after ``mark`` was taken."""
        began = time.monotonic()
        limit = self.poll_seconds if self._missed or mark is None else self.timeout_seconds
        while True:
            count = None if mark is None else self.refreshes()
            now = time.monotonic()
            if count is not None and count >= mark + 2:
                self.waits.append(now - began)
                self._missed = False
                return True
            if now - began >= limit:
                self.waits.append(now - began)
                self.timeouts += 1
                self._missed = True
                return False
            time.sleep(self.poll_seconds)


@dataclass
class ReplayCounters:
    """What the policy counted over a run."""

    decisions: list[PodDecision] = field(default_factory=list)
    filter_ms: list[float] = field(default_factory=list)
    prioritize_ms: list[float] = field(default_factory=list)
    http_errors: int = 0
    all_filtered_out: int = 0


class ExtenderPolicy:
    """Scores a pod's candidate nodes with a running extender's filter and prioritize verbs.

    Args:
        client: the extender's client (URL, prefix, token, time-out).
        start: the time of the simulator's step 0 (to stamp node metrics).
        step_seconds: the simulator's step.
        snapshot: writes the node state the extender reads into the Feast online store; None
            leaves the extender's node state alone.
        snapshot_every: simulated steps between node state writes.
        sync: waits for the extender to re-read each write before the next pod is scored;
            None does not wait.
    """

    name = "extender"

    def __init__(
        self,
        client: ExtenderClient,
        *,
        start: pd.Timestamp,
        step_seconds: int,
        snapshot: SnapshotWriter | None = None,
        snapshot_every: int = 15,
        sync: SnapshotSync | None = None,
    ):
        if snapshot_every < 1:
            raise MlschedError(f"snapshot_every must be at least 1, got {snapshot_every}")
        self.client = client
        self.start = pd.Timestamp(start)
        self.step_seconds = int(step_seconds)
        self.snapshot = snapshot
        self.snapshot_every = int(snapshot_every)
        self.sync = sync
        self.counters = ReplayCounters()
        self._awaiting = False
        self._mark: float | None = None

    def reset(self, seed: int) -> None:
        self.counters = ReplayCounters()
        self._awaiting = False
        if self.snapshot is not None:
            self.snapshot.recorder.clear()

    def _timed(self, call, *args) -> tuple[object, float]:
        began = time.perf_counter()
        result = call(*args)
        return result, (time.perf_counter() - began) * 1000.0

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        if self._awaiting and self.sync is not None:
            self.sync.wait(self._mark)
            self._awaiting = False
        positions = np.flatnonzero(feasible)
        names = [state.nodes[i] for i in positions]
        decision = PodDecision(pod=pod.pod, step=state.step, candidates=len(names))
        self.counters.decisions.append(decision)
        manifest = pod_manifest(pod)
        try:
            result, decision.filter_ms = self._timed(self.client.filter, manifest, names)
            self.counters.filter_ms.append(decision.filter_ms)
            passed = [str(n) for n in (result.get("NodeNames") or [])]
            decision.passed = len(passed)
            decision.filtered_out = len(names) - len(passed)
            if not passed:
                self.counters.all_filtered_out += 1
                raise MlschedError(
                    f"the extender's filter passed none of {len(names)} candidate nodes"
                )
            priorities, decision.prioritize_ms = self._timed(
                self.client.prioritize, manifest, passed
            )
            self.counters.prioritize_ms.append(decision.prioritize_ms)
        except MlschedError as error:
            self.counters.http_errors += 1
            decision.error = str(error)
            return kube_default_node_scores(pod, state)
        index = {name: i for i, name in enumerate(state.nodes)}
        scores = np.full(state.n_nodes, FILTERED_OUT)
        for name in passed:
            if name in index:
                scores[index[name]] = float(priorities.get(name, 0))
        best = max(priorities.get(name, 0) for name in passed)
        decision.top_score = float(best)
        decision.top_nodes = tuple(n for n in passed if priorities.get(n, 0) == best)
        decision.over_http = True
        return scores

    def observe(self, feedback: StepFeedback, state: ClusterState) -> None:
        if self.snapshot is None:
            return
        at = self.start + pd.Timedelta(seconds=feedback.step * self.step_seconds)
        # The extender must see what a live cluster's metrics show (the simulator's observation
        # lag applied), as the in-process policies beside it do, not the step's true use.
        if feedback.observed_cpu_utilization is not None:
            self.snapshot.recorder.record(
                at,
                feedback.observed_cpu_utilization,
                feedback.observed_memory_utilization,
                state,
            )
        if (feedback.step + 1) % self.snapshot_every == 0 and len(self.snapshot.recorder):
            self.snapshot.write(at)
            if self.sync is not None:
                self._mark = self.sync.mark()
                self._awaiting = True
