"""The Feast store of the node features against real local stores: sqlite, and Redis if present.

Apply (in code and with the Feast CLI in a copy of ``feature_repo/``), materialise, online reads
and writes, and point-in-time-correct historical retrieval, on a small synthetic cluster.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import NODE, TIMESTAMP, read_node_metrics
from components.features import (
    FEATURE_NAMES,
    FEATURE_SERVICE_NAME,
    compute_node_features,
    latest_node_features,
    point_in_time_join,
    write_feature_table,
)
from components.features import definitions as d
from components.generate.history import HistoryConfig
from components.generate.synthetic import generate_synthetic_cluster
from feature_repo.node_features import TABLE_VARIABLE

pytestmark = pytest.mark.integration

feast_store = pytest.importorskip("components.features.feast_store")

END = int(pd.Timestamp("2026-01-05T00:00:00Z").timestamp())
CONFIG = HistoryConfig(nodes=4, days=8, step_seconds=60, seed=11, end_epoch=END)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("feast-data") / "cluster"
    generate_synthetic_cluster(CONFIG, root, workload_days=0.1, openmetrics=False, progress=False)
    return read_node_metrics(root / "node_metrics")


@pytest.fixture(scope="module")
def features(metrics) -> pd.DataFrame:
    return compute_node_features(metrics)


@pytest.fixture(scope="module")
def table(features, tmp_path_factory) -> Path:
    return write_feature_table(features, tmp_path_factory.mktemp("table") / "features.parquet")


@pytest.fixture(scope="module")
def store(table, tmp_path_factory):
    store = feast_store.apply_feature_repo(tmp_path_factory.mktemp("repo"), table)
    feast_store.materialize_features(store)
    return store


def last_rows(features: pd.DataFrame) -> pd.DataFrame:
    return features.groupby(NODE).tail(1).set_index(NODE).sort_index()


def assert_snapshot_equals(snapshot: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(snapshot.columns) == [TIMESTAMP, *FEATURE_NAMES]
    nodes = list(expected.index)
    np.testing.assert_array_equal(
        snapshot.loc[nodes, list(FEATURE_NAMES)].to_numpy(),
        expected.loc[nodes, list(FEATURE_NAMES)].to_numpy(),
    )
    assert (snapshot.loc[nodes, TIMESTAMP] == expected.loc[nodes, TIMESTAMP]).all()


def test_apply_registers_one_service_with_every_feature(store, table):
    views = {view.name: view for view in store.list_feature_views()}
    assert sorted(views) == sorted(d.feature_view_name(group) for group in d.GROUPS)
    service = store.get_feature_service(FEATURE_SERVICE_NAME)
    served = [
        f.name for projection in service.feature_view_projections for f in projection.features
    ]
    assert sorted(served) == sorted(FEATURE_NAMES)
    for view in views.values():
        assert Path(view.batch_source.path) == table.resolve()
        assert view.ttl.total_seconds() == d.FEATURE_TTL_SECONDS
    assert [entity.name for entity in store.list_entities()] == [NODE]


def test_online_snapshot_is_the_latest_offline_row(store, features):
    expected = last_rows(features)
    snapshot = feast_store.read_node_state_snapshot(store, [*expected.index, "no-such-node"])
    assert_snapshot_equals(snapshot, expected)
    assert snapshot.loc["no-such-node", list(FEATURE_NAMES)].isna().all()
    assert pd.isna(snapshot.loc["no-such-node", TIMESTAMP])
    assert (snapshot[list(FEATURE_NAMES)].dtypes == np.float32).all()


def test_online_reads_survive_a_library_replacing_sqlites_timestamp_converter(store, features):
    """IPython, which MLflow's model loading imports (the extender loads the DQN so), registers
    an ISO 8601 "timestamp" converter for every sqlite3 connection of the process."""
    import sqlite3

    sqlite3.register_converter("timestamp", lambda val: datetime.fromisoformat(val.decode()))
    expected = last_rows(features)
    snapshot = feast_store.read_node_state_snapshot(store, list(expected.index))
    assert_snapshot_equals(snapshot, expected)


def feast_training_set(store, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join of the service's features onto ``entities``, in their order
    (Feast's file store drops a row whose node has rows but none within the TTL: put back with
    NaN features)."""
    rows = entities.rename(columns={TIMESTAMP: "event_timestamp"}).assign(row=range(len(entities)))
    service = store.get_feature_service(FEATURE_SERVICE_NAME)
    joined = store.get_historical_features(entity_df=rows, features=service).to_df()
    joined = joined.drop_duplicates("row").set_index("row").reindex(range(len(entities)))
    result = entities.reset_index(drop=True).copy()
    for name in FEATURE_NAMES:
        result[name] = pd.to_numeric(joined[name], errors="coerce").to_numpy(dtype=np.float32)
    return result


def test_historical_features_are_point_in_time_correct(store, features):
    rng = np.random.default_rng(0)
    nodes = sorted(features[NODE].unique())
    start, end = features[TIMESTAMP].min(), features[TIMESTAMP].max()
    span = (end - start).total_seconds()
    entities = pd.DataFrame(
        {
            NODE: rng.choice(nodes, 60),
            # between scrapes (+17 s), so the next row is 43 s in the future
            TIMESTAMP: start + pd.to_timedelta(rng.integers(0, span, 60) // 60 * 60 + 17, "s"),
        }
    )
    first = features[TIMESTAMP].min()
    extra = pd.DataFrame(
        {
            NODE: [nodes[0], nodes[1], "unknown-node"],
            TIMESTAMP: [first - pd.Timedelta(hours=1), end + pd.Timedelta(days=1), end],
        }
    )
    entities = pd.concat([entities, extra], ignore_index=True)
    entities["label"] = np.arange(len(entities))
    got = feast_training_set(store, entities)
    assert list(got.columns) == [NODE, TIMESTAMP, "label", *FEATURE_NAMES]
    assert got["label"].tolist() == entities["label"].tolist()  # the entity order is kept

    # the expected row: the node's latest feature row at or before t, within the TTL
    by_node = {node: frame.set_index(TIMESTAMP) for node, frame in features.groupby(NODE)}
    ttl = pd.Timedelta(seconds=d.FEATURE_TTL_SECONDS)
    for i, row in entities.iterrows():
        history = by_node.get(row[NODE])
        values = got.loc[i, list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
        earlier = None if history is None else history[history.index <= row[TIMESTAMP]]
        if earlier is None or earlier.empty or row[TIMESTAMP] - earlier.index[-1] > ttl:
            assert np.isnan(values).all(), f"row {i} should have no features"
            continue
        expected = earlier.iloc[-1][list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(values, expected, err_msg=f"row {i}")
        later = history[history.index > row[TIMESTAMP]]
        if not later.empty:  # and not the next, future row
            future = later.iloc[0][list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
            assert not np.array_equal(values, future, equal_nan=True)
    assert np.isnan(got.iloc[-3][list(FEATURE_NAMES)].to_numpy(dtype=float)).all()  # before data
    assert np.isnan(got.iloc[-2][list(FEATURE_NAMES)].to_numpy(dtype=float)).all()  # past TTL

    # the in-memory join for large training sets gives the same answer
    pd.testing.assert_frame_equal(point_in_time_join(features, entities), got)


def test_materialize_incremental_moves_the_online_store_forward(features, tmp_path):
    cut = features[TIMESTAMP].max() - pd.Timedelta(hours=2)
    table = tmp_path / "features.parquet"
    write_feature_table(features[features[TIMESTAMP] <= cut], table)
    store = feast_store.apply_feature_repo(tmp_path / "repo", table)
    assert feast_store.materialize_features(store) == cut.to_pydatetime()
    early = last_rows(features[features[TIMESTAMP] <= cut])
    assert_snapshot_equals(feast_store.read_node_state_snapshot(store, list(early.index)), early)

    write_feature_table(features, table)  # new rows arrive in the offline table
    feast_store.materialize_features(store)  # materialize_incremental from the last end
    view = store.get_feature_view(d.feature_view_name("cpu"))
    assert view.most_recent_end_time == features[TIMESTAMP].max().to_pydatetime()
    latest = last_rows(features)
    assert_snapshot_equals(feast_store.read_node_state_snapshot(store, list(latest.index)), latest)


def test_online_writes_hold_what_the_offline_table_holds(metrics, features, table, tmp_path):
    store = feast_store.apply_feature_repo(tmp_path / "repo", table)  # nothing materialised
    latest = latest_node_features(metrics, metrics[TIMESTAMP].max())
    assert feast_store.write_online_features(store, latest) == len(latest)
    snapshot = feast_store.read_node_state_snapshot(store, list(latest[NODE]))
    expected = last_rows(features)
    nodes = list(expected.index)
    np.testing.assert_allclose(
        snapshot.loc[nodes, list(FEATURE_NAMES)].to_numpy(),
        expected.loc[nodes, list(FEATURE_NAMES)].to_numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert (snapshot.loc[nodes, TIMESTAMP] == expected.loc[nodes, TIMESTAMP]).all()


def test_feast_apply_works_in_a_copy_of_the_repository(table, tmp_path):
    feast = Path(sys.executable).with_name("feast")
    if not feast.exists():
        pytest.skip(f"{feast}: the feast CLI is not installed beside this interpreter")
    repo = shutil.copytree(feast_store.FEATURE_REPO, tmp_path / "feature_repo")
    default_table = tmp_path / "data" / "features" / "node_features.parquet"
    default_table.parent.mkdir(parents=True)
    shutil.copyfile(table, default_table)  # where `mlsched features` writes it in a checkout
    env = {key: value for key, value in os.environ.items() if key != TABLE_VARIABLE}

    def feast_cli(*command: str, **variables: str) -> str:
        result = subprocess.run(
            [str(feast), *command],
            cwd=repo,
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def sources() -> set[Path]:
        # the registry lands where feature_store.yaml says (../data/feast), read by the code
        views = feast_store.open_feature_store(tmp_path / "data" / "feast").list_feature_views()
        assert sorted(view.name for view in views) == sorted(map(d.feature_view_name, d.GROUPS))
        return {Path(view.batch_source.path) for view in views}

    feast_cli("apply")
    assert sources() == {default_table}
    assert FEATURE_SERVICE_NAME in feast_cli("feature-services", "list")
    feast_cli("apply", **{TABLE_VARIABLE: str(table)})
    assert sources() == {table.resolve()}


@pytest.fixture
def redis_url(free_ports):
    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"{REDIS_SERVER} not found: install Debian's redis-server to test Redis")
    if importlib.util.find_spec("redis") is None:
        pytest.skip(
            "the 'redis' Python package is not installed (Feast's Redis online store needs it: "
            "pip install 'feast[redis]')"
        )
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"redis-server on port {port} did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_online_store(redis_url, table, features, tmp_path):
    store = feast_store.apply_feature_repo(tmp_path / "repo", table, online_store=redis_url)
    assert store.config.online_store.type == "redis"
    feast_store.materialize_features(store)
    expected = last_rows(features)
    assert_snapshot_equals(
        feast_store.read_node_state_snapshot(store, list(expected.index)), expected
    )


def test_features_command_builds_table_and_online_store(metrics, tmp_path, features):
    from components.contracts import write_node_metrics
    from components.features.cli import build_features

    source = tmp_path / "metrics.parquet"
    write_node_metrics(metrics, source)
    report = build_features(source, tmp_path / "t" / "features.parquet", tmp_path / "feast")
    assert report.rows == len(metrics) and report.nodes == CONFIG.nodes
    assert report.features == len(FEATURE_NAMES) >= 50
    store = feast_store.open_feature_store(tmp_path / "feast")
    snapshot = feast_store.read_node_state_snapshot(store, sorted(metrics[NODE].unique()))
    assert_snapshot_equals(snapshot, last_rows(features))
