"""Event-level evaluation of alarms against labelled anomaly windows, per node and overall.

* event precision: alarm events overlapping a labelled window of their node / all alarm events;
* window recall: labelled windows overlapped by an alarm event / all labelled windows;
* point FPR: normal points (outside every labelled window) inside an alarm event / normal points;
* event F1: the harmonic mean of event precision and window recall;
* detection delay: per window an alarm event overlaps, minutes from the window's start to its
  first alarmed sample (0 when the event began before the window), reported as the median over
  those windows (``detection_delay_minutes``) beside each one (``delays_minutes``).

Alarms follow NAB's convention: an event counts as true when it overlaps a labelled window of its
node.

Only windows that overlap the evaluated time span of their node count. A ratio with nothing to
count (no events, no windows) is ``None``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from components.atomic import write_text
from components.contracts import NODE, TIMESTAMP, AnomalyLabels

METRICS = ("event_precision", "window_recall", "point_fpr", "event_f1")
COUNT_KEYS = (
    "events",
    "true_events",
    "windows",
    "hit_windows",
    "normal_points",
    "false_alarm_points",
)


def _nanos(values) -> np.ndarray:
    return pd.DatetimeIndex(values).as_unit("ns").asi8


def label_mask(frame: pd.DataFrame, labels: AnomalyLabels) -> np.ndarray:
    """True for rows of ``frame`` (``node``, ``timestamp``) inside a labelled window."""
    mask = np.zeros(len(frame), dtype=bool)
    nodes = frame[NODE].to_numpy()
    nanos = _nanos(frame[TIMESTAMP])
    for node, windows in labels.items():
        rows = np.flatnonzero(nodes == node)
        if len(rows) == 0 or not windows:
            continue
        for start, end in windows:
            inside = (nanos[rows] >= pd.Timestamp(start).value) & (
                nanos[rows] <= pd.Timestamp(end).value
            )
            mask[rows[inside]] = True
    return mask


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if recall is None:
        return None
    precision = 0.0 if precision is None else precision
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


def _counts(
    node: str,
    stamps: np.ndarray,
    alarmed: np.ndarray,
    anomalous: np.ndarray,
    events: pd.DataFrame,
    windows: list,
) -> dict[str, int]:
    first, last = (int(stamps.min()), int(stamps.max())) if len(stamps) else (0, -1)
    spans = [
        (pd.Timestamp(s).value, pd.Timestamp(e).value)
        for s, e in windows
        if pd.Timestamp(s).value <= last and pd.Timestamp(e).value >= first
    ]
    node_events = events[events[NODE] == node]
    starts, ends = _nanos(node_events["start"]), _nanos(node_events["end"])
    true_events = sum(
        any(s <= we and e >= ws for ws, we in spans) for s, e in zip(starts, ends, strict=True)
    )
    hit = [bool(np.any((starts <= we) & (ends >= ws))) for ws, we in spans]
    normal = ~anomalous
    counts = {
        "events": len(node_events),
        "true_events": int(true_events),
        "windows": len(spans),
        "hit_windows": int(sum(hit)),
        "normal_points": int(normal.sum()),
        "false_alarm_points": int((alarmed & normal).sum()),
    }
    hit_spans = [span for span, h in zip(spans, hit, strict=True) if h]
    delays = [_delay_minutes(ws, we, starts, ends) for ws, we in hit_spans]
    return counts, delays


def _delay_minutes(start: int, end: int, starts: np.ndarray, ends: np.ndarray) -> float:
    """Minutes from a window's start to the first alarmed moment inside it."""
    overlapping = (starts <= end) & (ends >= start)
    first = max(int(starts[overlapping].min()), start)
    return (first - start) / 60e9


def _figures(counts: dict[str, int], delays: list[float]) -> dict:
    precision = _ratio(counts["true_events"], counts["events"])
    recall = _ratio(counts["hit_windows"], counts["windows"])
    return {
        "event_precision": precision,
        "window_recall": recall,
        "point_fpr": _ratio(counts["false_alarm_points"], counts["normal_points"]),
        "event_f1": _f1(precision, recall),
        "detection_delay_minutes": float(np.median(delays)) if delays else None,
        **counts,
        "delays_minutes": [round(d, 1) for d in delays],
    }


def evaluate_alarms(
    scored: pd.DataFrame, events: pd.DataFrame, labels: AnomalyLabels, alarm: str = "alarm"
) -> dict:
    """Figures per node and overall (pooled counts).

    Args:
        scored: the evaluated rows: ``node``, ``timestamp`` and a boolean ``alarm`` column (the
            rows inside alarm events, see :func:`components.anomaly.events.event_alarm_mask`).
        events: the alarm events of those rows (:func:`components.anomaly.events.alarm_events`).
        labels: the labelled windows; nodes without an entry have none.

    Returns:
        ``{"overall": {...}, "per_node": {node: {...}}}`` with :data:`METRICS` and their counts.
    """
    anomalous = label_mask(scored, labels)
    nodes = scored[NODE].to_numpy()
    nanos = _nanos(scored[TIMESTAMP])
    alarms = scored[alarm].to_numpy(dtype=bool)
    per_node = {}
    totals: dict[str, int] = {}
    all_delays: list[float] = []
    for node in sorted(pd.unique(nodes)):
        rows = nodes == node
        counts, delays = _counts(
            node, nanos[rows], alarms[rows], anomalous[rows], events, labels.get(node, [])
        )
        per_node[str(node)] = _figures(counts, delays)
        all_delays += delays
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return {"overall": _figures(totals, all_delays), "per_node": per_node}


def pool_figures(per_node: dict[str, dict]) -> dict:
    """Overall figures from per-node figures of :func:`evaluate_alarms` (pooled counts)."""
    totals = {key: sum(f[key] for f in per_node.values()) for key in COUNT_KEYS}
    delays = [d for f in per_node.values() for d in f["delays_minutes"]]
    return _figures(totals, delays)


def write_report(report: dict, path: Path) -> Path:
    """Write a report as JSON atomically (nothing half-written on failure)."""
    return write_text(path, json.dumps(report, indent=1, default=str))


def per_node_metrics(report: dict) -> dict[str, float]:
    """Each node's (each trace's) figures as MLflow metrics ``node_<node>_<figure>``."""
    out = {}
    for node, figures in report["per_node"].items():
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(node))
        for figure in (*METRICS, "detection_delay_minutes"):
            if figures[figure] is not None:
                out[f"node_{name}_{figure}"] = float(figures[figure])
    return out
