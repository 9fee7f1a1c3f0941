"""Run a pipeline locally with kfp.local (subprocesses in this environment) or on a cluster."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import warnings
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


class QuietExecutorLogs(io.TextIOBase):
    """kfp.local's console output without its noise, passed on to ``stream`` line by line.

    Dropped: the KFP executor's JSON dump of every task's input (``Got executor_input:``, up to
    its closing brace) and Great Expectations' ``Skipping registering function`` lines; the
    tasks' own output, kfp.local's task status lines and any error stay.
    """

    def __init__(self, stream: io.TextIOBase):
        self.stream = stream
        self._pending = ""
        self._skipping = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if self._keep(line):
                self.stream.write(line + "\n")
        return len(text)

    def _keep(self, line: str) -> bool:
        if self._skipping and line.startswith("    "):  # the dump is indented; anything else
            self._skipping = line.rstrip() != "    }"  # ends it, so no other line is lost
            return False
        self._skipping = False
        if line.rstrip().endswith("]: Got executor_input:"):
            self._skipping = True
            return False
        return "]: Skipping registering function " not in line

    def flush(self) -> None:
        if self._pending and not self._skipping:
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()


@contextlib.contextmanager
def _quiet_kfp_local():
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(QuietExecutorLogs(sys.stdout)) as out,
    ):
        warnings.filterwarnings("ignore", message=r"Task '.*': settings \['display_name'\]")
        warnings.filterwarnings("ignore", message=r"You may be attemping to run a task that uses")
        try:
            yield
        finally:
            out.flush()


def run_local(
    name: str,
    arguments: dict[str, Any],
    *,
    pipeline_root: str | os.PathLike = DEFAULT_PIPELINE_ROOT,
    image: str = DEFAULT_IMAGE,
    verbose: bool = False,
) -> LocalRun:
    """Run pipeline ``name`` with kfp.local's SubprocessRunner in this Python environment.

    Args:
        verbose: print kfp.local's output whole (otherwise :class:`QuietExecutorLogs` filters it).

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
        with contextlib.nullcontext() if verbose else _quiet_kfp_local():
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
