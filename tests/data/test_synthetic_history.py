"""Statistics of the synthetic cluster history: it must look like a real cluster's."""

import json

import numpy as np
import pandas as pd
import pytest

from components.contracts import read_workload_trace, validate_node_metrics
from components.generate.ceiling import latent_state_ceiling
from components.generate.cluster import make_nodes
from components.generate.history import (
    HistoryConfig,
    generate_node,
    latent_factors,
    node_metrics_frame,
)
from components.generate.realism import realism_statistics
from tests.data.conftest import SMALL


def _generate(config: HistoryConfig) -> pd.DataFrame:
    factors = latent_factors(config)
    nodes = make_nodes(config.nodes, config.seed)
    return node_metrics_frame(config, [generate_node(config, n, factors) for n in nodes])


def test_every_file_meets_its_contract(small_dataset, small_metrics, small_nodes, small_labels):
    manifest = json.loads(small_dataset.manifest.read_text())
    assert manifest["node_metrics_rows"] == len(small_metrics)
    assert set(small_metrics["node"]) == set(small_nodes["node"])
    assert set(small_labels) == set(small_nodes["node"])
    assert small_metrics["timestamp"].min() >= pd.Timestamp(manifest["start"])
    assert small_metrics["timestamp"].max() < pd.Timestamp(manifest["end"])
    assert {"pod_count", "cpu_requested_ratio", "memory_requested_ratio"} <= set(small_metrics)


def test_same_seed_same_data_other_seed_other_data():
    config = HistoryConfig(nodes=3, days=1, step_seconds=60, seed=3, end_epoch=SMALL.end_epoch)
    first, again = _generate(config), _generate(config)
    pd.testing.assert_frame_equal(first, again)
    other = _generate(HistoryConfig(**{**config.__dict__, "seed": 4}))
    assert not np.allclose(first["cpu_utilization"][:1000], other["cpu_utilization"][:1000])


def test_a_nodes_series_does_not_depend_on_cluster_size():
    small = _generate(HistoryConfig(nodes=3, days=1, step_seconds=60, end_epoch=SMALL.end_epoch))
    large = _generate(HistoryConfig(nodes=30, days=1, step_seconds=60, end_epoch=SMALL.end_epoch))
    assert validate_node_metrics(small) is not None
    assert len(large["node"].unique()) == 30


def test_nodes_are_heterogeneous(small_nodes):
    assert small_nodes["cpu_cores"].nunique() >= 3
    assert small_nodes["memory_bytes"].nunique() >= 3
    assert (small_nodes["gpus"] > 0).any()


def _hourly(metrics: pd.DataFrame, node: str) -> pd.Series:
    series = metrics[metrics["node"] == node].set_index("timestamp")["cpu_utilization"]
    return series.resample("1h").mean().interpolate()


def test_web_nodes_follow_a_daily_and_weekly_cycle(small_metrics):
    roles = dict(
        zip(
            [n.name for n in make_nodes(SMALL.nodes, SMALL.seed)],
            [n.role for n in make_nodes(SMALL.nodes, SMALL.seed)],
            strict=True,
        )
    )
    web = [n for n, role in roles.items() if role == "web"]
    assert web
    for node in web:
        hourly = _hourly(small_metrics, node)
        assert hourly.autocorr(lag=24) > 0.6, node
        assert abs(hourly.autocorr(lag=12)) < hourly.autocorr(lag=24), node
        by_hour = hourly.groupby(hourly.index.hour).mean()
        assert by_hour.loc[12:17].mean() - by_hour.loc[0:5].mean() > 0.15, node
        weekday = hourly[hourly.index.dayofweek < 5].mean()
        weekend = hourly[hourly.index.dayofweek >= 5].mean()
        assert weekend < weekday - 0.03, node


def test_nodes_move_together(small_metrics):
    hourly = small_metrics.pivot_table(
        index=small_metrics["timestamp"].dt.floor("1h"), columns="node", values="cpu_utilization"
    )
    daily_profile = hourly.groupby(hourly.index.hour).transform("mean")
    residuals = hourly - daily_profile
    correlations = residuals.corr().to_numpy()[np.triu_indices(hourly.shape[1], 1)]
    assert np.nanmean(correlations) > 0.15


def test_missing_scrapes_are_rare_but_present(small_metrics):
    expected = SMALL.nodes * SMALL.axis.steps
    missing = 1 - len(small_metrics) / expected
    assert 0.001 < missing < 0.05


def test_anomalies_show_where_the_labels_say(small_dataset, small_metrics):
    events = pd.read_csv(small_dataset.anomaly_events, parse_dates=["start", "end"])
    assert set(events["kind"]) == {
        "cpu_saturation",
        "memory_leak",
        "flatline",
        "noisy_neighbour",
        "flapping",
    }
    step = pd.Timedelta(seconds=SMALL.step_seconds)
    for event in events.itertuples():
        node = small_metrics[small_metrics["node"] == event.node]
        inside = node[(node["timestamp"] >= event.start) & (node["timestamp"] <= event.end)]
        before = node[
            (node["timestamp"] < event.start) & (node["timestamp"] >= event.start - 6 * 60 * step)
        ]
        cpu, memory = inside["cpu_utilization"], inside["memory_utilization"]
        expected_rows = (event.end - event.start) / step + 1
        if event.kind == "cpu_saturation":
            assert cpu.median() > 0.9, event
        elif event.kind == "memory_leak":
            assert memory.iloc[-5:].mean() > memory.iloc[:5].mean() + 0.1, event
        elif event.kind == "flatline":
            assert cpu.nunique() == 1 and memory.nunique() == 1, event
        elif event.kind == "noisy_neighbour":
            assert cpu.max() - cpu.median() > 0.3, event
            assert (cpu.max() - cpu.median()) > 2 * (before["cpu_utilization"].std() + 0.05)
        elif event.kind == "flapping":
            assert len(inside) < 0.8 * expected_rows, event
            assert cpu.median() < 0.1, event


def test_workload_requests_differ_from_real_use(small_dataset, small_nodes):
    trace = read_workload_trace(small_dataset.workload)
    per_pod = trace.groupby("pod").agg(
        request=("cpu_request_cores", "first"), p95=("cpu_cores", lambda s: s.quantile(0.95))
    )
    requested = per_pod[per_pod["request"] > 0]
    ratio = requested["request"] / requested["p95"]
    assert ratio.quantile(0.1) < 0.8 and ratio.quantile(0.9) > 1.8
    assert (per_pod["request"] == 0).mean() > 0.01, "some BestEffort pods"
    assert trace["gpus"].max() <= small_nodes["gpus"].max()
    mean_requests = trace.groupby("timestamp")["cpu_request_cores"].sum().mean()
    assert 0.4 < mean_requests / small_nodes["cpu_cores"].sum() < 0.9


def test_load_has_the_statistics_of_real_traces(small_metrics):
    """Ranges measured on the shared real traces (tests/benchmarks/bench_realism.py)."""
    stats = realism_statistics(small_metrics, "cpu_utilization")
    assert 0.8 < stats["acf_5m"] < 0.99  # persistent, yet not smooth
    assert stats["acf_1h"] > 0.3
    assert 0.05 < stats["between_days_share_median"] < 0.7  # level shifts
    assert stats["node_mean_p10"] < 0.08 < stats["node_mean_p90"]  # nearly idle and busy nodes
    assert stats["node_mean_p90"] > 2 * stats["node_mean_p10"]
    assert 5 <= stats["burst_minutes_median"] <= 60


def test_cpu_is_as_forecastable_as_a_real_cluster():
    """The latent-state oracle (an upper bound for any forecaster) leaves skill to find, unlike
    white noise, and is bounded, unlike a clean cycle."""
    ceiling = latent_state_ceiling(
        HistoryConfig(nodes=6, days=4, seed=1, end_epoch=SMALL.end_epoch)
    )
    assert 0.1 < ceiling["15m"] < 0.4


@pytest.mark.parametrize("n", [1, 2, 3, 19, 20, 21, 288, 2881])
def test_pod_request_quantile_is_numpys_to_the_last_bit(n):
    from components.generate.workload import p95

    rng = np.random.default_rng(n)
    for _ in range(50):
        values = rng.lognormal(0, 1, n) * rng.uniform(1e-3, 1e9)
        assert p95(values) == np.quantile(values, 0.95)
