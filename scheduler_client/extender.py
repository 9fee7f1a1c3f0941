"""The extender's decisions: ML filter and priorities, with the fallback, shadow mode and rollout.

Filter (ML): a candidate fails when the anomaly detector flags it, or when its predicted P90 CPU
or memory utilisation over the pod's horizon, plus the pod's requests as a share of the node's
allocatable, goes above the thresholds (default 90 % CPU, 95 % memory: the simulator's overload
line). Only candidates with a usable prediction (:meth:`CacheState.usable`: a finite prediction
from features at most ``max_feature_age_seconds`` old) are judged; the others pass. If every
candidate would fail, all pass (ML never makes a pod unschedulable on its own) and it is logged.

Prioritize (ML): per candidate, in 0..1 each,
``load = 1 - max(cpu_after / cpu_threshold, memory_after / memory_threshold)`` (clipped),
``health = 1 - anomaly_score`` (clipped), and ``q`` = the pod scorer's (DQN's) Q-values min-max
scaled over the candidates; the weighted mean becomes the 0..10 score. Without a pod scorer, or
when its call fails, the weights of ``load`` and ``health`` are used alone. Candidates without a
usable prediction get their fallback score mapped onto this call's ML scores
(:func:`scheduler_client.resilience.fallback_on_ml_scale`).

Fallback (any reason: predictions missing or stale, no candidate with a usable prediction, pod
outside the rollout share, shadow mode): filter passes every candidate (kube-scheduler's own
filters already ran) and prioritize returns kube-scheduler's LeastAllocated + BalancedAllocation
scores scaled to 0..10 (:func:`scheduler_client.resilience.fallback_priorities`). A candidate
the inventory does not know (and cannot learn, :meth:`NodeInventory.learn`) scores neutrally.

Spread (every mode): a node loses ``spread_weight`` points of its final 0..10 score per pod in
flight there with the scored pod's owner (:func:`scheduler_client.api.pod_owner`), as
kube-scheduler's PodTopologySpread spreads a ReplicaSet's replicas: without it a burst of
replicas sees the same best node until that node's score drops by the replicas' load, which on
a large node takes several of them.

GPUs (every mode, like spread; ``nvidia.com/gpu`` in the pod's requests and the Node's
allocatable, from the inventory, the request's Node objects or the Kubernetes API): the filter
fails a node without enough whole GPUs free for the pod (allocatable less the GPUs of its bound
pods, where the node state carries ``gpus_requested``, and of the pods in flight there); a node
whose allocatable is too small is unresolvable, one that is full for now may be freed by
preemption. Then the filter applies the simulator's GPU rules to the nodes left
(``components/placement/gpu.py``, :func:`~components.placement.gpu.gpu_preferred_nodes`, the
rules every policy was evaluated under): a GPU pod goes to the GPU nodes that already run GPU
pods when one fits (packing, so untouched GPU nodes keep all their GPUs), any other pod to nodes
without GPUs when one is left; like the simulator's, the rules narrow the candidates and never
empty them, so GPU nodes take other pods only when nothing else passes. Prioritize, for calls
whose candidates did not come through this filter, gives the candidates the rules would drop 0
and the others at least 1.

The pod's horizon is the annotation ``ml-scheduler.io/horizon`` (e.g. ``30m``): the P90 is the
max over the forecast horizons up to the first one that covers it; without the annotation, over
all horizons.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.errors import MlschedError
from components.placement.gpu import gpu_preferred_nodes
from scheduler_client.api import (
    GPU_RESOURCE,
    MAX_EXTENDER_PRIORITY,
    MIN_EXTENDER_PRIORITY,
    BindingArgs,
    ExtenderArgs,
    PodRequest,
    filter_result,
    host_priority_list,
)
from scheduler_client.inventory import NodeInventory
from scheduler_client.ledger import InflightLedger, InflightLoad
from scheduler_client.metrics import ExtenderMetrics
from scheduler_client.predictions import CacheState, PodScorer, PredictionCache
from scheduler_client.predictions import feature_times as snapshot_feature_times
from scheduler_client.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    RolloutPolicy,
    fallback_on_ml_scale,
    fallback_priorities,
)

log = logging.getLogger("scheduler_client.extender")


@dataclass(frozen=True)
class ScoringConfig:
    """Thresholds and weights of the ML decisions, and how old predictions and each node's
    features may be (``max_feature_age_seconds`` None: any age)."""

    cpu_threshold: float = 0.90
    memory_threshold: float = 0.95
    load_weight: float = 0.5
    anomaly_weight: float = 0.2
    q_weight: float = 0.3
    max_staleness_seconds: float = 60.0
    max_feature_age_seconds: float | None = 120.0
    spread_weight: float = 3.0

    def __post_init__(self) -> None:
        if not (self.cpu_threshold > 0 and self.memory_threshold > 0):
            raise MlschedError("load thresholds must be positive")
        if min(self.load_weight, self.anomaly_weight, self.q_weight, self.spread_weight) < 0:
            raise MlschedError("score weights must not be negative")
        if self.load_weight + self.anomaly_weight <= 0:
            raise MlschedError("the load and anomaly weights must not both be 0")
        if self.max_staleness_seconds <= 0:
            raise MlschedError("max staleness must be positive")
        if self.max_feature_age_seconds is not None and self.max_feature_age_seconds <= 0:
            raise MlschedError("max feature age must be positive (None: any age)")


def feature_times(snapshot: pd.DataFrame | None) -> dict[str, float]:
    """Node -> Unix time of its features in a node state snapshot (nodes without one left out)."""
    if snapshot is None:
        return {}
    times = snapshot_feature_times(snapshot).tolist()
    return {str(node): at for node, at in zip(snapshot.index, times, strict=True) if at == at}


@dataclass
class Decision:
    """An answer and how it was reached (for logs and metrics)."""

    body: Any
    mode: str
    reason: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class _Candidates:
    pod: PodRequest
    names: list[str]
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray
    state: CacheState
    rows: np.ndarray
    usable: np.ndarray
    gpus: np.ndarray
    gpus_used: np.ndarray
    inflight: InflightLoad | None = None

    @property
    def gpu_known(self) -> np.ndarray:
        """Candidates whose allocatable is known (GPUs included)."""
        return np.isfinite(self.cpu_cores)

    def gpu_fits(self) -> np.ndarray:
        """Per candidate: enough whole GPUs free for the pod, or allocatable unknown."""
        if self.pod.gpus <= 0:
            return np.ones(len(self.names), dtype=bool)
        return ~self.gpu_known | (self.gpus - self.gpus_used >= self.pod.gpus)


class Extender:
    """Answers filter and prioritize calls from the :class:`PredictionCache`.

    Args:
        inventory: allocatable of the nodes (updated from Node objects when they are sent).
        cache: the background-refreshed predictions.
        pod_scorer: the DQN (or any placement policy) scorer; its calls go through
            ``scorer_breaker``.
        ledger: the pods in flight, added to their nodes' load and requests (None: not counted).
        binder: ``(namespace, name, uid, node)`` -> binds through the Kubernetes API (the bind
            verb; None: the verb answers an error).
        clock: epoch seconds, against which each node's feature time is aged.
    """

    def __init__(
        self,
        inventory: NodeInventory,
        cache: PredictionCache,
        *,
        config: ScoringConfig | None = None,
        rollout: RolloutPolicy | None = None,
        pod_scorer: PodScorer | None = None,
        scorer_breaker: CircuitBreaker | None = None,
        metrics: ExtenderMetrics | None = None,
        ledger: InflightLedger | None = None,
        binder: Callable[[str, str, str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.inventory = inventory
        self.cache = cache
        self.config = config or ScoringConfig()
        self.rollout = rollout or RolloutPolicy()
        self.pod_scorer = pod_scorer
        self.scorer_breaker = scorer_breaker or CircuitBreaker("pod_scorer")
        self.metrics = metrics or ExtenderMetrics()
        self.ledger = ledger
        self.binder = binder
        self.clock = clock
        self._metrics_times: tuple[CacheState | None, dict[str, float], float | None] = (
            None,
            {},
            None,
        )

    # ----------------------------------------------------------------------- shared steps

    def _candidates(self, args: ExtenderArgs) -> _Candidates:
        if args.node_cache_capable:
            view = self.inventory.view
            positions = view.positions(args.node_names)
            if len(positions) and positions.min() < 0:  # new nodes (a scale-up)
                view = self.inventory.learn(args.node_names)
                positions = view.positions(args.node_names)
            known, take = positions >= 0, np.maximum(positions, 0)
            cpu = np.where(known, view.cpu_cores[take] if len(view.names) else 0.0, np.nan)
            memory = np.where(known, view.memory_bytes[take] if len(view.names) else 0.0, np.nan)
            gpus = np.where(known, view.gpus[take] if len(view.names) else 0, 0)
        else:
            assert args.allocatable is not None
            self.inventory.update(args.allocatable)
            cpu = np.array([a.cpu_cores for a in args.allocatable], dtype=np.float64)
            memory = np.array([a.memory_bytes for a in args.allocatable], dtype=np.float64)
            gpus = np.array([a.gpus for a in args.allocatable], dtype=np.int64)
        state = self.cache.state
        inflight = None
        if self.ledger is not None:
            self.ledger.remember(args.pod)
            inflight = self.ledger.load(
                args.node_names, self._metrics_at(state), args.pod.owner, exclude=args.pod.key
            )
        rows = state.positions(args.node_names)
        usable = state.usable(rows, self.clock(), self.config.max_feature_age_seconds)
        usable &= np.isfinite(cpu)
        gpus_used = np.zeros(len(rows))
        if state.gpus_requested is not None and len(state.nodes):
            gpus_used = np.where(rows >= 0, state.gpus_requested[np.maximum(rows, 0)], 0.0)
        if inflight is not None:
            gpus_used = gpus_used + inflight.gpus
        return _Candidates(
            args.pod,
            args.node_names,
            cpu,
            memory,
            state,
            rows,
            usable,
            gpus.astype(np.int64),
            gpus_used,
            inflight,
        )

    def _metrics_at(self, state: CacheState) -> dict[str, float]:
        """Node -> Unix time of its latest features, once per refresh."""
        if self._metrics_times[0] is not state:
            times = feature_times(state.snapshot)
            self._metrics_times = (state, times, max(times.values(), default=None))
        return self._metrics_times[1]

    def features_now(self) -> float:
        """The newest feature time of the node state, else (no features yet) Unix time: the
        ledger's clock, so that placements, metrics and expiry share the data's own time axis
        (a replay in simulated time works as a live cluster does)."""
        self._metrics_at(self.cache.state)
        newest = self._metrics_times[2]
        return time.time() if newest is None else newest

    def _ml_unavailable(self, c: _Candidates) -> str | None:
        """Why ML cannot decide for these candidates, or None when it can."""
        state = c.state
        if state.predictions is None or state.has_prediction is None:
            return "no_predictions"
        age = self.cache.prediction_age_seconds()
        if age is None or age > self.config.max_staleness_seconds:
            return "stale"
        if len(c.rows) and not c.usable.any():
            aged = state.usable(c.rows, 0.0, None) & np.isfinite(c.cpu_cores)
            return "stale_features" if aged.any() else "missing_nodes"
        return None

    def _route(self, c: _Candidates) -> tuple[bool, str | None]:
        """(compute ML?, fallback reason); ML is computed in shadow mode too."""
        if not self.rollout.selects(c.pod.key):
            return False, "rollout"
        reason = self._ml_unavailable(c)
        if reason is not None:
            return False, reason
        return True, ("shadow" if self.rollout.shadow else None)

    def _loads_after(self, c: _Candidates) -> tuple[np.ndarray, np.ndarray, float | None]:
        state = c.state
        horizons = state.horizons_seconds
        column = len(horizons) - 1
        if c.pod.horizon_seconds is not None:
            column = min(int(np.searchsorted(horizons, c.pod.horizon_seconds)), column)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu_share = np.where(c.cpu_cores > 0, c.pod.cpu_cores / c.cpu_cores, np.inf)
            memory_share = np.where(c.memory_bytes > 0, c.pod.memory_bytes / c.memory_bytes, np.inf)
        cpu = state.cpu_peak[c.rows, column] + cpu_share
        memory = state.memory_peak[c.rows, column] + memory_share
        if c.inflight is not None:
            cpu = cpu + c.inflight.cpu_cores / c.cpu_cores
            memory = memory + c.inflight.memory_bytes / c.memory_bytes
        return cpu, memory, float(horizons[column])

    def _fallback_scores(self, c: _Candidates) -> np.ndarray:
        state = c.state
        found = c.rows >= 0
        take = np.where(found, c.rows, 0)
        cpu_ratio = np.where(found, state.cpu_requested_ratio[take], 0.0)
        memory_ratio = np.where(found, state.memory_requested_ratio[take], 0.0)
        if c.inflight is not None:  # like kube-scheduler's assumed pods
            cpu_ratio = cpu_ratio + c.inflight.cpu_request_cores / c.cpu_cores
            memory_ratio = memory_ratio + c.inflight.memory_request_bytes / c.memory_bytes
        return fallback_priorities(
            c.cpu_cores,
            c.memory_bytes,
            cpu_ratio,
            memory_ratio,
            c.pod.cpu_cores,
            c.pod.memory_bytes,
        )

    def _spread(self, c: _Candidates, scores: np.ndarray) -> np.ndarray:
        """``scores`` less ``spread_weight`` per pod in flight with the pod's owner, in 0..10."""
        if c.inflight is None or c.inflight.same_owner is None or not self.config.spread_weight:
            return scores
        spread = np.rint(scores - self.config.spread_weight * c.inflight.same_owner)
        return np.clip(spread, MIN_EXTENDER_PRIORITY, MAX_EXTENDER_PRIORITY).astype(np.int64)

    def _gpu_dropped(self, c: _Candidates, kept: np.ndarray) -> np.ndarray:
        """The candidates among ``kept`` the GPU rules drop (those whose allocatable is known
        only; the rules never drop them all)."""
        if c.pod.gpus <= 0 and not c.gpus.any():
            return np.zeros(len(c.names), dtype=bool)
        known = kept & c.gpu_known
        return known & ~gpu_preferred_nodes(c.pod.gpus, c.gpus, c.gpus_used, known)

    def _gpu_preferred(self, c: _Candidates, scores: np.ndarray) -> np.ndarray:
        """``scores`` with the candidates the GPU rules drop at 0 and the others at least 1."""
        dropped = self._gpu_dropped(c, c.gpu_fits())
        if not dropped.any():
            return scores
        return np.where(dropped, 0, np.maximum(scores, 1)).astype(np.int64)

    def _gpu_narrowed(self, c: _Candidates, passed: list[int]) -> tuple[list[int], dict[str, str]]:
        """The GPU rules on the nodes that passed: (those kept, reasons for those dropped)."""
        kept = np.zeros(len(c.names), dtype=bool)
        kept[passed] = True
        dropped = self._gpu_dropped(c, kept)
        if not dropped.any():
            return passed, {}
        why = (
            "ml-scheduler: GPU pods pack onto GPU nodes already running GPU pods; this one "
            "stays whole"
            if c.pod.gpus > 0
            else "ml-scheduler: GPU node kept for GPU pods (nodes without GPUs are left)"
        )
        return np.flatnonzero(kept & ~dropped).tolist(), {
            c.names[i]: why for i in np.flatnonzero(dropped)
        }

    def _gpu_filter(self, c: _Candidates) -> tuple[np.ndarray, dict[str, str], dict[str, str]]:
        """(fits, failed, unresolvable): the whole-GPU filter; a node whose allocatable has too
        few GPUs is unresolvable, one whose GPUs are taken (bound or in flight) fails."""
        fits = c.gpu_fits()
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for i in np.flatnonzero(~fits):
            allocatable, used = int(c.gpus[i]), int(round(c.gpus_used[i]))
            asked = f"ml-scheduler: pod requests {c.pod.gpus} {GPU_RESOURCE}"
            if allocatable < c.pod.gpus:
                unresolvable[c.names[i]] = f"{asked}, node has {allocatable} allocatable"
            else:
                free = max(allocatable - used, 0)
                failed[c.names[i]] = (
                    f"{asked}, node has {free} free ({allocatable} allocatable, {used} requested "
                    "by bound pods or in flight)"
                )
        return fits, failed, unresolvable

    def _count(self, verb: str, mode: str, reason: str | None) -> None:
        self.metrics.decisions.labels(verb, mode).inc()
        if reason is not None:
            self.metrics.fallbacks.labels(verb, reason).inc()

    def _count_nodes(self, verb: str, c: _Candidates, ml: bool) -> int:
        """Count the candidates and those decided by fallback; returns the latter."""
        fallback = len(c.names) - int(c.usable.sum()) if ml else len(c.names)
        self.metrics.candidate_nodes.labels(verb).inc(len(c.names))
        self.metrics.fallback_nodes.labels(verb).inc(fallback)
        return fallback

    # ----------------------------------------------------------------------- filter

    def _ml_filter(self, c: _Candidates, fits: np.ndarray) -> tuple[list[int], dict[str, str]]:
        """The ML filter over the candidates that ``fits`` (the GPU filter's survivors)."""
        cpu, memory, horizon = self._loads_after(c)
        anomalous = c.state.anomalous[c.rows]
        over_cpu = cpu > self.config.cpu_threshold
        over_memory = memory > self.config.memory_threshold
        failing = fits & c.usable & (anomalous | over_cpu | over_memory)
        if fits.any() and (failing | ~fits).all():
            log.warning(
                "every candidate fails the ML filter; passing them all",
                extra={"fields": {"pod": c.pod.key, "nodes": int(fits.sum())}},
            )
            return np.flatnonzero(fits).tolist(), {}
        failed: dict[str, str] = {}
        window = f"{horizon / 60:g}m"
        for i in np.flatnonzero(failing):
            name = c.names[i]
            if anomalous[i]:
                score = c.state.anomaly_score[c.rows[i]]
                failed[name] = f"ml-scheduler: node flagged anomalous (score {score:.2f})"
            elif over_cpu[i]:
                failed[name] = (
                    f"ml-scheduler: predicted P90 CPU with this pod {cpu[i]:.0%} > "
                    f"{self.config.cpu_threshold:.0%} within {window}"
                )
            else:
                failed[name] = (
                    f"ml-scheduler: predicted P90 memory with this pod {memory[i]:.0%} > "
                    f"{self.config.memory_threshold:.0%} within {window}"
                )
        return np.flatnonzero(fits & ~failing).tolist(), failed

    def filter(self, args: ExtenderArgs) -> Decision:
        """Answer a filter call (an ``ExtenderFilterResult``)."""
        c = self._candidates(args)
        use_ml, reason = self._route(c)
        fits, gpu_failed, unresolvable = self._gpu_filter(c)
        fitting, narrowed = self._gpu_narrowed(c, np.flatnonzero(fits).tolist())
        without_ml = filter_result(args, fitting, {**gpu_failed, **narrowed}, unresolvable)
        gpu = {"gpu_failed": len(gpu_failed) + len(unresolvable) + len(narrowed)}
        gpu = gpu if gpu["gpu_failed"] else {}
        fallback_nodes = self._count_nodes("filter", c, use_ml and reason != "shadow")
        if not use_ml:
            self._count("filter", "fallback", reason)
            return Decision(without_ml, "fallback", reason, gpu)
        passed, failed = self._ml_filter(c, fits)
        details = {"failed": len(failed), "fallback_nodes": fallback_nodes, **gpu}
        if reason == "shadow":
            self._count("filter", "shadow", reason)
            if failed:
                self.metrics.shadow_disagreements.labels("filter").inc()
            details["ml_failed_nodes"] = dict(list(failed.items())[:20])
            return Decision(without_ml, "shadow", reason, details)
        passed, narrowed = self._gpu_narrowed(c, passed)
        self._count("filter", "ml", None)
        body = filter_result(args, passed, {**gpu_failed, **failed, **narrowed}, unresolvable)
        return Decision(body, "ml", None, details)

    # ----------------------------------------------------------------------- prioritize

    def _q_values(self, c: _Candidates) -> np.ndarray | None:
        if self.pod_scorer is None or c.state.prepared is None or self.config.q_weight == 0:
            return None
        try:
            extra = (
                {"inflight": c.inflight} if getattr(self.pod_scorer, "counts_inflight", 0) else {}
            )
            q = self.scorer_breaker.call(
                self.pod_scorer.q_values, c.pod, c.state.prepared, np.maximum(c.rows, 0), **extra
            )
            q = np.asarray(q, dtype=np.float64).reshape(-1)
            if q.shape != (len(c.rows),) or not np.isfinite(q).all():
                raise MlschedError(f"pod scorer returned {q.shape} values for {len(c.rows)} nodes")
            return q
        except CircuitOpenError:
            self.metrics.scorer_failures.inc()
            return None
        except Exception as error:
            self.metrics.scorer_failures.inc()
            log.warning(
                "pod scorer failed",
                extra={"fields": {"pod": c.pod.key, "error": f"{type(error).__name__}: {error}"}},
            )
            return None

    def _ml_scores(self, c: _Candidates) -> tuple[np.ndarray, bool]:
        cfg = self.config
        cpu, memory, _ = self._loads_after(c)
        load = np.clip(
            1.0 - np.maximum(cpu / cfg.cpu_threshold, memory / cfg.memory_threshold), 0, 1
        )
        health = 1.0 - np.clip(c.state.anomaly_score[c.rows], 0.0, 1.0)
        total = cfg.load_weight * load + cfg.anomaly_weight * health
        weight = cfg.load_weight + cfg.anomaly_weight
        q = self._q_values(c)
        if q is not None and len(q):
            judged = q[c.usable]  # the Q-values of nodes without a usable prediction mean nothing
            spread = judged.max() - judged.min()
            scaled = (q - judged.min()) / spread if spread > 0 else np.full(len(q), 0.5)
            total = total + cfg.q_weight * scaled
            weight += cfg.q_weight
        scores = total / weight * MAX_EXTENDER_PRIORITY
        if not c.usable.all():
            scores = fallback_on_ml_scale(scores, self._fallback_scores(c), c.usable)
        scores = np.rint(scores)
        return np.clip(scores, 0, MAX_EXTENDER_PRIORITY).astype(np.int64), q is not None

    def prioritize(self, args: ExtenderArgs) -> Decision:
        """Answer a prioritize call (a ``HostPriorityList``); its top node goes into the ledger
        as the pod's tentative placement."""
        decision = self._prioritize(args)
        if self.ledger is not None and decision.body:
            top = max(decision.body, key=lambda entry: entry["Score"])  # the first of the best
            self.ledger.record(args.pod, top["Host"], "prioritize")
        return decision

    def bind(self, binding: BindingArgs) -> Decision:
        """Answer a bind call (an ``ExtenderBindingResult``): bind through the Kubernetes API,
        then expect the pod on its node."""
        if self.binder is None:
            raise MlschedError("bind: no Kubernetes API configured (--bind with --kubeconfig)")
        try:
            self.binder(binding.namespace, binding.name, binding.uid, binding.node)
        except MlschedError as error:
            if self.ledger is not None:
                self.ledger.forget(binding.key)
            self.metrics.fallbacks.labels("bind", "api_error").inc()
            return Decision({"Error": str(error)}, "error", "api_error")
        if self.ledger is not None:
            self.ledger.bind(binding.key, binding.node)
        self._count("bind", "bound", None)
        return Decision({"Error": ""}, "bound", None, {"node": binding.node})

    def _prioritize(self, args: ExtenderArgs) -> Decision:
        c = self._candidates(args)
        use_ml, reason = self._route(c)
        fallback_nodes = self._count_nodes("prioritize", c, use_ml and reason != "shadow")
        if not use_ml or reason == "shadow":
            fallback = self._gpu_preferred(c, self._spread(c, self._fallback_scores(c)))
            body = host_priority_list(c.names, fallback.tolist())
            if not use_ml:
                self._count("prioritize", "fallback", reason)
                return Decision(body, "fallback", reason)
            ml, used_q = self._ml_scores(c)
            ml = self._gpu_preferred(c, self._spread(c, ml))
            self._count("prioritize", "shadow", reason)
            details = {"dqn": used_q}
            if len(c.names):
                ml_top, fallback_top = c.names[int(ml.argmax())], c.names[int(fallback.argmax())]
                details.update(ml_top=ml_top, fallback_top=fallback_top)
                if ml_top != fallback_top:
                    self.metrics.shadow_disagreements.labels("prioritize").inc()
            return Decision(body, "shadow", reason, details)
        ml, used_q = self._ml_scores(c)
        ml = self._gpu_preferred(c, self._spread(c, ml))
        self._count("prioritize", "ml", None)
        details = {"dqn": used_q, "fallback_nodes": fallback_nodes}
        if len(c.names):
            details["top"] = c.names[int(ml.argmax())]
        return Decision(host_priority_list(c.names, ml.tolist()), "ml", None, details)
