"""Node features against hand computations on tiny frames, and their structural guarantees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.errors import ContractError, MlschedError
from components.features import (
    FEATURE_NAMES,
    compute_node_features,
    latest_node_features,
    read_feature_table,
    write_feature_table,
)
from components.features import definitions as d
from components.features.engineering import point_in_time_join

T0 = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday
STEP = 60


def frame(rows: list[tuple], extras: dict[str, list] | None = None) -> pd.DataFrame:
    """Rows of (minute, node, cpu, memory) as a node-metrics frame."""
    out = pd.DataFrame(rows, columns=["minute", NODE, CPU_UTILIZATION, MEMORY_UTILIZATION])
    out.insert(0, TIMESTAMP, T0 + pd.to_timedelta(out.pop("minute"), unit="min"))
    for name, values in (extras or {}).items():
        out[name] = values
    return out


def at(features: pd.DataFrame, node: str, minute: float) -> pd.Series:
    stamp = T0 + pd.Timedelta(minutes=minute)
    row = features[(features[NODE] == node) & (features[TIMESTAMP] == stamp)]
    assert len(row) == 1, f"no feature row for {node} at minute {minute}"
    return row.iloc[0]


def ramp(node: str, minutes, cpu0=0.1, slope=0.01, memory=0.5) -> list[tuple]:
    return [(m, node, cpu0 + slope * m, memory) for m in minutes]


def random_metrics(seed=0, nodes=3, minutes=3 * 24 * 60, step_minutes=5, drop=0.05):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(nodes):
        for m in range(0, minutes, step_minutes):
            if rng.random() > drop:
                rows.append((m, f"n{i}", rng.uniform(0, 1), rng.uniform(0.2, 0.9)))
    extras = {
        "pod_count": rng.integers(0, 30, len(rows)).astype(float),
        "cpu_requested_ratio": rng.uniform(0, 1, len(rows)),
        "memory_requested_ratio": rng.uniform(0, 1, len(rows)),
        "network_receive_bytes_per_second": rng.uniform(0, 1e6, len(rows)),
    }
    return frame(rows, extras)


# --------------------------------------------------------------------------- the feature list


def test_feature_list_is_large_unique_and_grouped():
    assert len(FEATURE_NAMES) >= 50
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    grouped = [name for group in d.GROUPS for name in d.FEATURE_GROUPS[group]]
    assert sorted(grouped) == sorted(FEATURE_NAMES)
    assert all(d.FEATURE_DESCRIPTIONS[name] for name in FEATURE_NAMES)
    for name in ("cpu_mean_1h", "memory_slope_15m", "cpu_same_time_yesterday", "hour_of_day_sin"):
        assert name in FEATURE_NAMES
    assert d.FEATURE_SERVICE_NAME == "node_features_v1"


def test_output_columns_follow_the_definition_and_are_float32():
    features = compute_node_features(frame(ramp("a", range(10))), STEP)
    assert list(features.columns) == [TIMESTAMP, NODE, *FEATURE_NAMES]
    assert (features[list(FEATURE_NAMES)].dtypes == np.float32).all()
    assert str(features[TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert len(features) == 10


# --------------------------------------------------------------------------- hand computations


def test_rolling_window_statistics_skip_a_missing_scrape():
    minutes = [m for m in range(0, 10) if m != 7]
    cpu = {m: 0.1 + 0.01 * m + (0.2 if m == 5 else 0.0) for m in minutes}
    metrics = frame([(m, "a", cpu[m], 0.5) for m in minutes])
    row = at(compute_node_features(metrics, STEP), "a", 9)
    window_5m = [cpu[m] for m in (5, 6, 8, 9)]  # (t - 5 min, t] = minutes 5..9, 7 missing
    assert row["cpu_mean_5m"] == pytest.approx(np.mean(window_5m), rel=1e-6)
    assert row["cpu_std_5m"] == pytest.approx(np.std(window_5m), rel=1e-5)
    assert row["cpu_max_5m"] == pytest.approx(max(window_5m), rel=1e-6)
    everything = list(cpu.values())
    assert row["cpu_mean_1h"] == pytest.approx(np.mean(everything), rel=1e-6)
    assert row["cpu_max_15m"] == pytest.approx(max(everything), rel=1e-6)
    assert row["cpu_min_1h"] == pytest.approx(min(everything), rel=1e-6)
    assert row["cpu_p50_1h"] == pytest.approx(np.quantile(everything, 0.5), rel=1e-6)
    assert row["cpu_p95_1h"] == pytest.approx(np.quantile(everything, 0.95), rel=1e-6)
    mean, std = np.mean(everything), np.std(everything)
    assert row["cpu_zscore_1h"] == pytest.approx((cpu[9] - mean) / std, rel=1e-5)
    assert row["memory_std_1h"] == 0.0
    assert np.isnan(row["memory_zscore_1h"])  # constant memory: no spread to scale by


def test_window_is_half_open_on_the_left():
    metrics = frame([(0, "a", 0.9, 0.5), (5, "a", 0.1, 0.5)])
    row = at(compute_node_features(metrics, STEP), "a", 5)
    assert row["cpu_mean_5m"] == pytest.approx(0.1)  # the sample 5 min back is outside
    assert row["cpu_mean_15m"] == pytest.approx(0.5)


def test_lags_read_the_exact_scrape_and_do_not_fill_gaps():
    minutes = [m for m in range(0, 13) if m != 7]
    metrics = frame(ramp("a", minutes))
    features = compute_node_features(metrics, STEP)
    assert at(features, "a", 9)["cpu_lag_5m"] == pytest.approx(0.1 + 0.04)
    assert np.isnan(at(features, "a", 12)["cpu_lag_5m"])  # minute 7 is missing
    assert np.isnan(at(features, "a", 3)["cpu_lag_5m"])  # before the history


def test_same_time_yesterday_and_last_week():
    day, week = 24 * 60, 7 * 24 * 60
    metrics = frame(
        [
            (0, "a", 0.11, 0.21),
            (day - 1, "a", 0.5, 0.5),
            (day, "a", 0.12, 0.22),
            (week, "a", 0.13, 0.23),
            (week + day, "a", 0.14, 0.24),
        ]
    )
    features = compute_node_features(metrics, STEP)
    assert at(features, "a", day)["cpu_same_time_yesterday"] == pytest.approx(0.11)
    assert at(features, "a", day)["memory_same_time_yesterday"] == pytest.approx(0.21)
    assert at(features, "a", week)["cpu_same_time_last_week"] == pytest.approx(0.11)
    assert np.isnan(at(features, "a", week)["cpu_same_time_yesterday"])  # nothing 1 day back
    assert at(features, "a", week + day)["cpu_same_time_yesterday"] == pytest.approx(0.13)
    assert at(features, "a", week + day)["cpu_same_time_last_week"] == pytest.approx(0.12)


def test_seasonal_leads_are_what_followed_this_time_on_earlier_days():
    day = 24 * 60
    now = 8 * day
    # the change over the next 15 min: +0.10 one day back, +0.30 two days back, -0.20 a week back;
    # three days back only the later scrape exists (no change seen there)
    changes = {1: 0.10, 2: 0.30, 7: -0.20}
    rows = [(now, "a", 0.5, 0.5)]
    for back, change in changes.items():
        rows += [(now - back * day, "a", 0.4, 0.6), (now - back * day + 15, "a", 0.4 + change, 0.6)]
    rows.append((now - 3 * day + 15, "a", 0.9, 0.6))
    features = compute_node_features(frame(sorted(rows)), STEP)
    row = at(features, "a", now)
    assert row["cpu_change_next_15m_yesterday"] == pytest.approx(0.10)
    assert row["cpu_change_next_15m_last_week"] == pytest.approx(-0.20)
    assert row["cpu_change_next_15m_daily_7d"] == pytest.approx((0.10 + 0.30 - 0.20) / 3)
    assert row["memory_change_next_15m_daily_7d"] == pytest.approx(0.0)
    assert np.isnan(row["cpu_change_next_5m_yesterday"])  # no scrape 1 day - 5 min back
    first = at(features, "a", now - 7 * day)
    assert np.isnan(first["cpu_change_next_15m_daily_7d"])  # no earlier day at all


def test_relative_to_cluster_uses_the_nodes_reporting_at_t():
    metrics = frame(
        [
            (0, "a", 0.2, 0.3),
            (0, "b", 0.4, 0.3),
            (0, "c", 0.9, 0.6),
            (0, "d", 0.1, 0.1),
            (1, "a", 0.2, 0.3),
            (1, "b", 0.4, 0.3),
            (1, "c", 0.9, 0.6),  # d misses this scrape
        ]
    )
    features = compute_node_features(metrics, STEP)
    expected = {"a": (-0.3, 0.0), "b": (-0.1, 0.5), "c": (0.4, 1.0)}
    for node, (minus, rank) in expected.items():
        row = at(features, node, 1)
        assert row["cpu_minus_cluster_mean"] == pytest.approx(minus, abs=1e-6)
        assert row["cpu_cluster_rank"] == pytest.approx(rank)
        assert row["cluster_cpu_mean"] == pytest.approx(0.5)
        assert row["cluster_reporting_ratio"] == pytest.approx(3 / 4)
    # ties are averaged: a and b share the lowest memory
    assert at(features, "a", 1)["memory_cluster_rank"] == pytest.approx(0.25)
    assert at(features, "c", 1)["memory_cluster_rank"] == pytest.approx(1.0)
    assert at(features, "d", 0)["cpu_cluster_rank"] == pytest.approx(0.0)
    assert at(features, "a", 0)["cluster_reporting_ratio"] == pytest.approx(1.0)
    # the 1 h mean relative to the cluster's 1 h means at t (a: 0.2, b: 0.4, c: 0.9)
    assert at(features, "c", 1)["cpu_mean_1h_minus_cluster"] == pytest.approx(0.4, abs=1e-6)


def test_alone_in_the_cluster_ranks_in_the_middle():
    row = at(compute_node_features(frame([(0, "a", 0.3, 0.4)]), STEP), "a", 0)
    assert row["cpu_cluster_rank"] == 0.5
    assert row["cpu_minus_cluster_mean"] == 0.0


def test_ewma_decays_through_missing_scrapes_like_pandas_time_ewm():
    minutes = [m for m in range(0, 30) if m not in (10, 11, 12, 20)]
    rng = np.random.default_rng(1)
    cpu = rng.uniform(0, 1, len(minutes))
    metrics = frame([(m, "a", c, 0.5) for m, c in zip(minutes, cpu, strict=True)])
    features = compute_node_features(metrics, STEP)
    grid = pd.Series(cpu, index=minutes).reindex(range(30))
    for name, seconds in d.EWMA_HALF_LIVES.items():
        expected = grid.ewm(halflife=seconds / STEP, ignore_na=False).mean()[minutes]
        got = features[f"cpu_ewma_{name}"].to_numpy()
        np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-5)


def test_slope_of_a_ramp_is_its_rate_per_hour_despite_gaps():
    minutes = [m for m in range(0, 400) if m % 7 != 3]
    features = compute_node_features(frame(ramp("a", minutes, cpu0=0.1, slope=0.001)), STEP)
    row = at(features, "a", 399)
    for w in d.SLOPE_WINDOWS:
        assert row[f"cpu_slope_{w}"] == pytest.approx(0.06, rel=1e-4)
        assert row[f"memory_slope_{w}"] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(at(features, "a", 0)["cpu_slope_15m"])  # one sample has no slope


def test_node_health_counts_missing_scrapes_and_returns():
    present = [0, 1, 2, 5, 6, 9, 10, 11]  # gaps 3-4 and 7-8: two returns (at 5 and 9)
    features = compute_node_features(frame(ramp("a", present)), STEP)
    row = at(features, "a", 11)
    assert row["missing_ratio_1h"] == pytest.approx(4 / 12)  # counted from the first sample
    assert row["flaps_1h"] == 2
    assert row["scrape_gap_seconds"] == 60
    assert at(features, "a", 5)["scrape_gap_seconds"] == 180
    assert np.isnan(at(features, "a", 0)["scrape_gap_seconds"])
    assert at(features, "a", 0)["missing_ratio_1h"] == 0.0
    assert at(features, "a", 0)["flaps_24h"] == 0


def test_time_of_day_and_week_encodings():
    metrics = frame([(6 * 60, "a", 0.1, 0.2), (5 * 24 * 60 + 12 * 60, "a", 0.1, 0.2)])
    features = compute_node_features(metrics, STEP)
    monday = at(features, "a", 6 * 60)  # Monday 06:00 UTC
    assert monday["hour_of_day_sin"] == pytest.approx(1.0)
    assert monday["hour_of_day_cos"] == pytest.approx(0.0, abs=1e-6)
    assert monday["day_of_week_sin"] == pytest.approx(np.sin(2 * np.pi * 0.25 / 7), rel=1e-5)
    assert monday["is_weekend"] == 0
    saturday = at(features, "a", 5 * 24 * 60 + 12 * 60)  # Saturday 12:00 UTC
    assert saturday["is_weekend"] == 1
    assert saturday["hour_of_day_cos"] == pytest.approx(-1.0)
    assert saturday["day_of_week_cos"] == pytest.approx(np.cos(2 * np.pi * 5.5 / 7), rel=1e-5)


def test_cross_resource_ratios_and_extras():
    metrics = frame(
        [(0, "a", 0.2, 0.4), (30, "a", 0.3, 0.6), (60, "a", 0.5, 0.0)],
        {
            "pod_count": [3, 5, 9],
            "cpu_requested_ratio": [0.4, 0.6, 0.0],
            "memory_requested_ratio": [0.5, 0.5, 0.5],
            "network_receive_bytes_per_second": [100.0, 200.0, 600.0],
        },
    )
    features = compute_node_features(metrics, STEP)
    row = at(features, "a", 30)
    assert row["cpu_to_memory_ratio"] == pytest.approx(0.5)
    assert row["headroom"] == pytest.approx(0.4)
    assert row["cpu_usage_to_request"] == pytest.approx(0.5)
    assert row["cpu_request_slack"] == pytest.approx(0.3)
    assert row["memory_usage_to_request"] == pytest.approx(1.2)
    assert row["pod_count"] == 5
    assert row["network_receive_mean_1h"] == pytest.approx(150.0)
    last = at(features, "a", 60)
    assert last["pod_count_change_1h"] == 6  # 9 now, 3 one hour ago
    assert np.isnan(last["cpu_to_memory_ratio"])  # memory 0
    assert np.isnan(last["cpu_usage_to_request"])  # nothing requested
    assert last["network_receive_mean_1h"] == pytest.approx(400.0)  # (t - 1 h, t]


def test_absent_extras_give_nan_features():
    features = compute_node_features(frame(ramp("a", range(5))), STEP)
    for name in (*d.EXTRA_COLUMNS, "pod_count_change_1h", "cpu_usage_to_request"):
        assert features[name].isna().all(), name
    assert features["cpu_mean_5m"].notna().all()


# --------------------------------------------------------------------------- guarantees


def test_features_are_strictly_causal():
    metrics = random_metrics(seed=2, minutes=9 * 24 * 60, step_minutes=10)
    cut = T0 + pd.Timedelta(days=8, hours=3, minutes=20)
    past = metrics[metrics[TIMESTAMP] <= cut]
    future = metrics[TIMESTAMP] > cut
    changed = metrics.copy()
    changed.loc[future, CPU_UTILIZATION] = 1.5 - changed.loc[future, CPU_UTILIZATION]
    changed.loc[future, "pod_count"] += 100
    changed = changed.drop(changed.index[future & (changed[NODE] == "n1")])  # a node vanishes
    full = compute_node_features(metrics, 600)
    expected = full[full[TIMESTAMP] <= cut].reset_index(drop=True)
    for variant in (past, changed):
        got = compute_node_features(variant, 600)
        got = got[got[TIMESTAMP] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_features_are_deterministic_and_independent_of_row_order():
    metrics = random_metrics(seed=3)
    first = compute_node_features(metrics)
    shuffled = metrics.sample(frac=1.0, random_state=5).reset_index(drop=True)
    pd.testing.assert_frame_equal(compute_node_features(metrics), first, check_exact=True)
    pd.testing.assert_frame_equal(compute_node_features(shuffled), first, check_exact=True)


def test_since_computes_only_later_rows_with_the_same_values():
    metrics = random_metrics(seed=4)
    since = T0 + pd.Timedelta(days=2, minutes=7)
    full = compute_node_features(metrics)
    part = compute_node_features(metrics, since=since)
    expected = full[full[TIMESTAMP] >= since].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("offset_minutes", [0, 2])
def test_online_path_equals_offline_features_at_the_last_sample(offset_minutes):
    metrics = random_metrics(seed=5, minutes=9 * 24 * 60, step_minutes=5)
    when = metrics[TIMESTAMP].max() - pd.Timedelta(minutes=offset_minutes)
    offline = compute_node_features(metrics, 300)
    online = latest_node_features(metrics, when, 300)
    expected = offline[offline[TIMESTAMP] <= when].groupby(NODE).tail(1).reset_index(drop=True)
    assert list(online[NODE]) == ["n0", "n1", "n2"]
    pd.testing.assert_frame_equal(online, expected, rtol=1e-5, atol=1e-6)


def test_online_path_with_no_recent_rows_is_empty():
    metrics = frame(ramp("a", range(5)))
    online = latest_node_features(metrics, T0 - pd.Timedelta(days=1))
    assert online.empty
    assert list(online.columns) == [TIMESTAMP, NODE, *FEATURE_NAMES]


def test_empty_input_and_since_after_the_history_give_no_rows():
    metrics = frame(ramp("a", range(3)))
    for features in (
        compute_node_features(metrics.iloc[:0]),
        compute_node_features(metrics, since=T0 + pd.Timedelta(days=1)),
    ):
        assert features.empty
        assert list(features.columns) == [TIMESTAMP, NODE, *FEATURE_NAMES]


def test_step_is_inferred_from_the_scrape_interval():
    minutes = list(range(0, 60, 2))
    a = compute_node_features(frame(ramp("a", minutes)))
    b = compute_node_features(frame(ramp("a", minutes)), 120)
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- errors


def test_missing_columns_and_naive_timestamps_are_contract_errors():
    metrics = frame(ramp("a", range(3)))
    with pytest.raises(ContractError, match="memory_utilization"):
        compute_node_features(metrics.drop(columns=[MEMORY_UTILIZATION]))
    naive = metrics.assign(**{TIMESTAMP: metrics[TIMESTAMP].dt.tz_localize(None)})
    with pytest.raises(ContractError, match="time-zone"):
        compute_node_features(naive)


def test_two_samples_in_one_step_are_rejected():
    metrics = frame([(0, "a", 0.1, 0.2), (0.5, "a", 0.1, 0.2), (1, "a", 0.1, 0.2)])
    with pytest.raises(MlschedError, match="same 60s step"):
        compute_node_features(metrics, STEP)
    with pytest.raises(MlschedError, match="no time zone"):
        latest_node_features(metrics, "2026-01-05T00:00:00")


# --------------------------------------------------------------------------- the table


def test_feature_table_round_trip(tmp_path):
    features = compute_node_features(random_metrics(seed=6, minutes=600))
    path = write_feature_table(features, tmp_path / "features" / "node_features.parquet")
    back = read_feature_table(path)
    pd.testing.assert_frame_equal(back, features)
    assert not list(path.parent.glob(".*"))  # no temporary files left
    with pytest.raises(MlschedError, match="cpu_mean_5m"):
        write_feature_table(features.drop(columns=["cpu_mean_5m"]), tmp_path / "x.parquet")
    with pytest.raises(MlschedError, match="no feature table"):
        read_feature_table(tmp_path / "missing.parquet")


def test_point_in_time_join_takes_the_latest_row_at_or_before_each_time():
    features = compute_node_features(frame(ramp("a", [0, 1, 2, 40]) + ramp("b", [0, 1])), STEP)
    entities = pd.DataFrame(
        {
            NODE: ["a", "a", "a", "b", "a", "c"],
            TIMESTAMP: T0 + pd.to_timedelta([1.5, 2, 30, 1, -1, 1], unit="min"),
            "label": [1, 2, 3, 4, 5, 6],
        }
    )
    joined = point_in_time_join(features, entities, ttl_seconds=15 * 60)
    assert list(joined.columns) == [NODE, TIMESTAMP, "label", *FEATURE_NAMES]
    cpu = joined[CPU_UTILIZATION].to_numpy()
    np.testing.assert_allclose(cpu[:4], [0.11, 0.12, np.nan, 0.11], rtol=1e-6)
    assert np.isnan(cpu[4])  # before the history: nothing from the future
    assert np.isnan(cpu[5])  # unknown node
    assert joined["label"].tolist() == [1, 2, 3, 4, 5, 6]
