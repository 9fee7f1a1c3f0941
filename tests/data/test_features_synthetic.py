"""Node features on the synthetic cluster: sane ranges, consistency with the raw history, the
labelled anomalies visible in the features they should move, and online == offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, NODE, TIMESTAMP
from components.features import FEATURE_NAMES, compute_node_features, latest_node_features
from components.features import definitions as d
from tests.data.conftest import SMALL


@pytest.fixture(scope="module")
def features(small_metrics) -> pd.DataFrame:
    return compute_node_features(small_metrics)


@pytest.fixture(scope="module")
def events(small_dataset) -> pd.DataFrame:
    frame = pd.read_csv(small_dataset.anomaly_events)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def test_one_feature_row_per_metrics_row(small_metrics, features):
    assert len(features) == len(small_metrics)
    keys = small_metrics[[TIMESTAMP, NODE]].reset_index(drop=True)
    pd.testing.assert_frame_equal(features[[TIMESTAMP, NODE]], keys)
    np.testing.assert_allclose(
        features[CPU_UTILIZATION], small_metrics[CPU_UTILIZATION].to_numpy(), rtol=1e-6
    )
    assert len(FEATURE_NAMES) >= 50


def test_feature_values_are_finite_and_in_range(features):
    values = features[list(FEATURE_NAMES)]
    assert np.isfinite(values.to_numpy(dtype=float)[~values.isna().to_numpy()]).all()
    always = [
        f"{prefix}_{stat}_{w}"
        for prefix in d.RESOURCES
        for stat, windows in (("mean", d.MEAN_WINDOWS), ("max", d.MAX_WINDOWS))
        for w in windows
    ]
    assert values[always + ["hour_of_day_sin", "missing_ratio_24h"]].notna().all().all()
    for prefix in d.RESOURCES:
        for w in d.MIN_WINDOWS:
            low, mean, high = (features[f"{prefix}_{s}_{w}"] for s in ("min", "mean", "max"))
            assert (low <= mean + 1e-6).all() and (mean <= high + 1e-6).all()
        assert (features[f"{prefix}_p50_1h"] <= features[f"{prefix}_p95_1h"] + 1e-6).all()
        assert features[f"{prefix}_cluster_rank"].between(0, 1).all()
        assert (features[f"{prefix}_std_24h"] >= 0).all()
    for column in ("missing_ratio_1h", "missing_ratio_24h", "cluster_reporting_ratio"):
        assert features[column].between(0, 1).all(), column
    assert (features["scrape_gap_seconds"].dropna() >= SMALL.step_seconds).all()


def test_lags_match_the_raw_history(small_metrics, features):
    raw = small_metrics.set_index([NODE, TIMESTAMP])[CPU_UTILIZATION]
    for lag, seconds in d.LAGS.items():
        back = pd.MultiIndex.from_arrays(
            [features[NODE], features[TIMESTAMP] - pd.Timedelta(seconds=seconds)]
        )
        expected = raw.reindex(back).to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(features[f"cpu_{lag}"].to_numpy(), expected, err_msg=lag)


def _events_and_node_features(events, features, kind: str):
    """Each generated event of ``kind`` (there is at least one) with its node's feature rows."""
    chosen = events[events["kind"] == kind]
    assert len(chosen) > 0
    for event in chosen.itertuples():
        yield event, features[features[NODE] == event.node]


def test_flatlined_exporter_shows_zero_spread(features, events):
    for event, node in _events_and_node_features(events, features, "flatline"):
        stamps = node[TIMESTAMP]
        rows = node[(stamps >= event.start + pd.Timedelta(minutes=15)) & (stamps <= event.end)]
        if len(rows):
            assert (rows["cpu_std_15m"] == 0).all(), event
            assert (rows["memory_slope_15m"].abs() < 1e-6).all(), event
    # elsewhere, CPU that is not pinned at 0 or 1 is rarely perfectly flat for 15 minutes
    unpinned = features[features[CPU_UTILIZATION].between(0.01, 0.99)]
    assert (unpinned["cpu_std_15m"] == 0).mean() < 0.01


def test_flapping_node_shows_flaps_and_missing_scrapes(features, events):
    for event, node in _events_and_node_features(events, features, "flapping"):
        stamps = node[TIMESTAMP]
        rows = node[
            (stamps > event.start + pd.Timedelta(minutes=20))
            & (stamps <= event.end + pd.Timedelta(minutes=30))
        ]
        assert rows["flaps_1h"].max() >= 2, event
        assert rows["missing_ratio_1h"].max() > 0.2, event
    assert features["flaps_1h"].median() == 0


def test_online_path_equals_offline_on_the_synthetic_cluster(small_metrics, features):
    last = small_metrics[TIMESTAMP].max()
    for when in (last, last - pd.Timedelta(hours=30, seconds=20)):
        online = latest_node_features(small_metrics, when)
        expected = features[features[TIMESTAMP] <= when].groupby(NODE).tail(1)
        pd.testing.assert_frame_equal(online, expected.reset_index(drop=True), rtol=1e-5, atol=1e-6)


def test_history_cut_leaves_earlier_features_unchanged(small_metrics, features):
    cut = small_metrics[TIMESTAMP].min() + pd.Timedelta(days=5, hours=7)
    early = compute_node_features(small_metrics[small_metrics[TIMESTAMP] <= cut])
    expected = features[features[TIMESTAMP] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(early, expected, check_exact=True)
