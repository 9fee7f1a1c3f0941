"""The anomaly feature group: the detector's own features as node state (offline and online)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.anomaly_group import (
    ANOMALY_VIEW,
    anomaly_feature_names,
    anomaly_table_path,
    compute_anomaly_features,
    latest_anomaly_features,
    write_anomaly_table,
)
from components.features.anomaly_statistics import anomaly_features
from components.features.definitions import FEATURE_NAMES, GROUPS, feature_view_name
from components.generate.cluster import make_nodes
from components.generate.history import (
    HistoryConfig,
    generate_node,
    latent_factors,
    node_metrics_frame,
)


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    config = HistoryConfig(nodes=3, days=1, step_seconds=300, seed=4, end_epoch=1_767_225_600)
    factors = latent_factors(config)
    made = make_nodes(3, config.seed)
    return node_metrics_frame(config, [generate_node(config, node, factors) for node in made])


def test_the_group_is_the_detectors_features_apart_from_the_forecasters():
    names = anomaly_feature_names()
    assert names and len(set(names)) == len(names)
    assert not set(names) & set(FEATURE_NAMES)
    assert ANOMALY_VIEW not in {feature_view_name(group) for group in GROUPS}


def test_offline_table_matches_the_detector_and_online_rows_the_latest(metrics, tmp_path):
    table = compute_anomaly_features(metrics, 300)
    assert list(table.columns) == [TIMESTAMP, NODE, *anomaly_feature_names()]
    expected = anomaly_features(metrics, ("cpu", "memory"), 300)
    np.testing.assert_allclose(
        table[list(anomaly_feature_names())].to_numpy(np.float64),
        expected[list(anomaly_feature_names())].to_numpy(np.float64),
        rtol=1e-6,
        atol=1e-6,
    )
    at = metrics[TIMESTAMP].max()
    latest = latest_anomaly_features(metrics, at, 300, lookback_seconds=10 * 86_400)
    last = table.groupby(NODE).tail(1).reset_index(drop=True)
    pd.testing.assert_frame_equal(latest, last)
    empty = latest_anomaly_features(metrics, at - pd.Timedelta(days=30), 300)
    assert empty.empty and list(empty.columns) == list(table.columns)
    path = write_anomaly_table(table, anomaly_table_path(tmp_path / "node_features.parquet"))
    assert path.name == "node_features_anomaly.parquet"
    assert len(pd.read_parquet(path)) == len(table)
    with pytest.raises(MlschedError, match="lack column"):
        write_anomaly_table(table.drop(columns=[anomaly_feature_names()[0]]), tmp_path / "x.pq")
    with pytest.raises(MlschedError, match="time zone"):
        latest_anomaly_features(metrics, "2026-01-01")
