"""The glue behind the pipeline components: plain functions, testable without KFP.

Each KFP component in this package is a thin wrapper that imports one of these and passes its
artifact paths and parameters through. Model training runs the same ``python -m`` entrypoints
as Katib trials and reads the result file each writes; the evaluate stage re-scores the champion
on the candidate's held-out data and the promote stage moves the ``champion`` alias.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.atomic import replace_path
from components.errors import MlschedError
from components.model_contracts import MODEL_SPECS, REGISTERED_MODELS

# --------------------------------------------------------------------------- data path


def import_node_metrics(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a node-metrics data set (file or day-partitioned folder) as it is.

    The copy is not parsed: judging the rows is the validation gate's job.
    """
    source, target = Path(source), Path(target)
    if not source.exists():
        raise MlschedError(f"{source}: no node metrics there (node_metrics_path)")
    if source.is_dir():
        return replace_path(target, lambda tmp: shutil.copytree(source, tmp))
    return replace_path(target, lambda tmp: shutil.copy2(source, tmp / source.name), folder=True)


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
) -> None:
    """Run ``python -m module args``, its output streamed to ours.

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
    if status != 0:
        tail = "".join(lines[-15:])
        raise MlschedError(f"{module} failed with exit status {status}:\n{tail}")


DATA_FLAGS = {  # per kind: (path, flag, required)
    "forecaster": (("node_metrics", "--metrics", True), ("features", "--features", False)),
    "anomaly": (("node_metrics", "--metrics", True), ("labels", "--labels", True)),
    "placement": (("workload", "--workload", True), ("nodes", "--nodes", True)),
}


def data_flags(kind: str, paths: Mapping[str, str]) -> list[str]:
    """The data flags of a model's entrypoint, from the pipeline's paths (the forecaster also
    reads the features artifact when there is one).

    They come after a Katib template's own (cluster) paths, so they win in argparse.
    """
    missing = [key for key, _, required in DATA_FLAGS[kind] if required and not paths.get(key)]
    if missing:
        raise MlschedError(f"{kind}: the pipeline needs {', '.join(missing)} path(s)")
    return [f"{flag}={paths[key]}" for key, flag, _ in DATA_FLAGS[kind] if paths.get(key)]


def train_step(
    kind: str,
    paths: Mapping[str, str],
    hyperparameters: Mapping[str, Any],
    tracking_uri: str,
    register: bool,
    result_file: str | os.PathLike,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Train one candidate through its entrypoint; returns the result file it wrote."""
    from components.tracking.entrypoint import read_result_file

    args = [*data_flags(kind, paths), *hyperparameter_flags(hyperparameters), *extra_args]
    args += [f"--tracking-uri={tracking_uri}", f"--result-file={result_file}"]
    if register:
        args.append("--register")
    run_entrypoint(MODEL_SPECS[kind].entrypoint, args)
    return read_result_file(result_file)


def evaluate_candidate_result(client, result: Mapping[str, Any], traces: Sequence | None = None):
    """The gate's decision on one training result: the candidate against its baselines and the
    current champion, the champion re-scored on the candidate's held-out data. A placement
    candidate with a model goes through the placement gate instead
    (:func:`components.placement.champion.placement_decision`: intervals over validation cells;
    a DQN that does not win is registered but not promoted, and the best heuristic is served).

    A candidate above one of its model's ``ceilings`` (the detector's point FPR) is not promoted.
    With ``traces`` (real-trace sets), a forecaster or anomaly candidate, its baselines and the
    champion are scored on them instead, and the ceilings hold there
    (:func:`~components.pipeline_steps.real_traces.real_trace_comparison`)."""
    import importlib

    from components.tracking.gate import evaluate_candidate

    if result["kind"] == "placement" and result.get("model_uri"):
        from components.placement.champion import placement_decision

        return placement_decision(client, result)
    spec = MODEL_SPECS[result["kind"]]
    score_model = importlib.import_module(spec.entrypoint).score_model
    value = result["value"]
    comparison = {
        "candidate": float("nan") if value is None else value,
        "baselines": {k: float("nan") if v is None else v for k, v in result["baselines"].items()},
        "score_champion": lambda uri: score_model(uri, result["held_out"]),
        "ceilings": {name: (result["metrics"].get(name), bound) for name, bound in spec.ceilings},
    }
    if traces:
        from components.pipeline_steps.real_traces import real_trace_comparison

        comparison.update(real_trace_comparison(client, result, traces))
    return evaluate_candidate(
        client,
        model_name=spec.registered_name,
        candidate_version=result["registered_version"] or "",
        metric=spec.gate_metric,
        higher_is_better=spec.higher_is_better,
        **comparison,
    )


def evaluate_step(
    results: Mapping[str, str | os.PathLike],
    tracking_uri: str,
    output: str | os.PathLike,
    *,
    require_beating_baselines: bool = False,
    evaluation_data: str = "",
) -> dict[str, dict[str, Any]]:
    """Decide on every candidate (see :func:`evaluate_candidate_result`); write the decisions.
    ``evaluation_data`` names real traces the forecaster and the detector are compared on
    (:mod:`components.datasets.evaluation_sets`; empty: their held-out data).

    Raises:
        MlschedError: with ``require_beating_baselines``, a candidate does not beat its
            baselines; a bad ``evaluation_data`` item.
    """
    from dataclasses import asdict

    from components.pipeline_steps.real_traces import load_evaluation_traces
    from components.tracking.entrypoint import DEFAULT_LOCAL_STORE, read_result_file
    from components.tracking.gate import decision_verb
    from components.tracking.runs import open_tracking, point_mlflow_at

    traces = load_evaluation_traces(evaluation_data) if evaluation_data else None
    client = open_tracking(tracking_uri or None, default_dir=DEFAULT_LOCAL_STORE)
    point_mlflow_at(client)
    decisions = {}
    for kind, path in results.items():
        result = read_result_file(path)
        decision = evaluate_candidate_result(client, result, traces)
        decisions[kind] = {**asdict(decision), "run_id": result["run_id"]}
        print(
            f"{kind}: {decision_verb(decision.promoted, decision.serve_policy)}: {decision.reason}"
        )
    Path(output).write_text(json.dumps(decisions, indent=2))
    beaten = [kind for kind, d in decisions.items() if not d["beats_baselines"]]
    if beaten and require_beating_baselines:
        raise MlschedError(f"not better than the baselines: {', '.join(beaten)}")
    return decisions


def promote_step(evaluation: str | os.PathLike, tracking_uri: str) -> dict[str, Any]:
    """Move ``champion`` to every candidate the evaluate stage found better (the only place it
    moves); returns each model's candidate, whether it was promoted and the registry now."""
    from components.tracking.entrypoint import DEFAULT_LOCAL_STORE
    from components.tracking.gate import PromotionDecision, promote, registry_state
    from components.tracking.runs import open_tracking

    client = open_tracking(tracking_uri or None, default_dir=DEFAULT_LOCAL_STORE)
    decisions = json.loads(Path(evaluation).read_text())
    report = {}
    for kind, fields in decisions.items():
        run_id = fields.pop("run_id")
        decision = PromotionDecision(**fields)
        register = None
        if kind == "placement":
            from components.placement.champion import register_heuristic_champion as register
        if decision.candidate_version:
            promote(client, decision, run_id, register_serving=register)
        entry = {
            "model_name": decision.model_name,
            "candidate_version": decision.candidate_version or None,
            "promoted": decision.promoted and bool(decision.candidate_version),
            "serves": decision.serve_policy or None,
            "reason": decision.reason,
            **registry_state(client, [decision.model_name])[decision.model_name],
        }
        report[kind] = {k: v for k, v in entry.items() if v is not None}  # KFP rejects None
    return report


def evaluation_markdown(decisions: Mapping[str, Mapping[str, Any]]) -> str:
    """One table of every candidate against its baselines and the champion."""
    lines = [
        "| model | metric | candidate | baselines | champion | beats baselines | decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, d in decisions.items():
        baselines = ", ".join(f"{k} {v:.4g}" for k, v in d["baselines"].items()) or "n/a"
        champion = "none" if d["champion"] is None else f"{d['champion']:.4g}"
        lines.append(
            f"| {kind} | {d['metric']} | {d['candidate']:.4g} | {baselines} | {champion} | "
            f"{d['beats_baselines']} | {d['reason']} |"
        )
    tables = []
    for d in decisions.values():
        if d.get("evaluation"):  # the placement gate's validation, served policy first
            from components.placement.selection import champion_table

            tables.append(champion_table(d["evaluation"], d.get("evaluated_policy", "")))
    return "\n".join([*lines, *("\n" + t for t in tables)]) + "\n"


def render_serving_step(
    tracking_uri: str, output_dir: str | os.PathLike, *, image: str, namespace: str
) -> list[str]:
    """InferenceService manifests for every model that has a champion."""
    from mlflow import MlflowClient

    from serving.manifests import ServiceOptions, champion_uri, write_manifests

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    uris = {}
    for name in REGISTERED_MODELS:
        try:
            uris[name] = champion_uri(client, name)
        except MlschedError as error:
            print(f"render: skipped {name}: {error}")
    options = ServiceOptions(namespace=namespace, image=image)
    written = write_manifests(uris, output_dir, options=options)
    return [str(Path(p).relative_to(output_dir)) for p in written]
