"""The node feature set: the one definition of every feature's name, group and meaning.

The feature computation (:mod:`components.features.engineering`) and the Feast repository
(``feature_repo/``) both build from this module, so the features a model is trained on and the
features it is served are the same list, in the same order, with the same names. Nothing here
imports Feast.

Conventions:
    * A feature at time ``t`` uses only node-metric rows at or before ``t`` (strictly causal).
    * A window ``w`` covers ``(t - w, t]`` on the scrape grid; missing scrapes are skipped, so
      window statistics are over the samples present (NaN when none is).
    * Lags read the sample at the last grid step at or before ``t - lag`` (NaN when that scrape is
      missing); they do not fill in from neighbouring samples.
    * Standard deviations are population deviations (``ddof=0``); quantiles interpolate linearly.
    * Slopes are least-squares slopes over the window, in utilisation per hour.
    * Cluster statistics at ``t`` are over the nodes that reported at ``t``.
    * Every feature is a float32 column; "not defined" is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION

FEATURE_SET_VERSION = 1
FEATURE_SERVICE_NAME = f"node_features_v{FEATURE_SET_VERSION}"

# Optional numeric columns of the node-metrics contract that some features use (NaN when absent).
POD_COUNT = "pod_count"
CPU_REQUESTED_RATIO = "cpu_requested_ratio"
MEMORY_REQUESTED_RATIO = "memory_requested_ratio"
NETWORK_RECEIVE = "network_receive_bytes_per_second"
EXTRA_COLUMNS = (POD_COUNT, CPU_REQUESTED_RATIO, MEMORY_REQUESTED_RATIO, NETWORK_RECEIVE)

# The resources with the full set of per-resource features: prefix -> node-metrics column.
RESOURCES: dict[str, str] = {"cpu": CPU_UTILIZATION, "memory": MEMORY_UTILIZATION}
REQUESTED_RATIO: dict[str, str] = {"cpu": CPU_REQUESTED_RATIO, "memory": MEMORY_REQUESTED_RATIO}

# Window name -> seconds.
WINDOWS: dict[str, int] = {
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "3h": 10_800,
    "6h": 21_600,
    "24h": 86_400,
}
# The 30 min and 3 h windows and the 10 min .. 4 h lags give the forecaster the lags and windows
# that real 5-minute traces reward (issue 16: 1, 2, 3, 6, 12, 24, 48 steps; 3 .. 288 steps).
MEAN_WINDOWS = ("5m", "15m", "30m", "1h", "3h", "6h", "24h")
STD_WINDOWS = ("5m", "15m", "30m", "1h", "3h", "6h", "24h")
MIN_WINDOWS = ("1h", "6h", "24h")
MAX_WINDOWS = ("5m", "15m", "1h", "6h", "24h")
# (name, quantile, window)
QUANTILES: tuple[tuple[str, float, str], ...] = (
    ("p50", 0.50, "1h"),
    ("p95", 0.95, "1h"),
    ("p95", 0.95, "24h"),
)
# EWMA name -> half-life in seconds.
EWMA_HALF_LIVES: dict[str, int] = {"5m": 300, "1h": 3600}
SLOPE_WINDOWS = ("15m", "1h", "6h")
ZSCORE_WINDOWS = ("1h", "24h")
# Lag feature suffix -> seconds back.
LAGS: dict[str, int] = {
    "lag_5m": 300,
    "lag_10m": 600,
    "lag_15m": 900,
    "lag_30m": 1800,
    "lag_1h": 3600,
    "lag_2h": 7200,
    "lag_4h": 14_400,
    "same_time_yesterday": 86_400,
    "same_time_last_week": 7 * 86_400,
}
# Seasonal leads: how the node's level moved over the next ``lead`` after the same time on earlier
# days. Daily and weekly jobs repeat, so what followed this time of day before is what real traces
# reward beyond the recent past (Bitbrains Rnd CPU, 15 min: reference skill 0.105 -> 0.128 with
# them). Kind -> the days back it averages over.
SEASONAL_LEADS: dict[str, int] = {"5m": 300, "15m": 900, "30m": 1800}
SEASONAL_DAY_SECONDS = 86_400
SEASONAL_KINDS: dict[str, tuple[int, ...]] = {
    "yesterday": (1,),
    "last_week": (7,),
    "daily_7d": (1, 2, 3, 4, 5, 6, 7),
}
HEALTH_WINDOWS = ("1h", "24h")
CLUSTER_MEAN_WINDOW = "1h"
REPORTING_WINDOW = "24h"
NETWORK_MEAN_WINDOW = "1h"
POD_CHANGE_LAG = "1h"

# How much history the online path needs so that its features equal the offline ones: the
# longest lag plus one step (every window is shorter; the 1 h EWMA has decayed to nothing).
ONLINE_LOOKBACK_SECONDS = (
    max(*LAGS.values(), *(max(days) * SEASONAL_DAY_SECONDS for days in SEASONAL_KINDS.values()))
    + 3600
)

# Feature view groups: per-resource history, the node's state (time, requests, pods, network,
# scrape health), and the node relative to the cluster.
# How old a node's latest features may be and still be served or joined into a training example
# (the Feast feature views' TTL): a node silent for longer has no state.
FEATURE_TTL_SECONDS = 15 * 60

GROUPS = ("cpu", "memory", "state", "cluster")


@dataclass(frozen=True)
class FeatureDefinition:
    """One feature: its column name, the Feast feature view group it belongs to, its meaning."""

    name: str
    group: str
    description: str


def _resource_features(prefix: str, column: str) -> list[FeatureDefinition]:
    def f(name: str, description: str) -> FeatureDefinition:
        return FeatureDefinition(f"{prefix}_{name}", prefix, description)

    out = [FeatureDefinition(column, prefix, f"{prefix} utilisation at t (fraction of capacity)")]
    out += [f(f"mean_{w}", f"mean {prefix} utilisation over the last {w}") for w in MEAN_WINDOWS]
    out += [f(f"std_{w}", f"standard deviation of {prefix} over the last {w}") for w in STD_WINDOWS]
    out += [f(f"min_{w}", f"minimum {prefix} over the last {w}") for w in MIN_WINDOWS]
    out += [f(f"max_{w}", f"maximum {prefix} over the last {w}") for w in MAX_WINDOWS]
    out += [
        f(f"{n}_{w}", f"{q:.0%} quantile of {prefix} over the last {w}") for n, q, w in QUANTILES
    ]
    out += [
        f(f"ewma_{h}", f"exponentially weighted mean of {prefix}, half-life {h}")
        for h in EWMA_HALF_LIVES
    ]
    out += [
        f(f"slope_{w}", f"least-squares slope of {prefix} over the last {w}, per hour")
        for w in SLOPE_WINDOWS
    ]
    out += [
        f(f"zscore_{w}", f"({prefix} - mean_{w}) / std_{w}; NaN when std_{w} is 0")
        for w in ZSCORE_WINDOWS
    ]
    out += [f(lag, f"{prefix} at the scrape {lag.replace('_', ' ')} ago") for lag in LAGS]
    for lead in SEASONAL_LEADS:
        for kind, days in SEASONAL_KINDS.items():
            which = (
                f"the mean over D = {days[0]}..{days[-1]} d"
                if len(days) > 1
                else f"D = {days[0]} d"
            )
            out.append(
                f(
                    seasonal_lead_suffix(lead, kind),
                    f"{prefix} at t - D + {lead} minus {prefix} at t - D, {which} "
                    "(the days where both scrapes are present): what followed this time before",
                )
            )
    return out


def seasonal_lead_suffix(lead: str, kind: str) -> str:
    """The per-resource suffix of a seasonal-lead feature, e.g. ``change_next_15m_yesterday``."""
    return f"change_next_{lead}_{kind}"


def _cluster_features(prefix: str, column: str) -> list[FeatureDefinition]:
    w = CLUSTER_MEAN_WINDOW
    return [
        FeatureDefinition(
            f"{prefix}_minus_cluster_mean",
            "cluster",
            f"{column} minus the mean over the nodes reporting at t",
        ),
        FeatureDefinition(
            f"{prefix}_mean_{w}_minus_cluster",
            "cluster",
            f"{prefix}_mean_{w} minus its mean over the nodes reporting at t",
        ),
        FeatureDefinition(
            f"{prefix}_cluster_rank",
            "cluster",
            f"percentile rank of {column} among the nodes reporting at t (0 least loaded, "
            "1 most, ties averaged, 0.5 when alone)",
        ),
    ]


def _state_features() -> list[FeatureDefinition]:
    def f(name: str, description: str) -> FeatureDefinition:
        return FeatureDefinition(name, "state", description)

    out = [
        f("hour_of_day_sin", "sine of the UTC time of day (period 24 h)"),
        f("hour_of_day_cos", "cosine of the UTC time of day (period 24 h)"),
        f("day_of_week_sin", "sine of the UTC time of week (period 7 days, Monday 00:00 = 0)"),
        f("day_of_week_cos", "cosine of the UTC time of week (period 7 days)"),
        f("is_weekend", "1 on Saturday and Sunday (UTC), else 0"),
        f("cpu_to_memory_ratio", "cpu_utilization / memory_utilization (NaN when memory is 0)"),
        f("headroom", "1 - max(cpu_utilization, memory_utilization)"),
    ]
    for prefix, column in RESOURCES.items():
        requested = REQUESTED_RATIO[prefix]
        out.append(
            f(f"{prefix}_usage_to_request", f"{column} / {requested} (NaN when nothing requested)")
        )
        out.append(f(f"{prefix}_request_slack", f"{requested} - {column}"))
    out += [
        f(POD_COUNT, "pods on the node at t"),
        f(
            f"{POD_COUNT}_change_{POD_CHANGE_LAG}",
            f"pod_count minus pod_count {POD_CHANGE_LAG} ago",
        ),
        f(CPU_REQUESTED_RATIO, "sum of CPU requests / allocatable CPU at t"),
        f(MEMORY_REQUESTED_RATIO, "sum of memory requests / allocatable memory at t"),
        f(NETWORK_RECEIVE, "bytes received per second at t"),
        f(
            f"network_receive_mean_{NETWORK_MEAN_WINDOW}",
            f"mean bytes received per second over the last {NETWORK_MEAN_WINDOW}",
        ),
    ]
    for w in HEALTH_WINDOWS:
        out.append(
            f(
                f"missing_ratio_{w}",
                f"fraction of expected scrapes missing over the last {w} (counted from the "
                "node's first sample)",
            )
        )
    for w in HEALTH_WINDOWS:
        out.append(
            f(f"flaps_{w}", f"times the node came back after a missed scrape in the last {w}")
        )
    out.append(f("scrape_gap_seconds", "seconds since the node's previous sample"))
    return out


def _cluster_context() -> list[FeatureDefinition]:
    return [
        FeatureDefinition(
            "cluster_cpu_mean", "cluster", "mean cpu_utilization over the nodes reporting at t"
        ),
        FeatureDefinition(
            "cluster_memory_mean",
            "cluster",
            "mean memory_utilization over the nodes reporting at t",
        ),
        FeatureDefinition(
            "cluster_reporting_ratio",
            "cluster",
            f"nodes reporting at t / nodes that reported in the last {REPORTING_WINDOW}",
        ),
    ]


def _build() -> tuple[FeatureDefinition, ...]:
    features: list[FeatureDefinition] = []
    for prefix, column in RESOURCES.items():
        features += _resource_features(prefix, column)
    features += _state_features()
    for prefix, column in RESOURCES.items():
        features += _cluster_features(prefix, column)
    features += _cluster_context()
    names = [feature.name for feature in features]
    if len(set(names)) != len(names):  # pragma: no cover - a programming error
        raise AssertionError(f"duplicate feature names in {names}")
    return tuple(features)


FEATURES: tuple[FeatureDefinition, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(feature.name for feature in FEATURES if feature.group == group) for group in GROUPS
}
FEATURE_DESCRIPTIONS: dict[str, str] = {feature.name: feature.description for feature in FEATURES}


def feature_view_name(group: str) -> str:
    """The Feast feature view that holds one group of features, e.g. ``node_cpu_features``."""
    return f"node_{group}_features"
