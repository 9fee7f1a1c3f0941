"""Exploratory views of node metrics: the tables and plots behind ``notebooks/01_eda.ipynb``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    AnomalyLabels,
)


def coverage(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per node: first and last sample, row count, median step and the share of missing scrapes."""
    rows = []
    for node, frame in metrics.groupby(NODE, sort=True):
        stamps = frame[TIMESTAMP]
        step = stamps.diff().median()
        expected = (stamps.max() - stamps.min()) / step + 1 if step else len(frame)
        rows.append(
            {
                NODE: node,
                "first": stamps.min(),
                "last": stamps.max(),
                "rows": len(frame),
                "median_step": step,
                "missing_share": max(0.0, 1 - len(frame) / expected),
            }
        )
    return pd.DataFrame(rows).set_index(NODE)


def resample_wide(metrics: pd.DataFrame, column: str, freq: str = "1h") -> pd.DataFrame:
    """``column`` averaged per ``freq`` bucket: one column per node, one row per bucket."""
    wide = metrics.pivot_table(
        index=metrics[TIMESTAMP].dt.floor(freq), columns=NODE, values=column, aggfunc="mean"
    )
    wide.index.name = TIMESTAMP
    return wide


def daily_profile(metrics: pd.DataFrame, column: str = CPU_UTILIZATION) -> pd.DataFrame:
    """Mean of ``column`` by UTC hour of day (rows) and node (columns)."""
    hours = metrics[TIMESTAMP].dt.hour.rename("hour")
    return metrics.groupby([hours, metrics[NODE]])[column].mean().unstack(NODE)


def weekly_profile(metrics: pd.DataFrame, column: str = CPU_UTILIZATION) -> pd.DataFrame:
    """Mean of ``column`` by day of week (0 = Monday) and node."""
    days = metrics[TIMESTAMP].dt.dayofweek.rename("day_of_week")
    return metrics.groupby([days, metrics[NODE]])[column].mean().unstack(NODE)


def seasonality(metrics: pd.DataFrame, column: str = CPU_UTILIZATION) -> pd.DataFrame:
    """Per node: autocorrelation of the hourly series at 1 day and 1 week (NaN if too short)."""
    hourly = resample_wide(metrics, column).interpolate(limit_direction="both")
    return pd.DataFrame(
        {
            "autocorr_1d": hourly.apply(lambda s: s.autocorr(24) if len(s) > 48 else np.nan),
            "autocorr_7d": hourly.apply(lambda s: s.autocorr(168) if len(s) > 336 else np.nan),
        }
    )


def node_correlation(
    metrics: pd.DataFrame, column: str = CPU_UTILIZATION, remove_daily_cycle: bool = True
) -> pd.DataFrame:
    """Pairwise correlation of nodes' hourly series, by default after removing each node's
    mean daily profile (what remains is shared load, not shared clocks)."""
    hourly = resample_wide(metrics, column)
    if remove_daily_cycle:
        hourly = hourly - hourly.groupby(hourly.index.hour).transform("mean")
    return hourly.corr()


def labelled_windows(labels: AnomalyLabels) -> pd.DataFrame:
    """Anomaly labels as a table: node, start, end, duration."""
    rows = [
        {NODE: node, "start": start, "end": end, "duration": end - start}
        for node, windows in labels.items()
        for start, end in windows
    ]
    return pd.DataFrame(rows, columns=[NODE, "start", "end", "duration"])


def around_window(
    metrics: pd.DataFrame, node: str, start: pd.Timestamp, end: pd.Timestamp, margin: str = "3h"
) -> pd.DataFrame:
    """A node's rows from ``margin`` before a window to ``margin`` after it."""
    pad = pd.Timedelta(margin)
    rows = metrics[metrics[NODE] == node]
    return rows[(rows[TIMESTAMP] >= start - pad) & (rows[TIMESTAMP] <= end + pad)]


def plot_daily_profiles(metrics: pd.DataFrame):
    """CPU and memory by hour of day, one line per node."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4), sharex=True)
    for axis, column in zip(axes, (CPU_UTILIZATION, MEMORY_UTILIZATION), strict=True):
        daily_profile(metrics, column).plot(ax=axis, legend=False, alpha=0.7)
        axis.set(title=f"{column} by hour of day (UTC)", xlabel="hour", ylabel="fraction")
    figure.tight_layout()
    return figure


def plot_correlation(correlation: pd.DataFrame, title: str = "node correlation"):
    """A heat map of a node-by-node correlation matrix."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 5))
    image = axis.imshow(correlation.to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
    axis.set_xticks(range(len(correlation)), correlation.columns, rotation=90, fontsize=7)
    axis.set_yticks(range(len(correlation)), correlation.index, fontsize=7)
    axis.set_title(title)
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    return figure


def plot_window(
    metrics: pd.DataFrame, node: str, start: pd.Timestamp, end: pd.Timestamp, margin: str = "3h"
):
    """A node's CPU and memory around a labelled window, the window shaded."""
    import matplotlib.pyplot as plt

    rows = around_window(metrics, node, start, end, margin)
    figure, axis = plt.subplots(figsize=(10, 3))
    axis.plot(rows[TIMESTAMP], rows[CPU_UTILIZATION], ".", markersize=2, label="cpu")
    axis.plot(rows[TIMESTAMP], rows[MEMORY_UTILIZATION], ".", markersize=2, label="memory")
    axis.axvspan(start, end, color="red", alpha=0.15, label="labelled anomaly")
    axis.set(title=f"{node}: {start:%Y-%m-%d %H:%M} .. {end:%H:%M} UTC", ylim=(0, 1.05))
    axis.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


FORECAST_METHODS = ("model", "persistence", "seasonal_naive")
FORECAST_FIGURES = ("mae", "rmse", "accuracy", "p90_abs_error", "skill")
ANOMALY_FIGURES = ("event_precision", "window_recall", "point_fpr", "event_f1")


def forecast_report_table(report: dict) -> pd.DataFrame:
    """A forecast evaluation report (``mlsched evaluate forecast``) as one row per resource,
    horizon and method (the model beside persistence and seasonal naive)."""
    rows = []
    for resource, horizons in report.items():
        if resource in ("data", "summary") or not isinstance(horizons, dict):
            continue
        for horizon, methods in horizons.items():
            for method in FORECAST_METHODS:
                figures = methods.get(method) or {}
                rows.append(
                    {"resource": resource, "horizon": horizon, "method": method}
                    | {name: figures.get(name) for name in FORECAST_FIGURES}
                )
    return pd.DataFrame(rows).set_index(["resource", "horizon", "method"])


def anomaly_report_table(report: dict) -> pd.DataFrame:
    """An anomaly evaluation report (``mlsched evaluate anomaly``): the detector beside the
    robust z-score baseline, overall figures."""
    rows = {
        "isolation forest ensemble": report["overall"],
        "robust z-score baseline": report["baseline"]["overall"],
    }
    return pd.DataFrame(
        {
            name: {figure: figures.get(figure) for figure in ANOMALY_FIGURES}
            for name, figures in rows.items()
        }
    ).T
