"""The extender's Prometheus metrics, on a registry of their own (one per server)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from scheduler_client.predictions import DRIFT_FEATURES, PredictionCache
from scheduler_client.resilience import CircuitBreaker, CircuitState

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
REFRESH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
PREFIX = "mlsched_extender"


class ExtenderMetrics:
    """Latency histogram, request and fallback counters, circuit state, prediction staleness,
    refresh outcomes and feature drift."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()

        def metric(kind, name: str, text: str, labels: tuple[str, ...] = (), **options):
            return kind(f"{PREFIX}_{name}", text, labels, registry=self.registry, **options)

        self.request_seconds = metric(
            Histogram,
            "request_duration_seconds",
            "Time to answer a filter or prioritize call, parsing included.",
            ("verb",),
            buckets=LATENCY_BUCKETS,
        )
        self.requests = metric(
            Counter, "requests", "Extender calls by verb and HTTP status code.", ("verb", "code")
        )
        self.bad_requests = metric(
            Counter,
            "bad_requests",
            "Calls refused as unusable (malformed JSON, no Pod, unknown nodes...); a filter call "
            "gets them in its Error field with HTTP 200, a prioritize call gets HTTP 400.",
            ("verb",),
        )
        self.decisions = metric(
            Counter,
            "decisions",
            "Answers by the source of the decision: ml, fallback or shadow (fallback returned, ML "
            "logged).",
            ("verb", "mode"),
        )
        self.fallbacks = metric(
            Counter,
            "fallback",
            "Answers that used the kube-scheduler fallback scores for every candidate, by reason "
            "(stale, no_predictions, stale_features, missing_nodes, rollout, shadow).",
            ("verb", "reason"),
        )
        self.candidate_nodes = metric(
            Counter, "candidate_nodes", "Candidate nodes of filter and prioritize calls.", ("verb",)
        )
        self.fallback_nodes = metric(
            Counter,
            "fallback_nodes",
            "Candidate nodes decided by the fallback (a whole-call fallback, or no usable "
            "prediction: features too old, none made, node unknown); divided by "
            "candidate_nodes, the per-node fallback rate.",
            ("verb",),
        )
        self.scorer_failures = metric(
            Counter,
            "pod_scorer_failures",
            "Pod-scorer (DQN) calls that failed or were refused by its breaker; the answer then "
            "uses the forecaster and the anomaly detector only.",
        )
        self.shadow_disagreements = metric(
            Counter,
            "shadow_disagreements",
            "Shadow-mode calls whose ML decision differed from the fallback one.",
            ("verb",),
        )
        self.circuit_state = metric(
            Gauge,
            "circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ("breaker",),
        )
        self.prediction_staleness = metric(
            Gauge,
            "prediction_staleness_seconds",
            "Seconds since the node predictions were last refreshed (+Inf before the first).",
        )
        self.snapshot_staleness = metric(
            Gauge,
            "snapshot_staleness_seconds",
            "Seconds since the node state snapshot was last read (+Inf before the first).",
        )
        self.refreshes = metric(
            Counter,
            "prediction_refreshes",
            "Background refreshes of the node predictions by outcome (ok, error).",
            ("outcome",),
        )
        self.refresh_seconds = metric(
            Histogram,
            "prediction_refresh_duration_seconds",
            "Time of one background refresh (snapshot read, predictions, scorer preparation).",
            buckets=REFRESH_BUCKETS,
        )
        self.drift = metric(
            Gauge,
            "feature_drift_psi",
            "Population stability index of a key node feature: current snapshot vs reference.",
            ("feature",),
        )
        self.anomalous_nodes = metric(
            Gauge, "anomalous_nodes", "Nodes the anomaly detector flags in the current predictions."
        )
        self.nodes = metric(Gauge, "inventory_nodes", "Nodes in the inventory.")

    def watch(self, cache: PredictionCache, breakers: list[CircuitBreaker]) -> None:
        """Tie the staleness gauges to ``cache`` and the state gauges to ``breakers``."""

        def age(value: float | None) -> float:
            return math.inf if value is None else value

        self.prediction_staleness.set_function(lambda: age(cache.prediction_age_seconds()))
        self.snapshot_staleness.set_function(lambda: age(cache.snapshot_age_seconds()))
        self.nodes.set_function(lambda: len(cache.inventory.names()))

        def anomalous() -> float:
            flags = cache.state.anomalous
            return float("nan") if flags is None else float(flags.sum())

        self.anomalous_nodes.set_function(anomalous)
        for feature in DRIFT_FEATURES:
            self.drift.labels(feature).set_function(
                lambda feature=feature: cache.state.drift_psi.get(feature, math.nan)
            )
        for breaker in breakers:
            self.circuit_state.labels(breaker.name).set_function(
                lambda breaker=breaker: float(breaker.state)
            )

        def refreshed(_cache: PredictionCache, ok: bool, seconds: float) -> None:
            self.refreshes.labels("ok" if ok else "error").inc()
            self.refresh_seconds.observe(seconds)

        cache.on_refresh = refreshed

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ExtenderMetrics", "CircuitState"]
