"""The Feast objects of the node features: entity ``node``, one feature view per feature group
over the parquet feature table, and the versioned feature service ``node_features_v1``; with an
anomaly feature table, also the view ``node_anomaly_features`` over it (the anomaly detector's
own features, :mod:`components.features.anomaly_group`; not part of the service).

The one builder of these objects: ``feature_repo/node_features.py`` (what ``feast apply`` registers
from the Feast repository) and :func:`components.features.feast_store.apply_feature_repo` both call
:func:`build_definitions`. The feature list comes from :mod:`components.features.definitions`, the
registry the feature computation writes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

from components.contracts import NODE, TIMESTAMP
from components.features.anomaly_group import (
    ANOMALY_GROUP,
    ANOMALY_SOURCE_NAME,
    ANOMALY_VIEW,
    anomaly_feature_names,
)
from components.features.definitions import (
    FEATURE_SERVICE_NAME,
    FEATURE_SET_VERSION,
    FEATURE_TTL_SECONDS,
    FEATURES,
    GROUPS,
    feature_view_name,
)

FEATURE_TTL = timedelta(seconds=FEATURE_TTL_SECONDS)
SOURCE_NAME = "node_features_table"


@dataclass(frozen=True)
class NodeFeatureRepo:
    """The Feast objects of the node features."""

    entity: Entity
    source: FileSource
    views: tuple[FeatureView, ...]
    service: FeatureService
    anomaly_source: FileSource | None = None
    anomaly_view: FeatureView | None = None

    def objects(self) -> list:
        extra = [self.anomaly_source, self.anomaly_view] if self.anomaly_view is not None else []
        return [self.entity, self.source, *self.views, self.service, *extra]


def build_definitions(
    table_path: str | os.PathLike,
    *,
    ttl: timedelta = FEATURE_TTL,
    anomaly_table_path: str | os.PathLike | None = None,
) -> NodeFeatureRepo:
    """The entity, source, feature views and service over the feature table at ``table_path``,
    and the anomaly source and view over ``anomaly_table_path`` when given."""
    node = Entity(
        name=NODE,
        join_keys=[NODE],
        value_type=ValueType.STRING,
        description="a Kubernetes node, by name",
    )
    source = FileSource(
        name=SOURCE_NAME,
        path=str(table_path),
        timestamp_field=TIMESTAMP,
        description="node features computed by components.features.compute_node_features",
    )
    tags = {"feature_set_version": str(FEATURE_SET_VERSION)}
    views = tuple(
        FeatureView(
            name=feature_view_name(group),
            entities=[node],
            ttl=ttl,
            schema=[
                Field(name=f.name, dtype=Float32, description=f.description)
                for f in FEATURES
                if f.group == group
            ],
            source=source,
            online=True,
            description=f"node features of the group '{group}'",
            tags={**tags, "group": group},
        )
        for group in GROUPS
    )
    service = FeatureService(
        name=FEATURE_SERVICE_NAME,
        features=list(views),
        description="every node feature, version 1 of the feature set",
        tags=tags,
    )
    if anomaly_table_path is None:
        return NodeFeatureRepo(node, source, views, service)
    anomaly_source = FileSource(
        name=ANOMALY_SOURCE_NAME,
        path=str(anomaly_table_path),
        timestamp_field=TIMESTAMP,
        description="anomaly detector features computed by components.features.anomaly_group",
    )
    anomaly_view = FeatureView(
        name=ANOMALY_VIEW,
        entities=[node],
        ttl=ttl,
        schema=[
            Field(name=name, dtype=Float32, description="anomaly detector feature")
            for name in anomaly_feature_names()
        ],
        source=anomaly_source,
        online=True,
        description="the anomaly detector's own features (components.features.anomaly_statistics)",
        tags={**tags, "group": ANOMALY_GROUP},
    )
    return NodeFeatureRepo(node, source, views, service, anomaly_source, anomaly_view)
