"""Where served models come from: the MLflow registry (``models:/<name>@champion``) or a folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from components.errors import MlschedError
from components.model_contracts import CHAMPION_ALIAS

T = TypeVar("T")
CHAMPION = CHAMPION_ALIAS


def registry_uri(name: str, alias: str = CHAMPION) -> str:
    """The MLflow registry URI of a registered model's alias: ``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def is_local(source: str | os.PathLike) -> bool:
    """True for a filesystem path (or ``file://`` URI), False for an MLflow/remote URI."""
    text = str(source)
    return (
        text.startswith("file://")
        or "://" not in text
        and not text.startswith(("models:/", "runs:/", "mlflow-artifacts:/"))
    )


def find_folder(root: Path, *markers: str) -> Path:
    """``root`` or the first folder below it holding every file in ``markers``.

    Raises:
        MlschedError: no such folder.
    """
    if all((root / marker).is_file() for marker in markers):
        return root
    for candidate in sorted(root.rglob(markers[0])):
        folder = candidate.parent
        if all((folder / marker).is_file() for marker in markers):
            return folder
    raise MlschedError(f"{root}: no folder holds {', '.join(markers)}")


def load_via_local_copy(
    source: str | os.PathLike,
    loader: Callable[[Path], T],
    *,
    tracking_uri: str | None = None,
) -> T:
    """``loader(path)`` on ``source`` itself when local, else on a temporary download of it.

    The download uses ``tracking_uri`` explicitly (nothing global is set); ``loader`` must read
    everything it needs into memory, since the copy is deleted afterwards.

    Raises:
        MlschedError: the path does not exist or the download fails.
    """
    if is_local(source):
        path = Path(str(source).removeprefix("file://"))
        if not path.exists():
            raise MlschedError(f"{path}: no such model file or folder")
        return loader(path)
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlsched-serving-") as tmp:
        try:
            uri = resolve_registry_uri(str(source), tracking_uri)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri
            )
        except (MlflowException, OSError) as error:
            where = f" from {tracking_uri}" if tracking_uri else ""
            raise MlschedError(f"{source}: cannot download the model{where}: {error}") from None
        return loader(Path(local))


def resolve_registry_uri(uri: str, tracking_uri: str | None = None) -> str:
    """The artifact location behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>``
    (other URIs unchanged), asking the registry at ``tracking_uri`` explicitly.

    Raises:
        MlflowException: the model, alias or version is not registered.
    """
    if not uri.startswith("models:/"):
        return uri
    from mlflow import MlflowClient

    name, sep, alias = uri.removeprefix("models:/").partition("@")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if sep:
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name, _, version = name.rpartition("/")
    return client.get_model_version_download_uri(name, version)
