"""Run a pipeline locally with kfp.local (subprocesses in this environment) or on a cluster."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import MlschedError
from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.compile import build_pipeline

DEFAULT_PIPELINE_ROOT = Path("build/pipeline_runs")


@dataclass(frozen=True)
class LocalRun:
    """Where a local run left its outputs."""

    pipeline: str
    run_dir: Path | None
    seconds: float
    outputs: dict[str, Any]


def synthetic_arguments(data_dir: str | os.PathLike) -> dict[str, str]:
    """Pipeline data arguments for a data set written by ``mlsched generate``."""
    from components.generate.synthetic import SyntheticDataset

    dataset = SyntheticDataset(Path(data_dir).resolve())
    paths = {
        "node_metrics_path": dataset.node_metrics,
        "labels_path": dataset.anomaly_labels,
        "workload_path": dataset.workload,
        "nodes_path": dataset.nodes,
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise MlschedError(
            f"{dataset.root}: not a complete generated data set (missing {', '.join(missing)}); "
            f"run `mlsched generate --output {data_dir}`"
        )
    return {key: str(path) for key, path in paths.items()}


def _newest_run_dir(root: Path, before: set[Path]) -> Path | None:
    runs = [p for p in root.iterdir() if p.is_dir() and p not in before] if root.is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def run_local(
    name: str,
    arguments: dict[str, Any],
    *,
    pipeline_root: str | os.PathLike = DEFAULT_PIPELINE_ROOT,
    image: str = DEFAULT_IMAGE,
) -> LocalRun:
    """Run pipeline ``name`` with kfp.local's SubprocessRunner in this Python environment.

    Raises:
        MlschedError: a task failed (the message names it; its log was printed above).
    """
    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
    )
    pipeline = build_pipeline(name, image)
    started = time.perf_counter()
    try:
        task = pipeline(**arguments)
    except RuntimeError as error:
        raise MlschedError(
            f"pipeline {name} failed after {time.perf_counter() - started:.0f}s: "
            f"{_plain(str(error))}"
        ) from None
    seconds = time.perf_counter() - started
    outputs = dict(getattr(task, "outputs", {}) or {})
    return LocalRun(name, _newest_run_dir(root, before), seconds, outputs)


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def run_remote(
    name: str,
    arguments: dict[str, Any],
    host: str,
    *,
    image: str = DEFAULT_IMAGE,
    experiment: str = "ml-scheduler",
    client=None,
) -> str:
    """Submit pipeline ``name`` to the Kubeflow Pipelines API at ``host``; returns the run id."""
    import kfp

    client = client or kfp.Client(host=host)
    result = client.create_run_from_pipeline_func(
        build_pipeline(name, image),
        arguments=arguments,
        experiment_name=experiment,
        run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    return result.run_id
