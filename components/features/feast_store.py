"""The Feast store of the node features: apply, materialisation, online reads and writes.

The store is the Feast repository ``feature_repo/``: its ``feature_store.yaml`` (read here, with
the registry and the sqlite online store moved under another folder, or the online store moved to
Redis, when asked) and the objects of :mod:`components.features.feast_definitions` over one
feature table. Every function takes its paths or store as parameters; importing this module
creates nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from feast import FeatureStore, RepoConfig
from feast.errors import FeatureViewNotFoundException

from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.anomaly_group import ANOMALY_VIEW, anomaly_feature_names
from components.features.definitions import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_TTL_SECONDS,
    GROUPS,
    feature_view_name,
)
from components.features.feast_definitions import FEATURE_TTL, build_definitions

FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
"""The Feast repository (a folder beside ``components/``, read as files, never imported)."""
CONFIG_FILE = "feature_store.yaml"


# --------------------------------------------------------------------------- the repository


def online_store_config(spec: str | Mapping | None) -> dict | None:
    """The ``online_store`` section for a spec: ``None``/``"sqlite"`` (the repository's sqlite
    file), a Redis URL ``redis://[:password@]host:port[/db]``, or a Feast ``online_store`` mapping.

    Returns:
        The section to use instead of ``feature_store.yaml``'s, or ``None`` to keep its sqlite.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "sqlite")):
        return None
    if isinstance(spec, Mapping):
        if "type" not in spec:
            raise MlschedError(f"online store {dict(spec)!r}: a Feast online_store needs a 'type'")
        return dict(spec)
    url = urlparse(spec.strip())
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise MlschedError(
            f"online store {spec!r}: use 'sqlite' or a Redis URL such as redis://127.0.0.1:6379/0"
        )
    parts = [f"{url.hostname}:{url.port or 6379}"]
    database = url.path.strip("/")
    if database:
        if not database.isdigit():
            raise MlschedError(f"online store {spec!r}: the Redis database must be a number")
        parts.append(f"db={database}")
    if url.password:
        parts.append(f"password={unquote(url.password)}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return {"type": "redis", "connection_string": ",".join(parts)}


def feature_store_config(
    home: str | os.PathLike | None = None, *, online_store: str | Mapping | None = None
) -> RepoConfig:
    """``feature_repo/feature_store.yaml`` as Feast reads it, with its registry and sqlite online
    store files under ``home`` when given (default: where the YAML puts them, ``data/feast/``),
    and the online store of ``online_store`` (:func:`online_store_config`) when given."""
    raw = yaml.safe_load(os.path.expandvars((FEATURE_REPO / CONFIG_FILE).read_text()))
    folder = None if home is None else Path(home).resolve()
    for section in ("registry", "online_store"):
        path = Path(raw[section]["path"])
        raw[section]["path"] = str(
            folder / path.name if folder else (FEATURE_REPO / path).resolve()
        )
    override = online_store_config(online_store)
    if override is not None:
        raw["online_store"] = override
    config = RepoConfig(**raw)
    config.repo_path = FEATURE_REPO
    return config


def _feature_store(config: RepoConfig) -> FeatureStore:
    Path(config.registry.path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(FEATURE_REPO), config=config)


def open_feature_store(
    home: str | os.PathLike | None = None, *, online_store: str | Mapping | None = None
) -> FeatureStore:
    """The applied store whose registry and sqlite online store live in ``home`` (see
    :func:`feature_store_config`).

    Raises:
        MlschedError: when nothing was applied there yet.
    """
    config = feature_store_config(home, online_store=online_store)
    if not Path(config.registry.path).is_file():
        raise MlschedError(
            f"{config.registry.path}: no Feast registry; apply the repository first "
            "(`mlsched features`, or `feast apply` in feature_repo/)"
        )
    return _feature_store(config)


def apply_feature_repo(
    home: str | os.PathLike | None,
    table_path: str | os.PathLike,
    *,
    online_store: str | Mapping | None = None,
    ttl: timedelta | None = None,
    anomaly_table_path: str | os.PathLike | None = None,
) -> FeatureStore:
    """``feast apply`` for a feature table: register the entity, source, feature views and
    feature service in the registry under ``home`` (see :func:`feature_store_config`), create the
    online tables, and drop stale views/services.

    With ``anomaly_table_path`` (a table of :func:`~components.features.anomaly_group.
    write_anomaly_table`), the anomaly feature view is registered too; without, it is dropped.

    Returns:
        The store, ready for :func:`materialize_features` and the readers.
    """
    table = Path(table_path).resolve()
    if not table.is_file():
        raise MlschedError(f"{table}: no feature table; write it with write_feature_table first")
    anomaly = None
    if anomaly_table_path is not None:
        anomaly = Path(anomaly_table_path).resolve()
        if not anomaly.is_file():
            raise MlschedError(
                f"{anomaly}: no anomaly feature table; write it with write_anomaly_table first"
            )
    store = _feature_store(feature_store_config(home, online_store=online_store))
    repo = build_definitions(table, ttl=ttl or FEATURE_TTL, anomaly_table_path=anomaly)
    view_names = {view.name for view in repo.views}
    if repo.anomaly_view is not None:
        view_names.add(repo.anomaly_view.name)
    stale = [view for view in store.list_feature_views() if view.name not in view_names]
    stale += [
        service for service in store.list_feature_services() if service.name != repo.service.name
    ]
    store.apply(repo.objects(), objects_to_delete=stale, partial=False)
    return store


# --------------------------------------------------------------------------- offline and online


def has_anomaly_view(store: FeatureStore) -> bool:
    """Whether the store has the anomaly feature view (applied with an anomaly table)."""
    try:
        store.get_feature_view(ANOMALY_VIEW, allow_registry_cache=True)
    except FeatureViewNotFoundException:
        return False
    return True


def _table_path(store: FeatureStore) -> Path:
    view = store.get_feature_view(feature_view_name(GROUPS[0]))
    return Path(view.batch_source.path)


def _latest_table_timestamp(store: FeatureStore) -> datetime:
    path = _table_path(store)
    stamps = pq.read_table(path, columns=[TIMESTAMP]).column(TIMESTAMP)
    if len(stamps) == 0:
        raise MlschedError(f"{path}: the feature table is empty; nothing to materialise")
    return pd.Timestamp(stamps.to_numpy().max(), tz="UTC").to_pydatetime()


def materialize_features(
    store: FeatureStore,
    end: datetime | pd.Timestamp | None = None,
    *,
    start: datetime | pd.Timestamp | None = None,
) -> datetime:
    """Load the latest features of every node from the offline table into the online store.

    Feast's ``materialize_incremental`` starts where the previous run ended, or at ``now - ttl``
    on the first run, which misses a history that ended earlier; so a feature view that was never
    materialised is first loaded from ``start`` (default: ``end - ttl``).

    Args:
        end: the last event time to load, inclusive (default: the table's latest timestamp).
        start: the first event time to load for views never materialised before.

    Returns:
        The ``end`` used (UTC).
    """
    end_time = _latest_table_timestamp(store) if end is None else _utc_datetime(end)
    views = [store.get_feature_view(feature_view_name(group)) for group in GROUPS]
    if has_anomaly_view(store):
        views.append(store.get_feature_view(ANOMALY_VIEW))
    fresh = [view for view in views if view.most_recent_end_time is None]
    for view in fresh:
        lookback = view.ttl or timedelta(seconds=FEATURE_TTL_SECONDS)
        begin = _utc_datetime(start) if start is not None else end_time - lookback
        store.materialize(start_date=begin, end_date=end_time, feature_views=[view.name])
    incremental = [view.name for view in views if view not in fresh]
    if incremental:
        store.materialize_incremental(end_date=end_time, feature_views=incremental)
    return end_time


def write_online_features(store: FeatureStore, features: pd.DataFrame) -> int:
    """Write feature rows (e.g. from :func:`latest_node_features`) straight into the online
    store, each under its own ``timestamp``: a fresh state without re-reading the offline table
    (the replay writes its simulated cluster this way). When
    ``features`` also has the anomaly group's columns (e.g. joined from
    :func:`~components.features.anomaly_group.latest_anomaly_features`) and the store has the
    anomaly view, they are written to it as well.

    Returns:
        The number of rows written per feature view.
    """
    missing = [c for c in (TIMESTAMP, NODE, *FEATURE_NAMES) if c not in features.columns]
    if missing:
        raise MlschedError(f"features to write lack column(s) {', '.join(missing)}")
    if features.empty:
        return 0
    for group in GROUPS:
        columns = [NODE, TIMESTAMP, *FEATURE_GROUPS[group]]
        store.write_to_online_store(feature_view_name(group), features[columns])
    anomaly = anomaly_feature_names()
    if all(name in features.columns for name in anomaly) and has_anomaly_view(store):
        store.write_to_online_store(ANOMALY_VIEW, features[[NODE, TIMESTAMP, *anomaly]])
    return len(features)


def _references(names: Sequence[str]) -> list[str]:
    group_of = {name: group for group, members in FEATURE_GROUPS.items() for name in members}
    unknown = [name for name in names if name not in group_of]
    if unknown:
        raise MlschedError(f"unknown feature(s) {', '.join(unknown)}")
    return [f"{feature_view_name(group_of[name])}:{name}" for name in names]


def read_node_state_snapshot(store: FeatureStore, nodes: Sequence[str]) -> pd.DataFrame:
    """The latest online features of many nodes in one call: the node state snapshot.

    Returns:
        Indexed by ``node`` in the order given, with ``timestamp`` (UTC, the oldest event time of
        the node's feature views of :data:`FEATURE_NAMES`; NaT for a node the store does not
        know) and the features of :data:`FEATURE_NAMES` as float32 (NaN where unknown); when the
        store has the anomaly view, then the anomaly group's features (NaN where unknown).
    """
    nodes = [str(node) for node in nodes]
    anomaly = anomaly_feature_names() if has_anomaly_view(store) else ()
    names = [*FEATURE_NAMES, *anomaly]
    if not nodes:
        frame = pd.DataFrame({name: pd.Series(dtype=np.float32) for name in names})
        frame.insert(0, TIMESTAMP, pd.Series(dtype="datetime64[ns, UTC]"))
        return frame.rename_axis(NODE)
    # The service's features as references: Feast caches their resolution between reads.
    references = [*_references(FEATURE_NAMES), *(f"{ANOMALY_VIEW}:{name}" for name in anomaly)]
    _restore_sqlite_timestamp_converter(store)
    response = store.get_online_features(features=references, entity_rows={NODE: nodes})
    values = response.to_dict(include_event_timestamps=True)
    columns = {
        name: np.array([np.nan if v is None else v for v in values[name]], dtype=np.float32)
        for name in names
    }
    view_stamps = np.array(
        [values[f"{FEATURE_GROUPS[group][0]}__ts"] for group in GROUPS], dtype=np.int64
    )
    oldest = view_stamps.min(axis=0)
    known = oldest > 0
    stamps = pd.to_datetime(np.where(known, oldest, 0), unit="s", utc=True)
    frame = pd.DataFrame(columns, index=pd.Index(nodes, name=NODE))
    frame.insert(0, TIMESTAMP, stamps.where(known))
    return frame


def _restore_sqlite_timestamp_converter(store: FeatureStore) -> None:
    """Feast's sqlite online store keeps event times as epoch seconds and reads them through
    sqlite3's process-wide "timestamp" converter; IPython (which MLflow's model loading imports)
    replaces that converter with an ISO 8601 parser, and every read would then fail."""
    if store.config.online_store.type != "sqlite":
        return
    import sqlite3

    from feast.infra.online_stores.sqlite import convert_timestamp

    sqlite3.register_converter("timestamp", convert_timestamp)


def _utc_datetime(value: datetime | pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise MlschedError(f"{value!r} has no time zone; pass a UTC time")
    return stamp.tz_convert("UTC").to_pydatetime()
