"""The Feast repository definitions and helpers that need no running store."""

from __future__ import annotations

import pytest
import yaml

from components.errors import MlschedError
from components.features import FEATURE_NAMES, FEATURE_SERVICE_NAME
from components.features import definitions as d

feast_store = pytest.importorskip("components.features.feast_store")
feast_definitions = pytest.importorskip("components.features.feast_definitions")


def test_feast_views_are_built_from_the_one_feature_definition(tmp_path):
    repo = feast_definitions.build_definitions(tmp_path / "table.parquet")
    for group, view in zip(d.GROUPS, repo.views, strict=True):
        assert sorted(field.name for field in view.schema) == sorted(d.FEATURE_GROUPS[group])
    names = [field.name for view in repo.views for field in view.schema]
    assert sorted(names) == sorted(FEATURE_NAMES)
    assert repo.service.name == FEATURE_SERVICE_NAME == "node_features_v1"
    assert [view.name for view in repo.views] == [d.feature_view_name(g) for g in d.GROUPS]
    assert repo.entity.join_key == "node"
    assert repo.source.path == str(tmp_path / "table.parquet")
    assert repo.views[0].ttl.total_seconds() == d.FEATURE_TTL_SECONDS


def test_store_config_is_the_repository_yaml_with_its_files_moved_when_asked(tmp_path):
    repository = yaml.safe_load((feast_store.FEATURE_REPO / "feature_store.yaml").read_text())
    default = feast_store.feature_store_config()
    assert default.project == repository["project"] == "mlsched"
    assert default.repo_path == feast_store.FEATURE_REPO
    data = feast_store.FEATURE_REPO.parent / "data" / "feast"
    assert default.registry.path == str(data / "registry.db")
    assert default.online_store.path == str(data / "online_store.db")
    moved = feast_store.feature_store_config(tmp_path / "home")
    assert moved.registry.path == str(tmp_path / "home" / "registry.db")
    assert moved.online_store.path == str(tmp_path / "home" / "online_store.db")
    redis = feast_store.feature_store_config(tmp_path, online_store="redis://h:7000/2")
    assert (redis.online_store.type, redis.online_store.connection_string) == (
        "redis",
        "h:7000,db=2",
    )


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
    with pytest.raises(MlschedError, match="no Feast registry"):
        feast_store.open_feature_store(tmp_path / "nothing")
