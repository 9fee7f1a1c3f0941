"""The gate on real traces (``--evaluation-data``): the forecaster and anomaly candidates, their
baselines and the champion scored on the same real-trace sets
(:mod:`components.datasets.evaluation_sets`), each trace's figures and plots logged to the
candidate's run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.errors import MlschedError
from components.model_contracts import MODEL_SPECS

REAL_TRACE_KINDS = ("forecaster", "anomaly")
"""The models the gate scores on real evaluation data when it is given (placement has its own
validation, :mod:`components.placement.champion`)."""


def load_evaluation_traces(evaluation_data: str) -> list:
    """The real-trace sets ``evaluation_data`` names, read
    (:mod:`components.datasets.evaluation_sets`); raises MlschedError on a bad item."""
    from components.datasets.evaluation_sets import load_evaluation_set, parse_evaluation_data

    traces = []
    for evaluation_set in parse_evaluation_data(evaluation_data):
        trace = load_evaluation_set(evaluation_set)
        print(
            f"evaluation data {trace.label}: {trace.metrics['node'].nunique()} series, "
            f"{len(trace.metrics)} rows, {'+'.join(trace.resources)}"
            + ("" if trace.labels is None else ", labelled"),
            flush=True,
        )
        traces.append(trace)
    return traces


def applicable_traces(kind: str, traces: Sequence, held_out: Mapping[str, Any]) -> list:
    if kind == "anomaly":
        return [t for t in traces if t.labels is not None]
    return [t for t in traces if set(t.resources) & set(held_out["resources"])]


def score_on_traces(
    kind: str, model_uri: str, traces: Sequence, held_out: Mapping[str, Any]
) -> dict[str, Any]:
    """``model_uri`` (a forecaster or an anomaly detector) scored on each trace, by label; the
    forecaster on the candidate's resources and horizons (``held_out``)."""
    if kind == "forecaster":
        from components.forecast.model import load_forecaster
        from components.forecast.real_trace import score_on_trace

        forecaster = load_forecaster(model_uri)

        def score(trace):
            resources = [r for r in trace.resources if r in held_out["resources"]]
            return score_on_trace(
                forecaster, trace.metrics, resources, horizons=held_out["horizons"]
            )
    else:
        from components.anomaly.model import load_anomaly_detector
        from components.anomaly.real_trace import score_on_trace

        detector = load_anomaly_detector(model_uri)

        def score(trace):
            return score_on_trace(detector, trace.metrics, trace.labels, trace.resources)

    scored = {}
    for trace in traces:
        try:
            scored[trace.label] = score(trace)
        except MlschedError as error:
            raise MlschedError(f"evaluation data {trace.label}: {error}") from None
    return scored


def trace_gate_figures(kind: str, scored: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """The gate metric and the baselines' over the traces (means of each trace's)."""
    if kind == "forecaster":
        from components.forecast.real_trace import gate_figures
    else:
        from components.anomaly.real_trace import gate_figures

    figures = [gate_figures(scores) for scores in scored.values()]
    value = sum(f[0] for f in figures) / len(figures)
    names = figures[0][1]
    baselines = {name: sum(f[1][name] for f in figures) / len(figures) for name in names}
    return value, baselines


def trace_ceiling_figures(kind: str, scored: Mapping[str, Any]) -> dict[str, tuple]:
    """Each of the model's ceilings: (the candidate's figure over the traces, the mean of each
    trace's, or None where a trace has none; the bound)."""
    out = {}
    for name, bound in MODEL_SPECS[kind].ceilings:
        values = [scores.report["overall"][name] for scores in scored.values()]
        known = [float(v) for v in values if v is not None]
        out[name] = (sum(known) / len(known) if len(known) == len(values) else None, bound)
    return out


def log_trace_figures(
    kind: str, client, run_id: str, scored: Mapping[str, Any], traces: Sequence, prefix: str = ""
) -> None:
    """Each trace's figures to ``run_id``: with its plots (forecast vs actual with the P90 band;
    the score timeline with the labelled windows) for the candidate, the figures alone under
    ``prefix`` (the champion's)."""
    from components.tracking.entrypoint import TrackedRun

    run = TrackedRun(client, run_id, MODEL_SPECS[kind])
    labels = {trace.label: trace.labels for trace in traces}
    if kind == "forecaster":
        from components.forecast.mlflow_logging import log_trace_evaluation, trace_metrics

        for label, experiment in scored.items():
            if prefix:
                run.log_metrics(trace_metrics(f"{prefix}{label}", experiment.report))
            else:
                log_trace_evaluation(run, label, experiment)
        return
    from components.anomaly.real_trace import log_trace_evaluation, trace_metrics

    for label, scores in scored.items():
        if prefix:
            run.log_metrics(trace_metrics(f"{prefix}{label}", scores.report))
        else:
            log_trace_evaluation(run, label, scores, labels[label])


def evaluated_on(kind: str, traces: Sequence) -> str:
    if kind == "forecaster":
        from components.forecast.real_trace import DEFAULT_TRAIN_FRACTION
    else:
        from components.anomaly.evaluate import DEFAULT_TRAIN_FRACTION
    names = ", ".join(trace.label for trace in traces)
    share = round(100 * (1 - DEFAULT_TRAIN_FRACTION))
    return f"real trace{'s' if len(traces) > 1 else ''} {names} (each series' last {share} %)"


def real_trace_comparison(client, result: Mapping[str, Any], traces: Sequence) -> dict[str, Any]:
    """What :func:`~components.tracking.gate.evaluate_candidate` compares for one training
    result when real traces are given: the candidate, its baselines, its ceiling figures and the
    champion's scorer on the traces that apply (the forecaster's resources; labelled ones for the
    detector), and ``evaluated_on`` naming them; only ``evaluated_on`` when none applies;
    nothing for the other models."""
    kind = result["kind"]
    if kind not in REAL_TRACE_KINDS or not result.get("model_uri"):
        return {}
    applicable = applicable_traces(kind, traces, result["held_out"])
    if not applicable:
        given = ", ".join(trace.label for trace in traces)
        why = f"no trace of {given} applies to the {kind}"
        return {"evaluated_on": f"the candidate's held-out data ({why})"}
    scored = score_on_traces(kind, result["model_uri"], applicable, result["held_out"])
    candidate, baselines = trace_gate_figures(kind, scored)
    if result.get("run_id"):
        log_trace_figures(kind, client, result["run_id"], scored, applicable)

    def score_champion(uri: str) -> float:
        champion = score_on_traces(kind, uri, applicable, result["held_out"])
        if result.get("run_id"):
            log_trace_figures(kind, client, result["run_id"], champion, applicable, "champion_")
        return trace_gate_figures(kind, champion)[0]

    return {
        "candidate": candidate,
        "baselines": baselines,
        "score_champion": score_champion,
        "evaluated_on": evaluated_on(kind, applicable),
        "ceilings": trace_ceiling_figures(kind, scored),
    }
