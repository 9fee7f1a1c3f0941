"""Diagnostic figures of a forecast experiment.

Figures are plain :class:`matplotlib.figure.Figure` objects (rendered by Agg on save), so no
pyplot backend or global state is involved.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from components.contracts import NODE
from components.forecast.model import FULL, LoadForecaster, column_name, member_key


def _subplots(rows: int, columns: int, size: tuple[float, float]):
    figure = Figure(figsize=size)
    return figure, figure.subplots(rows, columns, squeeze=False)


MAX_POINTS = 1000


def forecast_vs_actual(experiment, resource: str, horizon: str, nodes: list[str]):
    """Actual level at ``t + h`` against the model, its P90 band (shaded up from the model) and
    persistence, on test rows."""
    dataset, split = experiment.dataset, experiment.split
    test = split.test(dataset)
    figure, axes = _subplots(len(nodes), 1, (11, 2.6 * len(nodes)))
    node_column = dataset.features[NODE].to_numpy()
    for axis, node in zip(axes[:, 0], nodes, strict=True):
        rows = np.flatnonzero(test & (node_column == node))[:MAX_POINTS]
        step = dataset.horizons[[h.name for h in dataset.horizons].index(horizon)]
        stamps = dataset.features["timestamp"].iloc[rows] + np.timedelta64(step.seconds, "s")
        axis.plot(stamps, dataset.targets[resource, horizon][rows], label="actual", lw=1)
        point = experiment.predictions[column_name(resource, horizon)][rows]
        upper = experiment.predictions[column_name(resource, horizon, True)][rows]
        axis.plot(stamps, point, label="model")
        axis.fill_between(stamps, point, upper, color="tab:green", alpha=0.15, lw=0)
        axis.plot(stamps, upper, label="model P90 (band from the model)", lw=0.8, ls="--")
        axis.plot(stamps, dataset.current[resource][rows], label="persistence", lw=0.8, alpha=0.6)
        axis.set_title(f"{node}: {resource} at +{horizon}")
        axis.set_ylabel("utilisation")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure


def feature_importance(forecaster: LoadForecaster, key: str, top: int = 20):
    """The ``top`` features of the point forecast ``key`` by total gain, summed over its blend's
    members, each weighted by its blend weight."""
    weights = getattr(forecaster, "blend_weights", {}).get(key, {FULL: 1.0})
    gains: dict[str, float] = {}
    for member, weight in weights.items():
        booster = forecaster.boosters.get(member_key(key, member))
        if booster is None:  # a persistence fallback has no booster
            continue
        for name, gain in booster.get_score(importance_type="total_gain").items():
            gains[name] = gains.get(name, 0.0) + weight * gain
    ranked = sorted(gains.items(), key=lambda item: item[1], reverse=True)[:top][::-1]
    figure, axes = _subplots(1, 1, (8, 0.3 * max(len(ranked), 4) + 1))
    axis = axes[0, 0]
    axis.barh([name for name, _ in ranked], [value for _, value in ranked])
    members = ", ".join(f"{m} {w:g}" for m, w in weights.items())
    axis.set_title(f"feature importance (total gain; blend {members}): {key}", fontsize=9)
    figure.tight_layout()
    return figure


def residuals(experiment, resource: str):
    """Histogram of model and persistence errors on test rows, one panel per horizon."""
    dataset, split = experiment.dataset, experiment.split
    test = split.test(dataset)
    horizons = [h.name for h in dataset.horizons]
    figure, axes = _subplots(1, len(horizons), (4 * len(horizons), 3))
    for axis, horizon in zip(axes[0], horizons, strict=True):
        actual = dataset.targets[resource, horizon]
        rows = test & np.isfinite(actual)
        model = experiment.predictions[column_name(resource, horizon)][rows] - actual[rows]
        persistence = dataset.current[resource][rows] - actual[rows]
        bins = np.linspace(*np.nanquantile(persistence, [0.005, 0.995]), 80)
        axis.hist(persistence, bins=bins, alpha=0.5, label="persistence")
        axis.hist(model, bins=bins, alpha=0.5, label="model")
        axis.set_title(f"{resource} +{horizon}: forecast - actual")
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    return figure


SKILL_BARS = ("ours", "reference", "seasonal_naive")


def skill_by_horizon(table):
    """Skill per horizon (bars: ours, the reference, seasonal naive; persistence is the zero
    line), one panel per trace and resource, from :func:`components.forecast.skill.skill_table`."""
    panels = list(dict.fromkeys((trace, resource) for trace, resource, _ in table.index))
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = _subplots(rows, columns, (4.2 * columns, 3.0 * rows))
    width = 0.8 / len(SKILL_BARS)
    for axis, (trace, resource) in zip(axes.flat, panels, strict=False):
        part = table.loc[(trace, resource)]
        positions = np.arange(len(part))
        for offset, name in enumerate(SKILL_BARS):
            axis.bar(positions + (offset - 1) * width, part[name].to_numpy(), width, label=name)
        axis.axhline(0.0, color="black", lw=0.8, label="persistence")
        # The scale is ours' and the reference's; a baseline far below is clipped, its value shown.
        shown = np.append(part[["ours", "reference"]].to_numpy().ravel(), 0.0)
        low, high = np.nanmin(shown), np.nanmax(shown)
        margin = 0.15 * max(high - low, 0.05)
        axis.set_ylim(low - margin, high + margin)
        for position, value in zip(positions, part["seasonal_naive"].to_numpy(), strict=True):
            if value < low - margin:
                axis.text(
                    position + width,
                    low - 0.9 * margin,
                    f"{value:.2g}",
                    fontsize=7,
                    ha="center",
                    va="bottom",
                    color="white",
                )
        axis.set_xticks(positions, list(part.index))
        axis.set_title(f"{trace}: {resource}", fontsize=9)
        axis.set_ylabel("skill vs persistence")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    return figure
