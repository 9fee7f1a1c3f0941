"""Opening an MLflow tracking store, dataset digests and figure logging."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "artifacts"


def local_tracking_uri(default_dir: Path) -> str:
    """The SQLite tracking URI of the local store under ``default_dir``."""
    return f"sqlite:///{(Path(default_dir) / LOCAL_DB).resolve()}"


def open_tracking(tracking_uri: str | None, *, default_dir: Path) -> MlflowClient:
    """A client of ``tracking_uri``, or of a local SQLite store under ``default_dir`` when None.

    Sets nothing globally; entrypoints call :func:`point_mlflow_at` with it.
    """
    if tracking_uri is None:
        Path(default_dir).mkdir(parents=True, exist_ok=True)
        tracking_uri = local_tracking_uri(Path(default_dir))
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def point_mlflow_at(client: MlflowClient) -> None:
    """Point mlflow's fluent API (runs, model logging, registration) at ``client``'s store, for
    tracking and registry alike: a registry URI left over in the environment would otherwise
    register models in another store than the one the gate reads. For entrypoints only."""
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client._registry_uri)


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing.

    For a local SQLite store, artifacts go beside the database (``<dir>/artifacts``) rather than
    into ``./mlruns`` of whatever the working directory is; a server decides for itself.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    uri = str(client.tracking_uri)
    if uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).parent / LOCAL_ARTIFACTS
        location = root.resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def dataset_digest(frame: pd.DataFrame) -> str:
    """A stable sha256 of a frame's content and column names/types: 16 hex characters."""
    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}:{dtype};".encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest.update(hashed.tobytes())
    return digest.hexdigest()[:16]


def log_figure(run_id: str, client: MlflowClient, figure, artifact_file: str) -> None:
    """Log a matplotlib figure as an artifact of ``run_id`` and close it."""
    import matplotlib.pyplot as plt

    try:
        client.log_figure(run_id, figure, artifact_file)
    finally:
        plt.close(figure)


__all__ = [
    "dataset_digest",
    "get_or_create_experiment",
    "local_tracking_uri",
    "log_figure",
    "open_tracking",
]
