"""The skeleton every training entrypoint shares: its tracking flags, the MLflow run and model
registration, Katib's ``metric=value`` lines and the result file the pipeline reads.

Training registers candidates only: ``--register`` adds a model version and never moves the
``champion`` alias (the pipeline's promote stage does, after its evaluate stage compared the
candidate with the baselines and the champion on the same held-out data).

The result file (``--result-file``) holds the same keys for every model (``RESULT_KEYS``):
``value`` is the candidate's gate metric on the held-out data, ``baselines`` theirs on the same
data, ``metrics`` every figure printed, ``held_out`` what the model's ``score_model`` needs to
rebuild that data; the last four are null when not tracked or registered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import MlschedError
from components.model_contracts import ModelSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient

RESULT_KEYS = ("model_name", "kind", "metric", "higher_is_better", "value", "baselines")
RESULT_KEYS += ("metrics", "held_out", "tracking_uri", "run_id", "model_uri", "registered_version")

DEFAULT_LOCAL_STORE = Path("data/mlflow")
"""The one local MLflow store (SQLite + artifacts) of every command when no URI is given."""


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """``--tracking-uri`` and ``--local-store``: which MLflow store a command writes to (every
    command that tracks or registers takes these two)."""
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else --local-store)",
    )
    parser.add_argument(
        "--local-store",
        type=Path,
        default=DEFAULT_LOCAL_STORE,
        help="folder of the local SQLite store used when no tracking URI is given",
    )


def add_training_flags(parser: argparse.ArgumentParser, spec: ModelSpec) -> None:
    """The flags every training entrypoint takes, with the same names and defaults."""
    parser.add_argument("--seed", type=int, default=0)
    add_store_flags(parser)
    parser.add_argument("--experiment", default=spec.registered_name, help="MLflow experiment")
    parser.add_argument("--no-tracking", action="store_true", help="print metrics, log nothing")
    parser.add_argument(
        "--register",
        action="store_true",
        help=f"register a candidate version of {spec.registered_name} (never the champion)",
    )
    parser.add_argument("--result-file", type=Path, help="write the result JSON here")


def print_metric_lines(metrics: Mapping[str, Any], out=None) -> None:
    """Katib's StdOut collector format: one ``name=value`` line per figure."""
    out = out or sys.stdout
    for name, value in metrics.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{name}={shown}", file=out)


MLFLOW_BATCH_METRICS = 1000  # the most metrics MLflow takes in one log_batch


def log_metric_steps(
    client: MlflowClient, run_id: str, steps: Iterable[tuple[int, Mapping[str, float]]]
) -> None:
    """Log each ``(step, metrics)`` to ``run_id`` (None and non-finite values left out), in as
    few batches as MLflow takes: a learning curve is one call per thousand points, not one per
    episode."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    batch = [
        Metric(key, float(value), stamp, step)
        for step, metrics in steps
        for key, value in metrics.items()
        if value is not None and math.isfinite(float(value))
    ]
    for start in range(0, max(len(batch), 1), MLFLOW_BATCH_METRICS):
        client.log_batch(run_id, metrics=batch[start : start + MLFLOW_BATCH_METRICS])


@dataclass(frozen=True)
class TrackedRun:
    """One training run in an MLflow store: what it logs, and the candidate it registers."""

    client: MlflowClient
    run_id: str
    spec: ModelSpec

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        log_metric_steps(self.client, self.run_id, [(step, metrics)])

    def log_dict(self, document: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, document, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        from components.tracking.runs import log_figure

        log_figure(self.run_id, self.client, figure, artifact_file)

    def log_pyfunc_model(self, python_model, artifacts: dict[str, str], **kwargs) -> str:
        """Log an MLflow pyfunc model named ``model`` to this run; returns its model URI."""
        import mlflow

        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=python_model, artifacts=artifacts, **kwargs
            )
        return info.model_uri

    def log_folder(self, write_folder, artifact_path: str) -> str:
        """Log the folder ``write_folder(path)`` writes under ``artifact_path``; returns its URI."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_folder(Path(tmp) / artifact_path)
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)
        return f"{self.client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"

    def register(self, model_uri: str) -> str:
        """A new version of the spec's registered model; the ``champion`` alias stays put."""
        import mlflow
        from mlflow.exceptions import MlflowException

        name = self.spec.registered_name
        if model_uri.startswith("models:/"):  # a logged MLflow model
            return str(mlflow.register_model(model_uri, name).version)
        with contextlib.suppress(MlflowException):
            self.client.create_registered_model(name)
        return str(self.client.create_model_version(name, model_uri, run_id=self.run_id).version)


@contextlib.contextmanager
def tracked_run(
    args: argparse.Namespace, spec: ModelSpec, params: Mapping[str, Any], digest: str = ""
) -> Iterator[TrackedRun]:
    """Open the store the flags name and a run ``<kind>-seed<seed>`` with ``params`` logged;
    the run ends FINISHED, or FAILED when the body raises."""
    from mlflow.entities import Param, RunTag

    from components.tracking.runs import get_or_create_experiment, open_tracking, point_mlflow_at

    client = open_tracking(args.tracking_uri, default_dir=args.local_store)
    point_mlflow_at(client)
    experiment_id = get_or_create_experiment(client, args.experiment)
    run_id = client.create_run(experiment_id, run_name=f"{spec.kind}-seed{args.seed}").info.run_id
    tags = {"model_name": spec.registered_name, **({"dataset_digest": digest} if digest else {})}
    params = {**params, "seed": args.seed, **({"dataset_digest": digest} if digest else {})}
    client.log_batch(
        run_id,
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    status = "FAILED"
    try:
        yield TrackedRun(client, run_id, spec)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)


def training_result(
    spec: ModelSpec,
    *,
    value: float | None,
    baselines: Mapping[str, float | None],
    metrics: Mapping[str, Any],
    held_out: Mapping[str, Any],
    run: TrackedRun | None = None,
    model_uri: str | None = None,
    registered_version: str | None = None,
) -> dict[str, Any]:
    """The result document of a training run of ``spec`` (see the module doc)."""
    return {
        "model_name": spec.registered_name,
        "kind": spec.kind,
        "metric": spec.gate_metric,
        "higher_is_better": spec.higher_is_better,
        "value": _number(value),
        "baselines": {name: _number(v) for name, v in baselines.items()},
        "metrics": {k: (_number(v) if isinstance(v, float) else v) for k, v in metrics.items()},
        "held_out": dict(held_out),
        "tracking_uri": None if run is None else str(run.client.tracking_uri),
        "run_id": None if run is None else run.run_id,
        "model_uri": model_uri,
        "registered_version": registered_version,
    }


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def write_result_file(result: Mapping[str, Any], path: Path | None) -> None:
    """Write the result JSON (atomically) when the flags asked for it."""
    from components.atomic import write_text

    if path is not None:
        write_text(path, json.dumps(result, indent=2))


def read_result_file(path: str | os.PathLike) -> dict[str, Any]:
    """A training result file, checked for the keys every model writes."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise MlschedError(f"{path}: not a training result file ({error})") from None
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise MlschedError(f"{path}: training result lacks {', '.join(missing)}")
    return result


def run_entrypoint_main(prog: str, run, args: argparse.Namespace) -> int:
    """Run ``run(args)`` and turn a user error into one line on stderr and exit status 2."""
    try:
        if args.register and args.no_tracking:
            raise MlschedError("--register needs MLflow tracking (drop --no-tracking)")
        run(args)
    except MlschedError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
