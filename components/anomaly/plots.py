"""Anomaly-score timelines with the labelled windows shaded (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from components.contracts import NODE, TIMESTAMP, AnomalyLabels  # noqa: E402


def pick_nodes(scored: pd.DataFrame, labels: AnomalyLabels, count: int = 4) -> list[str]:
    """The nodes with the most labelled windows in the scored span (ties by name)."""
    spans = scored.groupby(NODE)[TIMESTAMP].agg(["min", "max"])
    ranked = []
    for node, (first, last) in spans.iterrows():
        windows = [w for w in labels.get(str(node), []) if w[0] <= last and w[1] >= first]
        ranked.append((-len(windows), str(node)))
    return [node for _, node in sorted(ranked)[:count]]


def score_timeline(
    scored: pd.DataFrame,
    events: pd.DataFrame,
    labels: AnomalyLabels,
    threshold: float,
    nodes: list[str],
    title: str = "anomaly score",
):
    """One panel per node: the score, the threshold, labelled windows (shaded), alarm events."""
    figure, axes = plt.subplots(
        len(nodes), 1, figsize=(12, 2.4 * max(1, len(nodes))), sharex=False, squeeze=False
    )
    for axis, node in zip(axes[:, 0], nodes, strict=True):
        rows = scored[scored[NODE] == node]
        axis.plot(rows[TIMESTAMP], rows["score"], lw=0.6, color="tab:blue", label="score")
        axis.axhline(threshold, color="tab:red", lw=0.8, ls="--", label="threshold")
        first, last = rows[TIMESTAMP].min(), rows[TIMESTAMP].max()
        for start, end in labels.get(node, []):
            if start <= last and end >= first:
                axis.axvspan(start, end, color="tab:orange", alpha=0.3, lw=0)
        for _, event in events[events[NODE] == node].iterrows():
            axis.axvspan(event["start"], event["end"], ymin=0.92, ymax=1.0, color="tab:red")
        axis.set_ylabel(node)
    axes[0, 0].set_title(f"{title}: labelled windows shaded orange, alarm events red on top")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    return figure


FIGURES = ("event_precision", "window_recall", "point_fpr", "event_f1")


def figures_beside(reports: dict[str, dict]):
    """Event precision, window recall, point FPR and event F1 of the detector and the robust
    z-score baseline, one panel per data set (``{name: evaluation report}``)."""
    figure, axes = plt.subplots(
        1, len(reports), figsize=(4.5 * len(reports), 3.2), sharey=True, squeeze=False
    )
    positions = range(len(FIGURES))
    for axis, (name, report) in zip(axes[0], reports.items(), strict=True):
        for offset, (who, figures) in enumerate(
            (("detector", report["overall"]), ("baseline", report["baseline"]["overall"]))
        ):
            values = [figures[f] if figures[f] is not None else float("nan") for f in FIGURES]
            axis.bar([p + (offset - 0.5) * 0.4 for p in positions], values, 0.4, label=who)
        axis.set_xticks(list(positions), [f.replace("_", "\n") for f in FIGURES], fontsize=8)
        axis.set_title(name, fontsize=9)
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    return figure
