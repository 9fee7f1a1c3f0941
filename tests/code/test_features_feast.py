"""The Feast repository definitions and helpers that need no running store."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import yaml

from components.errors import MlschedError
from components.features import FEATURE_NAMES, FEATURE_SERVICE_NAME
from components.features import definitions as d

feast_store = pytest.importorskip("components.features.feast_store")
node_features = pytest.importorskip("feature_repo.node_features")


def test_feast_views_are_built_from_the_one_feature_definition(tmp_path):
    repo = node_features.build_definitions(tmp_path / "table.parquet")
    for group, view in zip(d.GROUPS, repo.views, strict=True):
        assert sorted(field.name for field in view.schema) == sorted(d.FEATURE_GROUPS[group])
    names = [field.name for view in repo.views for field in view.schema]
    assert sorted(names) == sorted(FEATURE_NAMES)
    assert repo.service.name == FEATURE_SERVICE_NAME == "node_features_v1"
    assert [view.name for view in repo.views] == [d.feature_view_name(g) for g in d.GROUPS]
    assert repo.entity.join_key == "node"
    assert repo.source.path == str(tmp_path / "table.parquet")
    assert repo.views[0].ttl.total_seconds() == d.FEATURE_TTL_SECONDS


def test_rendered_repository_has_absolute_paths_and_a_definitions_module(tmp_path):
    home = feast_store.render_feature_repo(tmp_path / "repo", tmp_path / "t.parquet")
    config = yaml.safe_load((home / "feature_store.yaml").read_text())
    assert config["registry"]["path"] == str(home / "data" / "registry.db")
    assert config["online_store"] == {"type": "sqlite", "path": str(home / "data/online_store.db")}
    module = (home / feast_store.GENERATED_MODULE).read_text()
    assert repr(str((tmp_path / "t.parquet").resolve())) in module
    assert f"{FEATURE_SERVICE_NAME} = _repo.service" in module
    compile(module, "generated", "exec")
    redis = feast_store.render_feature_repo(
        tmp_path / "repo", tmp_path / "t.parquet", online_store="redis://h:7000/2"
    )
    config = yaml.safe_load((redis / "feature_store.yaml").read_text())
    assert config["online_store"] == {"type": "redis", "connection_string": "h:7000,db=2"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("sqlite", None),
        ("redis://127.0.0.1:6379", {"type": "redis", "connection_string": "127.0.0.1:6379"}),
        (
            "redis://:s3cret@redis.example:6380/1",
            {"type": "redis", "connection_string": "redis.example:6380,db=1,password=s3cret"},
        ),
        (
            {"type": "redis", "connection_string": "x:1"},
            {"type": "redis", "connection_string": "x:1"},
        ),
    ],
)
def test_online_store_specs(spec, expected):
    assert feast_store.online_store_config(spec) == expected


@pytest.mark.parametrize("spec", ["postgres://x", "redis://", "redis://h:1/zero", {"path": "x"}])
def test_bad_online_store_specs_are_rejected(spec):
    with pytest.raises(MlschedError):
        feast_store.online_store_config(spec)


def test_apply_needs_an_existing_table(tmp_path):
    with pytest.raises(MlschedError, match="no feature table"):
        feast_store.apply_feature_repo(tmp_path / "repo", tmp_path / "missing.parquet")
    with pytest.raises(MlschedError, match="feature_store.yaml"):
        feast_store.open_feature_store(tmp_path / "nothing")


def test_refresher_keeps_the_last_good_snapshot_and_stops():
    calls = []
    fail = threading.Event()
    read = threading.Event()

    def reader(store, nodes):
        calls.append(list(nodes))
        read.set()
        if fail.is_set():
            raise RuntimeError("store down")
        return pd.DataFrame({"n": [len(calls)]})

    refresher = feast_store.NodeStateRefresher(object(), ["a", "b"], 0.01, reader=reader)
    assert refresher.snapshot is None and refresher.age_seconds is None
    with refresher:
        assert read.wait(5)
        while refresher.refreshes < 3:
            read.clear()
            assert read.wait(5)
        fail.set()
        read.clear()
        assert read.wait(5)
        read.clear()
        assert read.wait(5)
    assert not refresher.running
    assert isinstance(refresher.last_error, RuntimeError)
    assert refresher.snapshot is not None  # the last good snapshot is kept
    assert calls[0] == ["a", "b"]
    count = len(calls)
    threading.Event().wait(0.05)
    assert len(calls) == count  # stopped means no more reads
    with pytest.raises(MlschedError):
        feast_store.NodeStateRefresher(object(), [], 0)
