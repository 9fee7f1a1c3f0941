"""Statistics that say how much a node-metrics table looks like a real cluster's load.

Every statistic is computed on a 5-minute grid (the step of the public traces; finer data is
averaged into 5-minute bins, as the traces themselves are), per node and resource, and summarised
across nodes, so that a synthetic cluster and a real trace can be set side by side:

- autocorrelation at 5 min, 15 min, 1 h, 6 h and 1 day (persistence and cycles);
- the share of a node's variance in its daily and in its weekly cycle, estimated from split
  halves (the covariance of the profiles of even and odd days, or weeks), so that a persistent
  but acyclic series does not count as cyclic just because a short history has few days;
- the share of variance between days (slow level changes: trends, level shifts);
- bursts: runs where the load stands well above its own rolling one-day median, their rate,
  duration and size;
- the distribution of per-node means (many nearly idle nodes, few busy ones, in real traces).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import NODE, TIMESTAMP

GRID_SECONDS = 300
DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
ACF_LAGS_SECONDS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "1d": DAY_SECONDS}
MEAN_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
IDLE_MEAN = 0.05
BURST_MIN_EXCESS = 0.10
BURST_ROBUST_SDS = 3.0


@dataclass(frozen=True)
class NodeGrid:
    """One resource of every node on a regular grid: ``values[node, step]``, NaN where missing."""

    values: np.ndarray
    start_epoch: int
    step_seconds: int
    nodes: tuple[str, ...]

    @property
    def seconds(self) -> np.ndarray:
        return (
            self.start_epoch + np.arange(self.values.shape[1], dtype=np.int64) * self.step_seconds
        )


def node_grid(metrics: pd.DataFrame, column: str, step_seconds: int = GRID_SECONDS) -> NodeGrid:
    """Average ``column`` of each node into ``step_seconds`` bins aligned to the epoch."""
    seconds = metrics[TIMESTAMP].to_numpy(dtype="datetime64[s]").astype(np.int64)
    values = metrics[column].to_numpy(dtype=np.float64)
    keep = np.isfinite(values)
    codes, names = pd.factorize(metrics[NODE], sort=True)
    seconds, values, codes = seconds[keep], values[keep], codes[keep]
    if not len(values):
        return NodeGrid(np.empty((len(names), 0)), 0, step_seconds, tuple(map(str, names)))
    start = int(seconds.min() // step_seconds * step_seconds)
    bins = (seconds - start) // step_seconds
    width = int(bins.max()) + 1
    flat = codes.astype(np.int64) * width + bins
    size = len(names) * width
    sums = np.bincount(flat, weights=values, minlength=size)
    counts = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return NodeGrid(grid.reshape(len(names), width), start, step_seconds, tuple(map(str, names)))


def varying_nodes(grid: NodeGrid, min_std: float = 1e-4) -> np.ndarray:
    """Rows of nodes whose series moves at all (a constant series has no shape to compare)."""
    with np.errstate(invalid="ignore"):
        std = np.nanstd(grid.values, axis=1)
    return np.flatnonzero(np.nan_to_num(std) > min_std)


def autocorrelation(grid: NodeGrid, lag_seconds: float) -> np.ndarray:
    """Each node's autocorrelation at ``lag_seconds`` over the pairs where both values exist."""
    values = grid.values
    lag = int(round(lag_seconds / grid.step_seconds))
    out = np.full(values.shape[0], np.nan)
    if lag >= values.shape[1]:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = values - np.nanmean(values, axis=1, keepdims=True)
        variance = np.nanmean(centred**2, axis=1)
        products = centred[:, :-lag] * centred[:, lag:]
        out = np.nanmean(products, axis=1) / variance
    return out


def _profile(values: np.ndarray, slots: np.ndarray, count: int, mask: np.ndarray) -> np.ndarray:
    """Per node, the mean of ``values`` in each slot over the columns in ``mask``."""
    out = np.full((values.shape[0], count), np.nan)
    for slot in range(count):
        columns = mask & (slots == slot)
        if columns.any():
            with _quiet():
                out[:, slot] = np.nanmean(values[:, columns], axis=1)
    return out


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' for nodes with no data in a slot or window."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def _split_half_covariance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    with _quiet():
        a = first - np.nanmean(first, axis=1, keepdims=True)
        b = second - np.nanmean(second, axis=1, keepdims=True)
        return np.nanmean(a * b, axis=1)


def cycle_shares(grid: NodeGrid) -> dict[str, np.ndarray]:
    """Per node, the share of variance in the daily cycle, the weekly cycle and between days.

    ``daily``: covariance of the hour-of-day profiles of even and of odd days over the node's
    variance. ``weekly``: the same for hour-of-week profiles, less their hour-of-day profiles,
    from even and odd weeks (NaN below two weeks). ``between_days``: variance of daily means over
    the node's variance (slow level changes, trends and level shifts; a daily cycle does not
    count, a weekly one does).
    """
    values = grid.values
    seconds = grid.seconds
    hour = (seconds % DAY_SECONDS) // 3600
    day = seconds // DAY_SECONDS
    # Weeks start on Monday (1970-01-01 was a Thursday).
    week = (day + 3) // 7
    hour_of_week = ((day + 3) % 7) * 24 + hour
    with _quiet():
        variance = np.nanvar(values, axis=1)
    even_days, odd_days = day % 2 == 0, day % 2 == 1
    daily = _split_half_covariance(
        _profile(values, hour, 24, even_days), _profile(values, hour, 24, odd_days)
    )
    weeks = np.unique(week)
    weekly = np.full(values.shape[0], np.nan)
    if len(weeks) >= 3 or (len(weeks) == 2 and _full_weeks(seconds) >= 2):
        halves = []
        for parity in (0, 1):
            mask = week % 2 == parity
            by_week_hour = _profile(values, hour_of_week, 168, mask)
            by_hour = _profile(values, hour, 24, mask)
            halves.append(by_week_hour - np.tile(by_hour, 7))
        weekly = _split_half_covariance(*halves)
    daily_means = _profile(
        values, day - day.min(), int(day.max() - day.min()) + 1, np.ones_like(day, bool)
    )
    with _quiet():
        between = np.nanvar(daily_means, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "daily": daily / variance,
            "weekly": weekly / variance,
            "between_days": between / variance,
        }


def _full_weeks(seconds: np.ndarray) -> float:
    return (seconds[-1] - seconds[0] + GRID_SECONDS) / WEEK_SECONDS


@dataclass(frozen=True)
class Bursts:
    """Bursts of every node: ``node`` row, ``duration_seconds``, ``size`` (peak excess over
    the node's rolling one-day median), and the node-days they were found in."""

    node: np.ndarray
    duration_seconds: np.ndarray
    size: np.ndarray
    node_days: float


def find_bursts(
    grid: NodeGrid,
    min_excess: float = BURST_MIN_EXCESS,
    robust_sds: float = BURST_ROBUST_SDS,
) -> Bursts:
    """Runs of steps where a node stands above its centred rolling one-day median by more than
    ``min_excess`` and by more than ``robust_sds`` robust standard deviations of its residual."""
    values = grid.values
    window = max(3, DAY_SECONDS // grid.step_seconds)
    baseline = (
        pd.DataFrame(values.T)
        .rolling(window, center=True, min_periods=window // 6)
        .median()
        .to_numpy()
        .T
    )
    residual = values - baseline
    with _quiet():
        centre = np.nanmedian(residual, axis=1, keepdims=True)
        scale = 1.4826 * np.nanmedian(np.abs(residual - centre), axis=1, keepdims=True)
    threshold = np.maximum(min_excess, robust_sds * np.nan_to_num(scale))
    above = np.nan_to_num(residual, nan=-np.inf) > threshold
    node_days = float(np.isfinite(values).sum() * grid.step_seconds / DAY_SECONDS)
    previous = np.zeros_like(above)
    previous[:, 1:] = above[:, :-1]
    starts = (above & ~previous)[above]
    run = np.cumsum(starts) - 1
    count = int(starts.sum())
    size = np.full(count, -np.inf)
    np.maximum.at(size, run, residual[above])
    node = np.nonzero(above)[0][starts]
    duration = np.bincount(run, minlength=count) * float(grid.step_seconds)
    return Bursts(node, duration, size, node_days)


def _quantiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return [float("nan")] * len(qs)
    return [float(v) for v in np.quantile(values, qs)]


def realism_statistics(metrics: pd.DataFrame, column: str) -> dict[str, float]:
    """The summary of one resource (``column``) of a node-metrics table: medians (and 90th
    percentiles where the spread matters) across its nodes of each statistic above.

    Returns an empty dict when no node's series moves (e.g. a trace without memory).
    """
    grid = node_grid(metrics, column)
    rows = varying_nodes(grid)
    if not len(rows):
        return {}
    grid = NodeGrid(grid.values[rows], grid.start_epoch, grid.step_seconds, grid.nodes)
    out: dict[str, float] = {"nodes": float(len(rows))}
    out["days"] = grid.values.shape[1] * grid.step_seconds / DAY_SECONDS
    for name, seconds in ACF_LAGS_SECONDS.items():
        out[f"acf_{name}"] = float(np.nanmedian(autocorrelation(grid, seconds)))
    shares = cycle_shares(grid)
    for name, share in shares.items():
        median, p90 = _quantiles(share, (0.5, 0.9))
        out[f"{name}_share_median"] = median
        out[f"{name}_share_p90"] = p90
    with _quiet():
        means = np.nanmean(grid.values, axis=1)
    for q, value in zip(MEAN_QUANTILES, _quantiles(means, MEAN_QUANTILES), strict=True):
        out[f"node_mean_p{int(q * 100)}"] = value
    out["idle_node_share"] = float(np.mean(means < IDLE_MEAN))
    bursts = find_bursts(grid)
    out["bursts_per_node_day"] = len(bursts.size) / max(bursts.node_days, 1e-9)
    duration_median, duration_p90 = _quantiles(bursts.duration_seconds / 60, (0.5, 0.9))
    size_median, size_p90 = _quantiles(bursts.size, (0.5, 0.9))
    out["burst_minutes_median"] = duration_median
    out["burst_minutes_p90"] = duration_p90
    out["burst_size_median"] = size_median
    out["burst_size_p90"] = size_p90
    return out
