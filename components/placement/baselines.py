"""The baseline placement policies, each a published scoring rule behind the policy interface.

* ``random``: uniform over feasible nodes.
* ``kube-default``: the default kube-scheduler profile's resource scores, NodeResourcesFit
  LeastAllocated + NodeResourcesBalancedAllocation (:mod:`components.placement.kube_scores`).
* ``least-allocated``: LeastAllocated alone; ``most-allocated``: MostAllocated (bin packing).
* ``trimaran-tlp``: Trimaran TargetLoadPacking (kubernetes-sigs/scheduler-plugins
  ``pkg/trimaran/targetloadpacking``): predicted CPU % ``U`` = 100 x (node's average use over the
  window + the pod's predicted use + predicted use of pods placed since the last measurement) /
  capacity, the pod's predicted use being its CPU limit, else request x 1.5, else 1 core; score
  ``round((100 - T) x U / T + T)`` for ``U <= T``, ``round(T x (100 - U) / (100 - T))`` for
  ``T < U <= 100``, 0 above 100; target ``T`` = 40.
* ``trimaran-lvrb``: Trimaran LoadVariationRiskBalancing (``pkg/trimaran/
  loadvariationriskbalancing``): per resource ``mu = clip((avg use + request) / capacity)``,
  ``sigma = clip(margin x clip(std / capacity) ** (1 / sensitivity))``, ``risk = (mu + sigma) /
  2``, score ``(1 - risk) x 100``; the node's score is ``round(min(cpu, memory))``. Margin 1,
  sensitivity 1.
* ``greedy-predictive``: the node whose predicted P90 load after placing the pod is furthest
  below the overload thresholds: ``-max(cpu_p90' / 0.9, memory_p90' / 0.95)``, where ``cpu_p90'``
  is the forecast P90 CPU (``state.forecast_cpu_p90`` when a forecaster is plugged into the
  simulator, else the P90 of the node's recent use) plus the requests of pods placed since the
  last measurement plus the pod's request, over capacity.
"""

from __future__ import annotations

import numpy as np

from components.placement import kube_scores
from components.placement.policy import BasePolicy, ClusterState, PodSpec, register_policy

TRIMARAN_DEFAULT_REQUEST_MILLI_CPU = 1000
TRIMARAN_REQUESTS_MULTIPLIER = 1.5


def _go_round(values: np.ndarray | float) -> np.ndarray:
    """Go's math.Round: half away from zero."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


@register_policy("random")
class RandomPolicy(BasePolicy):
    """Uniform over feasible nodes (seeded)."""

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        return self.rng.random(state.n_nodes)


def kube_default_node_scores(pod: PodSpec, state: ClusterState) -> np.ndarray:
    """Every node's LeastAllocated + BalancedAllocation score for ``pod`` (float64)."""
    return kube_scores.kube_default_scores(
        state.cpu_capacity,
        state.memory_capacity,
        state.cpu_requested,
        state.memory_requested,
        state.cpu_requested_nonzero,
        state.memory_requested_nonzero,
        pod.cpu_request_cores,
        pod.memory_request_bytes,
    ).astype(np.float64)


@register_policy("kube-default")
class KubeDefaultPolicy(BasePolicy):
    """LeastAllocated + BalancedAllocation, as the default kube-scheduler profile scores."""

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        return kube_default_node_scores(pod, state)


class _NodeResourcesFitPolicy(BasePolicy):
    """A NodeResourcesFit scoring strategy (``strategy``, from :mod:`kube_scores`) on the
    nodes' non-zero requests."""

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        return self.strategy(
            state.cpu_capacity,
            state.memory_capacity,
            state.cpu_requested_nonzero,
            state.memory_requested_nonzero,
            pod.cpu_request_cores,
            pod.memory_request_bytes,
        ).astype(np.float64)


@register_policy("least-allocated")
class LeastAllocatedPolicy(_NodeResourcesFitPolicy):
    """NodeResourcesFit LeastAllocated alone."""

    strategy = staticmethod(kube_scores.least_allocated_scores)


@register_policy("most-allocated")
class MostAllocatedPolicy(_NodeResourcesFitPolicy):
    """NodeResourcesFit MostAllocated: bin packing on requests."""

    strategy = staticmethod(kube_scores.most_allocated_scores)


def trimaran_predicted_milli_cpu(pod: PodSpec, multiplier: float = TRIMARAN_REQUESTS_MULTIPLIER):
    """TargetLoadPacking's PredictUtilisation: limit, else round(request x 1.5), else 1000m."""
    if pod.cpu_limit_cores is not None:
        return float(kube_scores.milli_cpu(pod.cpu_limit_cores))
    if pod.cpu_request_cores > 0:
        return float(_go_round(kube_scores.milli_cpu(pod.cpu_request_cores) * multiplier))
    return float(TRIMARAN_DEFAULT_REQUEST_MILLI_CPU)


def target_load_packing_scores(
    capacity_milli_cpu: np.ndarray,
    node_used_milli_cpu: np.ndarray,
    pod_predicted_milli_cpu: float,
    missing_milli_cpu: np.ndarray | float = 0.0,
    target_percent: float = 40.0,
) -> np.ndarray:
    """TargetLoadPacking's score per node (0..100, as float), from its published formula."""
    capacity = np.asarray(capacity_milli_cpu, dtype=np.float64)
    total = np.asarray(node_used_milli_cpu, dtype=np.float64) + pod_predicted_milli_cpu
    total = total + missing_milli_cpu
    predicted = np.where(capacity > 0, 100 * total / np.where(capacity > 0, capacity, 1), 0.0)
    below = _go_round((100 - target_percent) * predicted / target_percent + target_percent)
    above = _go_round(target_percent * (100 - predicted) / (100 - target_percent))
    scores = np.where(predicted > target_percent, above, below)
    return np.where(predicted > 100, 0.0, scores)


def load_variation_risk_scores(
    capacity: np.ndarray,
    used_average: np.ndarray,
    used_std: np.ndarray,
    request: float,
    margin: float = 1.0,
    sensitivity: float = 1.0,
) -> np.ndarray:
    """LoadVariationRiskBalancing's per-resource score ``(1 - risk) x 100`` (float, unrounded)."""
    capacity = np.asarray(capacity, dtype=np.float64)
    safe = np.where(capacity > 0, capacity, 1.0)
    average = np.clip(used_average, 0, capacity)
    std = np.clip(used_std, 0, capacity)
    mu = np.clip((average + max(request, 0.0)) / safe, 0, 1)
    sigma = np.clip(std / safe, 0, 1)
    if sensitivity >= 0:
        sigma = sigma ** (1 / sensitivity) if sensitivity > 0 else np.zeros_like(sigma)
    sigma = np.clip(sigma * margin, 0, 1)
    risk = (mu + sigma) / 2
    return np.where(capacity > 0, (1 - risk) * 100, 0.0)


@register_policy("trimaran-tlp")
class TargetLoadPackingPolicy(BasePolicy):
    """Trimaran TargetLoadPacking on the window's average CPU use (target 40 %)."""

    def __init__(self, target_percent: float = 40.0, multiplier: float = 1.5) -> None:
        super().__init__()
        self.target_percent = target_percent
        self.multiplier = multiplier

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._missing_for: tuple[ClusterState, int] | None = None

    def _missing_milli_cpu(self, state: ClusterState) -> np.ndarray:
        """Predicted use of pods placed since the last measurement, added up incrementally."""
        cached = getattr(self, "_missing_for", None)
        recent = state.placed_since_observed
        fresh = cached is None or cached[0] is not state or cached[1] != state.observations
        if fresh or self._counted > len(recent):
            self._missing_for = (state, state.observations)
            self._missing, self._counted = np.zeros(state.n_nodes), 0
        for placed, node in recent[self._counted :]:
            self._missing[node] += trimaran_predicted_milli_cpu(placed, self.multiplier)
        self._counted = len(recent)
        return self._missing

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        return target_load_packing_scores(
            state.cpu_capacity * 1000,
            state.cpu_usage_mean * 1000,
            trimaran_predicted_milli_cpu(pod, self.multiplier),
            self._missing_milli_cpu(state),
            self.target_percent,
        )


@register_policy("trimaran-lvrb")
class LoadVariationRiskBalancingPolicy(BasePolicy):
    """Trimaran LoadVariationRiskBalancing on the window's mean and std of use."""

    def __init__(self, margin: float = 1.0, sensitivity: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.sensitivity = sensitivity

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        cpu = load_variation_risk_scores(
            state.cpu_capacity,
            state.cpu_usage_mean,
            state.cpu_usage_std,
            pod.cpu_request_cores,
            self.margin,
            self.sensitivity,
        )
        memory = load_variation_risk_scores(
            state.memory_capacity,
            state.memory_usage_mean,
            state.memory_usage_std,
            pod.memory_request_bytes,
            self.margin,
            self.sensitivity,
        )
        return _go_round(np.minimum(cpu, memory))


def window_p90_forecast(state: ClusterState) -> np.ndarray:
    """The oracle-free default forecast: P90 of each node's CPU use over the history window."""
    if len(state.cpu_usage_history) == 0:
        return state.cpu_usage.copy()
    return np.percentile(state.cpu_usage_history, 90, axis=0)


@register_policy("greedy-predictive")
class GreedyPredictivePolicy(BasePolicy):
    """Lowest predicted P90 load after placement, relative to the overload thresholds."""

    def __init__(self, cpu_threshold: float = 0.90, memory_threshold: float = 0.95) -> None:
        super().__init__()
        self.cpu_threshold = cpu_threshold
        self.memory_threshold = memory_threshold

    def _window_p90(self, state: ClusterState) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_p90_for", None)
        if cached is None or cached[0] is not state or cached[1] != state.observations:
            if len(state.memory_usage_history):
                memory = np.percentile(state.memory_usage_history, 90, axis=0)
            else:
                memory = state.memory_usage.copy()
            self._p90_for = (state, state.observations)
            self._p90 = (window_p90_forecast(state), memory)
        return self._p90

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._p90_for = None

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        window_cpu, memory = self._window_p90(state)
        forecast = state.forecast_cpu_p90 if state.forecast_cpu_p90 is not None else window_cpu
        cpu_after = forecast + state.cpu_requested_since_observed + pod.nonzero_cpu_cores
        memory_after = memory + state.memory_requested_since_observed + pod.nonzero_memory_bytes
        return -np.maximum(
            cpu_after / state.cpu_capacity / self.cpu_threshold,
            memory_after / state.memory_capacity / self.memory_threshold,
        )
