"""The generated history, backfilled into the real Prometheus, answers PromQL as a cluster would."""

import numpy as np
import pandas as pd
import pytest
import requests

from components.contracts import read_node_metrics

pytestmark = pytest.mark.integration

CPU_QUERY = '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'
MEMORY_QUERY = "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"


def _query_range(url: str, promql: str, start: pd.Timestamp, end: pd.Timestamp, step: str):
    response = requests.get(
        f"{url}/api/v1/query_range",
        params={"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": step},
        timeout=60,
    )
    response.raise_for_status()
    series = {}
    for result in response.json()["data"]["result"]:
        node = result["metric"]["instance"].removesuffix(":9100")
        stamps = pd.to_datetime([float(t) for t, _ in result["values"]], unit="s", utc=True)
        series[node] = pd.Series([float(v) for _, v in result["values"]], index=stamps)
    return series


def _rate_utilization(rows: pd.DataFrame, at: pd.Timestamp, window_seconds: float = 300):
    """What ``1 - rate(idle[5m])`` sees at ``at``, following Prometheus' extrapolated rate.

    Returns the interval-weighted mean utilisation of the samples after the window's first one,
    that mean as rate() reports it (it extrapolates the increase towards the window's edges, but
    only by half an interval across an edge gap), and whether the window had no gap.
    """
    window = rows[(rows["timestamp"] > at - pd.Timedelta(seconds=window_seconds))]
    window = window[window["timestamp"] <= at]
    if len(window) < 2:
        return None
    seconds = window["timestamp"].astype("int64").to_numpy() / 1e9
    weights = np.diff(seconds)
    busy = window["cpu_utilization"].to_numpy()[1:]
    mean = float(np.sum(busy * weights) / weights.sum())
    sampled = seconds[-1] - seconds[0]
    average = sampled / (len(seconds) - 1)
    extrapolated = sampled
    for edge in (seconds[0] - (at.timestamp() - window_seconds), at.timestamp() - seconds[-1]):
        extrapolated += edge if edge < 1.1 * average else average / 2
    idle_rate = (1 - mean) * extrapolated / window_seconds
    complete = len(window) == window_seconds / 30 and weights.max() == 30
    return mean, 1 - idle_rate, complete


def test_cpu_rate_over_the_backfill_gives_back_generated_utilization(served_history):
    dataset, stack = served_history
    url = stack.prometheus_url
    metrics = read_node_metrics(dataset.node_metrics)
    start = metrics["timestamp"].min() + pd.Timedelta(minutes=10, seconds=15)
    end = metrics["timestamp"].max()
    served = _query_range(url, CPU_QUERY, start, end, "5m")
    assert set(served) == set(metrics["node"])
    gaps_to_generated, gaps_to_promql = [], []
    for node, series in served.items():
        rows = metrics[metrics["node"] == node]
        for at, value in series.items():
            expected = _rate_utilization(rows, at)
            if expected is None:
                continue
            generated, promql_semantics, complete = expected
            gaps_to_promql.append(abs(value - promql_semantics))
            if complete:
                gaps_to_generated.append(abs(value - generated))
    assert len(gaps_to_generated) > 0.9 * 4 * 280
    assert max(gaps_to_generated) < 0.01, "more than 1 percentage point off the generated value"
    assert max(gaps_to_promql) < 0.01, "windows with missing scrapes do not follow rate()"


def test_memory_gauges_give_back_generated_utilization(served_history):
    dataset, stack = served_history
    url = stack.prometheus_url
    metrics = read_node_metrics(dataset.node_metrics)
    at = metrics["timestamp"].max() - pd.Timedelta(hours=3)
    served = _query_range(url, MEMORY_QUERY, at, at, "30s")
    for node, series in served.items():
        rows = metrics[(metrics["node"] == node) & (metrics["timestamp"] <= at)]
        assert series.iloc[0] == pytest.approx(rows["memory_utilization"].iloc[-1], abs=1e-6)


def test_requested_ratio_from_kube_state_metrics(served_history):
    dataset, stack = served_history
    url = stack.prometheus_url
    metrics = read_node_metrics(dataset.node_metrics)
    promql = (
        'sum by (node) (kube_pod_container_resource_requests{resource="cpu"})'
        ' / on (node) kube_node_status_allocatable{resource="cpu"}'
    )
    at = metrics["timestamp"].max() - pd.Timedelta(hours=2, seconds=1)
    response = requests.get(
        f"{url}/api/v1/query", params={"query": promql, "time": at.timestamp()}, timeout=30
    ).json()
    served = {r["metric"]["node"]: float(r["value"][1]) for r in response["data"]["result"]}
    assert set(served) == set(metrics["node"])
    for node, value in served.items():
        rows = metrics[(metrics["node"] == node) & (metrics["timestamp"] <= at)]
        assert value == pytest.approx(rows["cpu_requested_ratio"].iloc[-1], abs=0.02)
