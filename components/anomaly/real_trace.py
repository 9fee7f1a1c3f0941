"""A trained anomaly detector scored on a labelled real trace, as the promotion gate compares
candidates.

The forests are used as trained. The trace's nodes are new to the detector, so, as on any new
cluster, its alarm thresholds are calibrated to its own false-positive budget on each node's
unlabelled first ``train_fraction`` (no labels are read for that); the rest is scored against
the labelled windows beside the robust z-score baseline, fitted on the same unlabelled part with
the same budget and event rules. Features are computed at the trace's own step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.anomaly.detector import (
    AnomalyDetector,
    calibrate_detector,
    fit_baseline,
    time_split,
)
from components.anomaly.evaluate import DEFAULT_TRAIN_FRACTION, apply_events
from components.anomaly.evaluation import METRICS, evaluate_alarms, per_node_metrics
from components.contracts import MEMORY_UTILIZATION, NODE, TIMESTAMP, AnomalyLabels
from components.errors import MlschedError
from components.features.anomaly_statistics import anomaly_features, infer_step_seconds
from components.model_contracts import ANOMALY_DETECTOR
from components.tracking.entrypoint import TrackedRun

BASELINE = "robust_zscore"


@dataclass
class TraceScores:
    """The detector's and the baseline's scored rows, incidents and figures on one trace."""

    detector: AnomalyDetector
    scored: pd.DataFrame
    events: pd.DataFrame
    baseline_scored: pd.DataFrame
    baseline_events: pd.DataFrame
    report: dict


def score_on_trace(
    detector: AnomalyDetector,
    metrics: pd.DataFrame,
    labels: AnomalyLabels,
    resources: Sequence[str],
    *,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> TraceScores:
    """Score ``detector`` on the last ``1 - train_fraction`` of each node of ``metrics``.

    Args:
        detector: a trained detector (:func:`components.anomaly.model.load_anomaly_detector`).
        metrics: the trace as node metrics, at its own step (memory NaN for a CPU-only trace).
        labels: the trace's labelled windows.
        resources: the trace's meaningful resources; the baseline scores these, the detector
            its own (a resource the trace lacks reads as no signal).

    Returns:
        The scores; ``report`` holds ``overall`` and ``per_node`` figures
        (:func:`components.anomaly.evaluation.evaluate_alarms`) and ``baseline`` (its name and
        the same figures).
    """
    if metrics.empty:
        raise MlschedError("the trace has no rows")
    step = infer_step_seconds(metrics)
    features = anomaly_features(metrics, detector.resources, step)
    train = time_split(features, train_fraction)
    if not train.any() or train.all():
        raise MlschedError(f"train fraction {train_fraction} leaves no rows to calibrate or score")
    fitted = features[train].reset_index(drop=True)
    # The detector's own adaptation to each node's recent scores, where it has one.
    adapt = {"adapt_seconds": detector.adapt_seconds} if hasattr(detector, "adapt_seconds") else {}
    calibrated = calibrate_detector(
        detector.ensemble,
        fitted[NODE].astype(str).to_numpy(),
        detector.ensemble.score(fitted),
        detector.fpr_budget,
        detector.rules,
        **adapt,
    )
    # Scored over the whole history, so the first evaluated row has its history behind it.
    scored, events = apply_events(
        calibrated, calibrated.score(features)[~train].reset_index(drop=True)
    )
    ordered = metrics.sort_values([NODE, TIMESTAMP], kind="stable").reset_index(drop=True)
    if MEMORY_UTILIZATION not in ordered.columns:
        ordered = ordered.assign(**{MEMORY_UTILIZATION: np.nan})
    raw_train = time_split(ordered, train_fraction)
    baseline = fit_baseline(
        ordered[raw_train], tuple(resources), detector.fpr_budget, detector.rules
    )
    baseline_scored, baseline_events = apply_events(baseline, baseline.score(ordered[~raw_train]))
    report = {
        **evaluate_alarms(scored, events, labels),
        "baseline": {"name": BASELINE, **evaluate_alarms(baseline_scored, baseline_events, labels)},
        "data": {
            "step_seconds": step,
            "nodes": int(features[NODE].nunique()),
            "calibration_rows": int(train.sum()),
            "evaluation_rows": int((~train).sum()),
            "train_fraction": train_fraction,
            "threshold": calibrated.threshold,
        },
    }
    return TraceScores(calibrated, scored, events, baseline_scored, baseline_events, report)


def gate_figures(scores: TraceScores) -> tuple[float, dict[str, float]]:
    """The gate metric (event F1; none counts as 0, as in training) of a scored trace and the
    baseline's on the same rows."""

    def value(figures: dict) -> float:
        return float(figures[ANOMALY_DETECTOR.gate_metric] or 0.0)

    report = scores.report
    return value(report["overall"]), {BASELINE: value(report["baseline"]["overall"])}


def trace_metrics(label: str, report: dict) -> dict[str, float]:
    """A trace's figures as MLflow metrics: ``<label>_<figure>``, ``<label>_baseline_<figure>``
    and ``<label>_node_<node>_<figure>``."""
    out = {}
    for prefix, figures in (("", report["overall"]), ("baseline_", report["baseline"]["overall"])):
        for name in (*METRICS, "detection_delay_minutes"):
            if figures[name] is not None:
                out[f"{label}_{prefix}{name}"] = float(figures[name])
    out.update({f"{label}_{name}": value for name, value in per_node_metrics(report).items()})
    return out


def log_trace_evaluation(
    run: TrackedRun, label: str, scores: TraceScores, labels: AnomalyLabels, nodes: int = 4
) -> None:
    """Log one trace's figures (:func:`trace_metrics`), its report and the score timeline with
    the labelled windows shaded (``traces/<label>/``)."""
    from components.anomaly.plots import pick_nodes, score_timeline

    run.log_metrics(trace_metrics(label, scores.report))
    run.log_dict(scores.report, f"traces/{label}/report.json")
    figure = score_timeline(
        scores.scored,
        scores.events,
        labels,
        scores.detector.threshold,
        pick_nodes(scores.scored, labels, nodes),
        f"{label}: ensemble score",
    )
    run.log_figure(figure, f"traces/{label}/anomaly_score_timeline.png")
