"""The glue behind the pipeline components: plain functions, testable without KFP.

Each KFP component in this package is a thin wrapper that imports one of these and passes its
artifact paths and parameters through. Model training runs the same ``python -m`` entrypoints
as Katib trials and parses their ``metric=value`` lines.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import MlschedError

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAMES = {
    "forecaster": "node-load-forecaster",
    "anomaly": "node-anomaly-detector",
    "placement": "placement-dqn",
}
ENTRYPOINTS = {
    "forecaster": "components.forecast.train",
    "anomaly": "components.anomaly.train",
    "placement": "components.placement.dqn.train",
}
EXPERIMENTS = {
    "forecaster": "katib/forecaster.yaml",
    "anomaly": "katib/anomaly.yaml",
    "placement": "katib/placement-dqn.yaml",
}
_METRIC_LINE = re.compile(r"^([\w|-]+)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[Ee][+-]?\d+)?|nan|inf)$")
NOT_BASELINES = ("validation", "train", "training", "test", "best_heuristic")
_INFO_LINE = re.compile(r"^([a-z_]+)(?:: |=)(\S.*)$")
# Per model: the gate metric, whether higher is better, and the printed baselines' names
# (group 1 of the pattern names the baseline).
GATE_METRICS = {
    "forecaster": ("validation_mae", False, r"^(persistence|seasonal_naive)_mae$"),
    "anomaly": ("event_f1", True, r"^(baseline)_event_f1$"),
    "placement": ("overload_node_minutes", False, r"^(.+)_overload_node_minutes$"),
}


def without_none(value: Any) -> Any:
    """``value`` with every ``None`` dropped from dicts and lists (KFP parameters reject None)."""
    if isinstance(value, Mapping):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [without_none(v) for v in value if v is not None]
    return value


# --------------------------------------------------------------------------- data path


def _replace(source_writer, target: Path) -> None:
    """Write into a temporary sibling with ``source_writer(tmp)``, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        source_writer(temporary)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(temporary, target)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()


def import_node_metrics(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a node-metrics data set (file or day-partitioned folder) as it is.

    The copy is not parsed: judging the rows is the validation gate's job.
    """
    source, target = Path(source), Path(target)
    if not source.exists():
        raise MlschedError(f"{source}: no node metrics there (node_metrics_path)")
    if source.is_dir():
        _replace(lambda tmp: shutil.copytree(source, tmp), target)
    else:
        _replace(lambda tmp: (tmp.mkdir(), shutil.copy2(source, tmp / source.name)), target)
    return target


def collect_step(
    output: str | os.PathLike,
    *,
    node_metrics_path: str = "",
    prometheus_url: str = "",
    start: str = "",
    end: str = "",
    step_seconds: int = 30,
) -> dict[str, Any]:
    """The pipeline's data source: a given node-metrics path, else a Prometheus collection."""
    from components.contracts import read_node_metrics

    output = Path(output)
    if node_metrics_path:
        import_node_metrics(node_metrics_path, output)
        source = node_metrics_path
    elif prometheus_url:
        from components.collect.collect import collect_node_metrics

        if not start or not end:
            raise MlschedError("collect: start and end are required with prometheus_url")
        report = collect_node_metrics(
            prometheus_url, start, end, step_seconds, output, progress=False
        )
        print(report.summary())
        source = prometheus_url
    else:
        raise MlschedError("collect: give node_metrics_path or prometheus_url")
    files = sorted(p for p in output.rglob("*") if p.is_file())
    summary = {"source": source, "files": len(files)}
    try:
        frame = read_node_metrics(output)
    except MlschedError as error:
        print(f"collect: the data does not read cleanly (the gate will judge it): {error}")
        return summary
    return {
        **summary,
        "rows": len(frame),
        "nodes": int(frame["node"].nunique()),
        "start": frame["timestamp"].min().isoformat(),
        "end": frame["timestamp"].max().isoformat(),
    }


def validate_step(
    metrics_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    thresholds_path: str = "",
    reference_time: str = "",
) -> dict[str, Any]:
    """Run the Great Expectations gate; returns its verdict and where its outputs are."""
    from data_validation.gate import run_validation
    from data_validation.thresholds import load_thresholds

    thresholds = load_thresholds(thresholds_path or None)
    report = run_validation(metrics_path, output_dir, thresholds, reference_time or None)
    print(report.format())
    return {
        "success": bool(report.success),
        "success_rate": float(report.success_rate),
        "evaluated_expectations": int(report.evaluated_expectations),
        "successful_expectations": int(report.successful_expectations),
        "failures": [f.message for f in report.failures],
        "result_path": str(report.result_path),
        "data_docs_index": str(report.data_docs_index) if report.data_docs_index else "",
        "summary": report.format(),
    }


def gate_failure_message(validation_dir: str | os.PathLike) -> str:
    """Why the gate stopped the run, from the validation folder's result JSON."""
    result = Path(validation_dir) / "validation_result.json"
    try:
        document = json.loads(result.read_text())
    except (OSError, json.JSONDecodeError):
        return f"the node-metrics gate failed (no readable {result})"
    failures = document.get("failures") or document.get("failed_expectations") or []
    lines = [
        f"the node-metrics gate failed: success rate {document.get('success_rate', 'n/a')}; "
        "no model is trained on this data"
    ]
    for failure in failures[:20]:
        lines.append(
            f"  - {failure.get('message', failure) if isinstance(failure, dict) else failure}"
        )
    lines.append(f"  details: {result}")
    return "\n".join(lines)


def features_step(
    metrics_path: str | os.PathLike,
    table_path: str | os.PathLike,
    feast_home: str | os.PathLike | None,
    *,
    online_store: str = "",
) -> dict[str, Any]:
    """Feature table plus Feast apply and materialise."""
    from components.features.cli import build_features

    report = build_features(
        Path(metrics_path),
        Path(table_path),
        Path(feast_home) if feast_home else None,
        online_store=online_store or None,
    )
    print(report.summary())
    return {
        "rows": report.rows,
        "nodes": report.nodes,
        "features": report.features,
        "materialized_until": report.materialized_until or "",
        "online_store": report.online_store,
        **{f"{k}_seconds": round(v, 3) for k, v in report.seconds.items()},
    }


def drift_step(
    metrics_path: str | os.PathLike, report_path: str | os.PathLike, *, config_path: str = ""
) -> dict[str, Any]:
    """Compare the training window with the last day; write the report JSON."""
    from components.contracts import read_node_metrics
    from components.drift import detect_drift, load_drift_config, write_drift_report

    report = detect_drift(read_node_metrics(metrics_path), load_drift_config(config_path or None))
    write_drift_report(report, report_path)
    print(report.summary())
    return report.to_dict()


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EntrypointResult:
    """What a training entrypoint printed: ``metric=value`` and ``key: value`` lines."""

    module: str
    argv: list[str]
    metrics: dict[str, float]
    info: dict[str, str]
    stdout: str = field(repr=False)


def hyperparameter_flags(params: Mapping[str, Any]) -> list[str]:
    """``{"max-depth": 6.0}`` -> ``["--max-depth=6"]`` (KFP passes numbers as floats)."""
    flags = []
    for name, value in params.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        flags.append(f"--{name}={value}")
    return flags


def run_entrypoint(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    cwd: str | os.PathLike | None = None,
) -> EntrypointResult:
    """Run ``python -m module args`` (streaming its output) and parse what it printed.

    Whole ``name=number`` lines are metrics (NaN ones are kept); ``key: value`` and non-numeric
    ``key=value`` lines are facts such as the run id and the registered version.

    Raises:
        MlschedError: the entrypoint failed; the message holds the end of its output.
    """
    argv = [python, "-m", module, *args]
    print("$ " + " ".join(argv[1:]), flush=True)
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    status = process.wait()
    stdout = "".join(lines)
    if status != 0:
        tail = "".join(lines[-15:])
        raise MlschedError(f"{module} failed with exit status {status}:\n{tail}")
    metrics = {}
    info = {}
    for line in lines:
        number = _METRIC_LINE.match(line.strip())
        if number:
            metrics[number.group(1)] = float(number.group(2))
        match = _INFO_LINE.match(line.strip())
        if match:
            info[match.group(1)] = match.group(2)
    return EntrypointResult(module, list(args), metrics, info, stdout)


def baseline_comparison(
    metrics: Mapping[str, float], metric: str, higher_is_better: bool, baseline_pattern: str
) -> dict:
    """The model's ``metric`` beside every baseline figure it printed.

    Args:
        baseline_pattern: regex of the baselines' metric names; group 1 is the baseline's name.
    """
    model = _finite(metrics.get(metric))
    baselines = {}
    for name, value in metrics.items():
        match = re.match(baseline_pattern, name)
        if name == metric or match is None or match.group(1) in NOT_BASELINES:
            continue
        if _finite(value) is not None:
            baselines[match.group(1)] = value
    beats = None
    if model is not None and baselines:
        compare = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
        beats = all(compare(model, b) for b in baselines.values())
    return {"metric": metric, "model": model, "baselines": baselines, "beats_baselines": beats}


def data_flags(kind: str, paths: Mapping[str, str]) -> list[str]:
    """The data flags of a model's entrypoint, from the pipeline's paths.

    They come after a Katib template's own (cluster) paths, so they win in argparse.
    """
    needed = {
        "forecaster": (("node_metrics", "--metrics"),),
        "anomaly": (("node_metrics", "--metrics"), ("labels", "--labels")),
        "placement": (("workload", "--workload"), ("nodes", "--nodes")),
    }[kind]
    missing = [key for key, _ in needed if not paths.get(key)]
    if missing:
        raise MlschedError(f"{kind}: the pipeline needs {', '.join(missing)} path(s)")
    return [f"{flag}={paths[key]}" for key, flag in needed]


def train_step(
    kind: str,
    paths: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    tracking_uri: str,
    register: bool,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Train one model through its entrypoint; returns metrics, model pointer and comparison."""
    args = [*data_flags(kind, paths), *hyperparameter_flags(hyperparameters), *extra_args]
    args.append(f"--tracking-uri={tracking_uri}")
    if register:
        args.append("--register")
    result = run_entrypoint(ENTRYPOINTS[kind], args)
    evaluation = baseline_comparison(result.metrics, *GATE_METRICS[kind])
    evaluation["model_name"] = MODEL_NAMES[kind]
    model = {
        "model_name": MODEL_NAMES[kind],
        "tracking_uri": tracking_uri,
        **{k: result.info[k] for k in ("model_uri",) if k in result.info},
    }
    run_id = result.info.get("run_id") or result.info.get("mlflow_run_id")
    if run_id:
        model["run_id"] = evaluation["run_id"] = run_id
    for key in ("registered_version", "promoted", "gate_reason", "promotion_reason"):
        if key in result.info:
            model[key] = result.info[key]
            evaluation[key] = result.info[key]
    return {"metrics": result.metrics, "model": model, "evaluation": without_none(evaluation)}


def promotion_report(tracking_uri: str, evaluations: Mapping[str, Mapping[str, Any]]) -> dict:
    """Registry state per model after the run: this run's candidate, promoted, champion."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    state = registry_state(client, [MODEL_NAMES[k] for k in evaluations])
    report = {}
    for kind, evaluation in evaluations.items():
        name = MODEL_NAMES[kind]
        candidate = evaluation.get("registered_version")
        if candidate is None and evaluation.get("run_id"):
            found = client.search_model_versions(
                f"name = '{name}' and run_id = '{evaluation['run_id']}'"
            )
            candidate = found[0].version if found else None
        promoted = evaluation.get("promoted")
        report[kind] = {
            "model_name": name,
            "candidate_version": None if candidate is None else str(candidate),
            "promoted": None if promoted is None else str(promoted).lower() in ("1", "true"),
            **state[name],
        }
    return without_none(report)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def tune_step(
    kind: str,
    *,
    tracking_uri: str,
    max_trials: int,
    trial_args: Sequence[str],
    parallel: int = 1,
    experiment_path: str = "",
) -> dict[str, Any]:
    """Run the model's Katib Experiment locally; returns the best parameters."""
    from components.tracking.runs import get_or_create_experiment, open_tracking
    from components.tune.experiment import load_experiment
    from components.tune.local import run_local_tune

    experiment = load_experiment(experiment_path or REPO_ROOT / EXPERIMENTS[kind])
    client = open_tracking(tracking_uri, default_dir=Path("mlflow"))
    experiment_id = get_or_create_experiment(client, f"katib-{experiment.name}")
    result = run_local_tune(
        experiment,
        client=client,
        mlflow_experiment_id=experiment_id,
        max_trials=max_trials,
        parallel=parallel,
        extra_args=trial_args,
        progress=False,
    )
    print(result.summary())
    if result.best_value is None:
        raise MlschedError(f"tuning {experiment.name}: no trial succeeded")
    return result.best_params


def registry_state(client, model_names: Sequence[str], alias: str = "champion") -> dict[str, Any]:
    """Latest version and the ``alias`` version of each registered model."""
    from mlflow.exceptions import MlflowException

    from components.tracking.gate import alias_version

    state: dict[str, Any] = {}
    for name in model_names:
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            versions = []
        champion = alias_version(client, name, alias)
        latest = max((int(v.version) for v in versions), default=None)
        state[name] = {"versions": len(versions), "latest": latest, alias: champion}
    return state


def evaluation_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One table of every model's figure against its baselines."""
    lines = [
        "| model | metric | model value | baselines | beats baselines |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        baselines = ", ".join(f"{k} {v:.4g}" for k, v in result.get("baselines", {}).items())
        model = result.get("model")
        shown = "n/a" if model is None else f"{model:.4g}"
        baselines = baselines or "n/a"
        beats = result.get("beats_baselines", "n/a")
        lines.append(f"| {name} | {result['metric']} | {shown} | {baselines} | {beats} |")
    return "\n".join(lines) + "\n"


def render_serving_step(
    tracking_uri: str, output_dir: str | os.PathLike, *, image: str, namespace: str
) -> list[str]:
    """InferenceService manifests for every model that has a champion."""
    from mlflow import MlflowClient

    from serving.manifests import ServiceOptions, champion_uri, write_manifests

    client = MlflowClient(tracking_uri)
    uris = {}
    for name in MODEL_NAMES.values():
        try:
            uris[name] = champion_uri(client, name)
        except MlschedError as error:
            print(f"render: skipped {name}: {error}")
    options = ServiceOptions(namespace=namespace, image=image)
    written = write_manifests(uris, output_dir, options=options)
    return [str(Path(p).relative_to(output_dir)) for p in written]
