"""The anomaly feature group: the node anomaly detector's own features as node state.

The detector (:mod:`components.anomaly`) does not score the forecaster features
(:data:`~components.features.definitions.FEATURE_NAMES`, unchanged) but its own robust per-node
statistics, :func:`components.features.anomaly_statistics.anomaly_features`, which need about
48 h of a node's metrics and cannot be derived from them. So they are a separate feature table
and a separate Feast feature view (:data:`ANOMALY_VIEW`, outside the ``node_features_v1`` service),
materialised beside the others and read into the node state snapshot, from which the extender
sends them to the served detector in the order its metadata declares.

The names come from the detector's feature function (all resources), so a change of the
detector's columns changes this group with it; nothing here is computed at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from components.atomic import replace_path
from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.anomaly_statistics import LOOKBACK_SECONDS, anomaly_features, feature_names
from components.features.definitions import feature_view_name

ANOMALY_GROUP = "anomaly"
ANOMALY_VIEW = feature_view_name(ANOMALY_GROUP)
ANOMALY_SOURCE_NAME = "node_anomaly_features_table"
ANOMALY_RESOURCES = ("cpu", "memory")


def anomaly_feature_names() -> tuple[str, ...]:
    """The columns of the anomaly group (the detector's features over CPU and memory)."""
    return tuple(feature_names(ANOMALY_RESOURCES))


def anomaly_table_path(table_path: str | os.PathLike) -> Path:
    """Where the anomaly feature table of a node feature table goes: ``<stem>_anomaly.parquet``
    beside it."""
    table = Path(table_path)
    return table.with_name(f"{table.stem}_anomaly.parquet")


def compute_anomaly_features(
    metrics: pd.DataFrame, step_seconds: int | None = None
) -> pd.DataFrame:
    """The anomaly group of every node-metrics row: ``timestamp``, ``node`` and
    :func:`anomaly_feature_names` as float32, sorted by (node, timestamp)."""
    names = anomaly_feature_names()
    computed = anomaly_features(metrics, ANOMALY_RESOURCES, step_seconds)
    out = pd.DataFrame(
        {
            TIMESTAMP: pd.DatetimeIndex(computed[TIMESTAMP]).tz_convert("UTC"),
            NODE: computed[NODE].astype(str).to_numpy(),
        }
    )
    for name in names:
        out[name] = computed[name].to_numpy(dtype=np.float32)
    return out


def latest_anomaly_features(
    metrics: pd.DataFrame,
    at: pd.Timestamp | str,
    step_seconds: int | None = None,
    *,
    lookback_seconds: int | None = None,
) -> pd.DataFrame:
    """The online path: each node's anomaly features at its latest sample at or before ``at``,
    computed over the trailing ``lookback_seconds`` (default: the detector's lookback, 48 h)."""
    at = pd.Timestamp(at)
    if at.tzinfo is None:
        raise MlschedError(f"at={at!r} has no time zone; pass a UTC time")
    lookback = LOOKBACK_SECONDS if lookback_seconds is None else int(lookback_seconds)
    stamps = metrics[TIMESTAMP]
    window = metrics[(stamps > at - pd.Timedelta(seconds=lookback)) & (stamps <= at)]
    if window.empty:
        empty = {name: pd.Series(dtype=np.float32) for name in anomaly_feature_names()}
        return pd.DataFrame(
            {
                TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
                NODE: pd.Series(dtype=object),
                **empty,
            }
        )
    features = compute_anomaly_features(window, step_seconds)
    latest = features.groupby(NODE, sort=True)[TIMESTAMP].transform("max")
    return features[features[TIMESTAMP] == latest].reset_index(drop=True)


def write_anomaly_table(features: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an anomaly feature table (Feast's offline source of :data:`ANOMALY_VIEW`)
    atomically."""
    names = anomaly_feature_names()
    missing = [c for c in (TIMESTAMP, NODE, *names) if c not in features.columns]
    if missing:
        raise MlschedError(f"anomaly features lack column(s) {', '.join(missing)}")
    columns = features[[TIMESTAMP, NODE, *names]]
    return replace_path(path, lambda tmp: columns.to_parquet(tmp, index=False))
