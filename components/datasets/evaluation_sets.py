"""Real-trace evaluation sets: what ``--evaluation-data`` names, checked before anything runs,
and read into the node-metrics contract (with anomaly labels where the set has them).

A specification is a comma-separated list of items, each either the name of a shared real
trace (:data:`NAMED_SETS`, read from ``$MLSCHED_SHARED_DATA``, else ``../shared/data`` beside
the project) or a folder: one of those traces' own folders (recognised by their files), or a
node-metrics data set (``node_metrics`` file or folder, optional ``anomaly_labels.json``, as
``mlsched generate`` writes). CPU-only sources (NAB, fastStorage, node metrics whose memory is
all zero) evaluate CPU alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.contracts import (
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    AnomalyLabels,
    read_anomaly_labels,
    read_node_metrics,
)
from components.errors import MlschedError

SHARED_DATA_ENV = "MLSCHED_SHARED_DATA"
FLAG = "--evaluation-data"
LABELS_FILE = "anomaly_labels.json"
NODE_METRICS_NAMES = ("node_metrics", "node_metrics.parquet", "node_metrics.csv")
# The issue-16 protocol on Rnd: the 60 most active VMs over the first 30 days.
RND_TOP_VMS = 60
RND_DAYS = 30.0


def shared_data_root() -> Path:
    """``$MLSCHED_SHARED_DATA``, else ``../shared/data`` relative to the project root."""
    configured = os.environ.get(SHARED_DATA_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class EvaluationSet:
    """One item of a specification: its label (for metric names and reasons), kind and path."""

    label: str
    kind: str
    path: Path


@dataclass
class EvaluationTrace:
    """A set read into the contracts: metrics, labels (None when it has none), resources."""

    label: str
    metrics: pd.DataFrame
    labels: AnomalyLabels | None
    resources: tuple[str, ...]


@dataclass(frozen=True)
class TraceKind:
    """A real trace's folder name under the shared data and the file that identifies it."""

    folder: str
    marker: str
    read: Callable[[Path], tuple[pd.DataFrame, AnomalyLabels | None]]
    resources: tuple[str, ...]


def _read_rnd(path: Path):
    from components.datasets.bitbrains_rnd import read_bitbrains_rnd

    return read_bitbrains_rnd(path, top=RND_TOP_VMS, days=RND_DAYS), None


def _read_faststorage(path: Path):
    from components.datasets.bitbrains import read_bitbrains

    return read_bitbrains(path), None


def _read_nab(path: Path):
    from components.datasets.nab import read_nab

    return read_nab(path)


NAMED_SETS: dict[str, TraceKind] = {
    "bitbrains-rnd": TraceKind(
        "bitbrains-rnd-500vm", "usage.parquet", _read_rnd, ("cpu", "memory")
    ),
    "bitbrains-faststorage": TraceKind(
        "bitbrains-faststorage-50vm", "trace.parquet", _read_faststorage, ("cpu",)
    ),
    "nab-ec2-cpu": TraceKind("nab-ec2-cpu", "anomaly_windows.json", _read_nab, ("cpu",)),
}
NODE_METRICS_KIND = "node-metrics"


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("_") or "trace"


def _node_metrics_source(folder: Path) -> Path | None:
    return next((folder / n for n in NODE_METRICS_NAMES if (folder / n).exists()), None)


def _folder_set(item: str) -> EvaluationSet:
    folder = Path(item)
    if not folder.is_dir():
        names = ", ".join(NAMED_SETS)
        raise MlschedError(
            f"{FLAG} {item!r}: neither a named real-trace set ({names}) nor a folder"
        )
    for name, kind in NAMED_SETS.items():
        if (folder / kind.marker).is_file():
            return EvaluationSet(_label(folder.name), name, folder)
    if _node_metrics_source(folder) is not None:
        return EvaluationSet(_label(folder.name), NODE_METRICS_KIND, folder)
    markers = ", ".join(f"{k.marker} ({name})" for name, k in NAMED_SETS.items())
    raise MlschedError(f"{FLAG} {folder}: holds none of {markers} or node_metrics[.parquet|.csv]")


def parse_evaluation_data(spec: str, root: Path | None = None) -> list[EvaluationSet]:
    """The sets a specification names (see the module docstring), each checked to exist.

    Raises:
        MlschedError: one line naming the item, the path and what is missing.
    """
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise MlschedError(f"{FLAG}: empty; give a named real-trace set or a folder")
    root = root or shared_data_root()
    sets = []
    for item in items:
        if item in NAMED_SETS:
            folder = root / NAMED_SETS[item].folder
            if not (folder / NAMED_SETS[item].marker).is_file():
                raise MlschedError(
                    f"{FLAG} {item}: {folder / NAMED_SETS[item].marker} not found "
                    f"(the shared real traces; set ${SHARED_DATA_ENV} to their folder)"
                )
            sets.append(EvaluationSet(item, item, folder))
        else:
            sets.append(_folder_set(item))
    labels = [s.label for s in sets]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise MlschedError(f"{FLAG}: {', '.join(duplicated)} given more than once")
    return sets


def load_evaluation_set(evaluation_set: EvaluationSet) -> EvaluationTrace:
    """Read a set into node metrics (and labels); CPU-only sources evaluate CPU alone."""
    if evaluation_set.kind in NAMED_SETS:
        kind = NAMED_SETS[evaluation_set.kind]
        metrics, labels = kind.read(evaluation_set.path)
        return EvaluationTrace(evaluation_set.label, metrics, labels, kind.resources)
    metrics = read_node_metrics(_node_metrics_source(evaluation_set.path))
    memory = metrics[MEMORY_UTILIZATION]
    # A source without memory use (all missing or all zero, as fastStorage's) evaluates CPU.
    cpu_only = memory.isna().all() or bool((memory.fillna(0.0) == 0.0).all())
    resources = ("cpu",) if cpu_only else ("cpu", "memory")
    labels_file = evaluation_set.path / LABELS_FILE
    labels = read_anomaly_labels(labels_file) if labels_file.is_file() else None
    return EvaluationTrace(evaluation_set.label, metrics, labels, resources)


def available_sets(root: Path | None = None) -> list[str]:
    """The named sets present under ``root`` (default :func:`shared_data_root`)."""
    root = root or shared_data_root()
    return [
        name for name, kind in NAMED_SETS.items() if (root / kind.folder / kind.marker).is_file()
    ]


def read_sample(
    name: str, root: Path | None = None, *, series: int | None = None, days: float | None = None
) -> EvaluationTrace:
    """A named set cut to its first ``days`` days and, of those, its ``series`` most active
    series (by mean CPU): a quick look (the gate reads the sets as :data:`NAMED_SETS` says).

    Raises:
        MlschedError: ``name`` is not a named set or is absent under ``root``.
    """
    from components.datasets.bitbrains_rnd import most_active, read_bitbrains_rnd

    if name not in NAMED_SETS:
        raise MlschedError(f"{name!r}: not a named real-trace set ({', '.join(NAMED_SETS)})")
    (evaluation_set,) = parse_evaluation_data(name, root)
    if name == "bitbrains-rnd":  # 11.9 M rows: its reader cuts them before anything else
        metrics, labels = read_bitbrains_rnd(evaluation_set.path, top=series, days=days), None
    else:
        metrics, labels = NAMED_SETS[name].read(evaluation_set.path)
        if days is not None:
            end = metrics[TIMESTAMP].min() + pd.Timedelta(days=days)
            metrics = metrics[metrics[TIMESTAMP] < end]
        if series is not None:
            metrics = most_active(metrics, series)
        metrics = metrics.reset_index(drop=True)
    if labels is not None:
        kept = set(metrics[NODE].unique())
        labels = {node: windows for node, windows in labels.items() if node in kept}
    return EvaluationTrace(name, metrics, labels, NAMED_SETS[name].resources)
