"""Where the extender reads node state: :func:`feast_snapshot_source` reads the Feast online
store (the production source); :func:`file_snapshot_source` re-reads a parquet snapshot file
(tests, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.errors import MlschedError
from scheduler_client.predictions import SnapshotSource


def feast_snapshot_source(home: str | os.PathLike) -> SnapshotSource:
    """Snapshots from the Feast online store of ``feature_repo/`` applied in ``home`` (the folder
    of its registry and online store, e.g. ``mlsched features --feast-home``)."""
    from components.features.feast_store import open_feature_store, read_node_state_snapshot

    store = open_feature_store(home)
    return lambda nodes: read_node_state_snapshot(store, nodes)


def file_snapshot_source(path: str | os.PathLike) -> SnapshotSource:
    """Snapshots from a parquet file (``node`` index or column, feature columns), re-read when
    the file changes."""
    target = Path(path)
    cache: dict[str, Any] = {}

    def read(nodes: Sequence[str]) -> pd.DataFrame:
        stamp = target.stat().st_mtime_ns
        if cache.get("stamp") != stamp:
            frame = pd.read_parquet(target)
            if "node" in frame.columns:
                frame = frame.set_index("node")
            frame.index = frame.index.astype(str)
            cache.update(stamp=stamp, frame=frame)
        return cache["frame"].reindex(pd.Index(list(nodes), name="node"))

    if not target.is_file():
        raise MlschedError(f"{target}: no snapshot file")
    return read
