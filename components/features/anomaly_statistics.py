"""Robust per-node statistics for the anomaly detector, on top of the shared node features.

Every value at time ``t`` uses only the node's samples at or before ``t`` (as the node features of
:mod:`components.features.engineering`, which this module reuses), so the same function serves
training and online scoring. Statistics are per node, so one model serves nodes of any load level:

* level: the minimum over the short window (15 minutes, at least 6 samples), raw and as a
  one-sided robust z-score ``(floor - running median) / (1.4826 * running MAD)`` over the
  trailing 24 h (the running MAD is the median of each sample's distance from its own running
  median, a causal approximation);
* jumps: steps between consecutive samples larger than 6 noise units (1.4826 x the 24 h running
  median of the absolute steps) in the short window (spikes of a noisy neighbour);
* pulses: short pulses in the short window, a rise and a fall back each larger than 6 noise units
  at most 3 samples apart, summed by the smaller of the two (a noisy neighbour's spikes stand out
  from load steps and batch bursts that last longer);
* frozen share: share of samples in the short window where every resource equals the sample
  before (within 1 % of its noise unit) and at least one lies strictly inside the node's 24 h
  range, for at least 5 minutes in a row (a frozen exporter; values all held at the node's 24 h
  minimum or maximum are clipped, idle or full resources; shorter runs come from rate() windows
  sliding over a flat series);
* rise: the positive part of the 1 h and 6 h least-squares slopes;
* level shift: how far the last hour's median has moved from the trailing 24 h median that ended
  an hour earlier, in units of that window's robust spread (either direction: a service that
  drops to a lower level is as anomalous as one that saturates);
* seasonal residual: how far each sample lies outside the range the node took within 30 minutes
  of the same time on any of the last 3 days, in robust spread units, averaged over the short
  window (a daily job's spike is no anomaly, even a little earlier, later or larger than
  yesterday's; the same spike at an hour it never ran is);
* forecast residual: how far each sample lies outside the P90 interval of a robust one-step
  forecast (the median of the previous hour, with the 90 % quantile of its absolute errors over
  the trailing 24 h as the interval's half-width), in interval widths, averaged over the short
  window; counted only where the sample also lies a spread or more outside that seasonal range
  (the daily job's spike on an idle node is far from the last hour's median, yet expected);
* memory excess: memory above what the node's memory requests explain (a leak raises memory
  with no matching change in requests; a rise that follows more pods or requests is normal): the
  residual of a trailing 24 h least-squares fit of memory on the requested-memory ratio, averaged
  over the last hour, where it has also risen by as much over the last 2 hours (a leak is a
  sustained ramp; what lingers after it or a lasting offset is not), and has risen in each third
  of those 2 hours (a step of memory, however smoothed, rises in at most two of them);
* burst scale: the seasonal and forecast residuals and the level z-score are in units of at
  least half the node's largest 15-minute floor above its median over the trailing week (ended
  an hour earlier), the level shift in units of the same width a day earlier: a nearly idle
  node's usual bursts are not incidents;
* scrape health: returns after a missing scrape in the short window and the hour, beyond the two
  and three that isolated missed scrapes and one outage explain (a flapping node).

"Not defined" (an empty window) is 0, the neutral value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.definitions import MEMORY_REQUESTED_RATIO
from components.features.engineering import compute_node_features, infer_step_seconds

RESOURCES: dict[str, str] = {"cpu": CPU_UTILIZATION, "memory": MEMORY_UTILIZATION}
ROBUST_WINDOW_SECONDS = 86_400
MEDIUM_SECONDS = 900
HOUR_SECONDS = 3600
MAD_TO_SIGMA = 1.4826
SHORT_MIN_STEPS = 6
JUMP_SIGMAS = 6.0
_MIN_SCALE = 0.002
# Share of a node's largest rise of the trailing day below which a residual is no anomaly.
BURST_WIDTH_SHARE = 0.5
BURST_MEMORY_DAYS = 7
_MIN_NOISE = 0.001
_MIN_PERIODS_SHARE = 0.05
PULSE_MAX_STEPS = 3
LEAK_RISE_HOURS = 2
LEAK_RAMP_PARTS = 3
_MIN_REQUEST_VARIANCE = 1e-6
_MAX_REQUEST_SLOPE = 2.0
# Consecutive values closer than the larger of these are a repeat: utilisation computed from
# counters (rate() in PromQL) carries float noise (~1e-12) and the counters' own resolution
# (node_exporter's CPU seconds count 10 ms jiffies) around a held value.
EQUAL_TOLERANCE = 1e-9
REPEAT_NOISE_SHARE = 0.01
FROZEN_MIN_RUN_SECONDS = 300
SEASON_SECONDS = 86_400
SEASON_NEIGHBOURHOOD_SECONDS = 1800
SEASON_DAYS = 3
FORECAST_INTERVAL_QUANTILE = 0.9

# Lookback the detector needs before the first scored sample for its features to be complete.
LOOKBACK_SECONDS = 2 * ROBUST_WINDOW_SECONDS


def resource_features(prefix: str) -> tuple[str, ...]:
    """The per-resource feature names of :func:`anomaly_features` for ``prefix``."""
    return (
        f"{prefix}_floor",
        f"{prefix}_floor_rz",
        f"{prefix}_jumps",
        f"{prefix}_pulses",
        f"{prefix}_rise_1h",
        f"{prefix}_rise_6h",
        f"{prefix}_shift_rz",
        f"{prefix}_seasonal_rz",
        f"{prefix}_forecast_rz",
    )


HEALTH_FEATURES = ("flaps_excess_short", "flaps_excess_1h")
MEMORY_EXCESS_FEATURES = ("memory_excess",)
FROZEN_FEATURES = ("frozen_share",)
# Returns after a missing scrape that isolated misses and one outage explain, per window.
EXPECTED_FLAPS = {"flaps_excess_short": 2.0, "flaps_excess_1h": 3.0}


def feature_names(resources: Sequence[str]) -> tuple[str, ...]:
    """All feature columns :func:`anomaly_features` writes for ``resources``."""
    names: list[str] = []
    for prefix in resources:
        names += resource_features(prefix)
    extra = MEMORY_EXCESS_FEATURES if "memory" in resources else ()
    return (*names, *extra, *FROZEN_FEATURES, *HEALTH_FEATURES)


def check_resources(resources: Sequence[str]) -> tuple[str, ...]:
    """Validate a resource list (names among :data:`RESOURCES`, distinct, at least one)."""
    out = tuple(resources)
    unknown = [r for r in out if r not in RESOURCES]
    if unknown or not out or len(set(out)) != len(out):
        raise MlschedError(
            f"resources must be distinct names among {', '.join(RESOURCES)}, got {list(out)}"
        )
    return out


def short_window_steps(step: int) -> int:
    """Samples in the short window: 15 minutes, and at least 6 samples on coarse series."""
    return max(SHORT_MIN_STEPS, -(-MEDIUM_SECONDS // step))


def _rolling(values: np.ndarray, steps: int, how: str) -> np.ndarray:
    roll = pd.Series(values, copy=False).rolling(
        steps, min_periods=max(1, int(steps * _MIN_PERIODS_SHARE))
    )
    return getattr(roll, how)().to_numpy(dtype=np.float64)


def _run_so_far(flags: np.ndarray) -> np.ndarray:
    """At each position, how many positions in a row up to it are True (0 where False)."""
    index = np.arange(len(flags))
    last_false = np.maximum.accumulate(np.where(flags, -1, index))
    return np.where(flags, index - last_false, 0)


def _pulses(grid: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per sample, the size of a short pulse whose fall ends here (0 where none)."""
    step = np.full(len(grid), np.nan)
    step[1:] = grid[1:] - grid[:-1]
    fall = np.nan_to_num(-step, nan=0.0)
    rise = np.zeros(len(grid))
    for lag in range(1, PULSE_MAX_STEPS + 1):
        rise[lag:] = np.fmax(rise[lag:], np.nan_to_num(step[:-lag], nan=0.0))
    size = np.minimum(fall, rise)
    return np.where(size > threshold, size, 0.0)


def _lagged(values: np.ndarray, steps: int) -> np.ndarray:
    """``values`` shifted ``steps`` later (NaN before)."""
    out = np.full(len(values), np.nan)
    if 0 < steps < len(values):
        out[steps:] = values[:-steps]
    elif steps == 0:
        out[:] = values
    return out


def _burst_width(floor: np.ndarray, median: np.ndarray, window: int, hour: int) -> np.ndarray:
    # The largest burst is looked for over BURST_MEMORY_DAYS: a node bursts a few times a day,
    # not every day as high.
    """The least residual scale a node's own bursts set: ``BURST_WIDTH_SHARE`` of its largest
    sustained rise (the short-window floor) above the median over the trailing 24 h that ended
    an hour earlier (so a burst does not mask itself; a lone spike sets nothing). A nearly idle
    node whose bursts are many times its robust spread would otherwise score every natural burst
    as far outside its forecast as an incident."""
    excursion = _lagged(_rolling(floor, BURST_MEMORY_DAYS * window, "max") - median, hour)
    return BURST_WIDTH_SHARE * np.maximum(np.nan_to_num(excursion, nan=0.0), 0.0)


def _residuals(
    grid: np.ndarray,
    median: np.ndarray,
    scale: np.ndarray,
    burst: np.ndarray,
    step: int,
    short: int,
) -> dict[str, np.ndarray]:
    """Level shift, seasonal residual and forecast residual of one node's resource grid."""
    window = max(2, ROBUST_WINDOW_SECONDS // step)
    hour = max(1, -(-HOUR_SECONDS // step))
    recent = _rolling(grid, hour, "median")
    # Bursts seen before the reference day: a new level that lasts an hour is no burst of its own.
    usual = np.nan_to_num(_lagged(burst, window), nan=0.0)
    shift = np.abs(recent - _lagged(median, hour)) / np.maximum(_lagged(scale, hour), usual)
    near = max(1, SEASON_NEIGHBOURHOOD_SECONDS // step)
    day = max(1, SEASON_SECONDS // step)
    # The range the node took at this time of day on any of the last SEASON_DAYS days: a daily
    # job that runs a little earlier, later or larger than yesterday is still the daily job.
    high = np.full(len(grid), np.nan)
    low = np.full(len(grid), np.nan)
    for days in range(1, SEASON_DAYS + 1):
        high = np.fmax(high, _lagged(_rolling(grid, 2 * near + 1, "max"), days * day - near))
        low = np.fmin(low, _lagged(_rolling(grid, 2 * near + 1, "min"), days * day - near))
    outside = np.fmax(grid - high, low - grid) / np.maximum(scale, burst)
    seasonal = _rolling(np.maximum(outside, 0.0), short, "mean")
    forecast = _lagged(recent, 1)
    error = np.abs(grid - forecast)
    spread = pd.Series(error, copy=False).rolling(
        window, min_periods=max(1, int(window * _MIN_PERIODS_SHARE))
    )
    width = _lagged(spread.quantile(FORECAST_INTERVAL_QUANTILE).to_numpy(np.float64), 1)
    width = np.maximum(np.maximum(width, _MIN_SCALE), burst)
    # A sample inside the node's seasonal range (within one spread of it) is no surprise, however
    # far from the last hour's median: the daily job's spike on an idle node.
    beyond = np.where(outside >= 1.0, np.maximum(error / width - 1.0, 0.0), 0.0)
    return {
        "shift_rz": shift,
        "seasonal_rz": seasonal,
        "forecast_rz": _rolling(beyond, short, "mean"),
    }


def _node_resource(
    columns: np.ndarray, values: np.ndarray, n_steps: int, step: int
) -> dict[str, np.ndarray]:
    """Robust statistics of one node's resource on its grid; returns per-sample arrays."""
    grid = np.full(n_steps, np.nan)
    grid[columns] = values
    window = max(2, ROBUST_WINDOW_SECONDS // step)
    short = short_window_steps(step)
    median = _rolling(grid, window, "median")
    scale = np.maximum(MAD_TO_SIGMA * _rolling(np.abs(grid - median), window, "median"), _MIN_SCALE)
    diff = np.full(n_steps, np.nan)
    diff[1:] = np.abs(grid[1:] - grid[:-1])
    noise = np.maximum(MAD_TO_SIGMA * _rolling(diff, window, "median"), _MIN_NOISE)
    floor = _rolling(grid, short, "min")
    low, high = _rolling(grid, window, "min"), _rolling(grid, window, "max")
    jumps = _rolling((diff > JUMP_SIGMAS * noise).astype(np.float64), short, "sum")
    pulses = _rolling(_pulses(grid, JUMP_SIGMAS * noise), short, "sum")
    burst = _burst_width(floor, median, window, max(1, -(-HOUR_SECONDS // step)))
    residuals = _residuals(grid, median, scale, burst, step, short)
    return {
        **{key: values[columns] for key, values in residuals.items()},
        "median": median[columns],
        "scale": scale[columns],
        "burst": burst[columns],
        "floor": floor[columns],
        "jumps": jumps[columns],
        "pulses": pulses[columns],
        "repeat": (diff <= np.maximum(EQUAL_TOLERANCE, REPEAT_NOISE_SHARE * noise))[columns],
        "inside": ((grid > low + EQUAL_TOLERANCE) & (grid < high - EQUAL_TOLERANCE))[columns],
    }


def _memory_excess(
    columns: np.ndarray, memory: np.ndarray, requested: np.ndarray, n_steps: int, step: int
) -> dict[str, np.ndarray]:
    """Memory above the trailing 24 h least-squares fit on the requested-memory ratio."""
    y = np.full(n_steps, np.nan)
    y[columns] = memory
    x = np.full(n_steps, np.nan)
    x[columns] = np.nan_to_num(requested, nan=0.0)
    window = max(2, ROBUST_WINDOW_SECONDS // step)
    mean_x, mean_y = _rolling(x, window, "mean"), _rolling(y, window, "mean")
    var_x = _rolling(x * x, window, "mean") - mean_x**2
    cov = _rolling(x * y, window, "mean") - mean_x * mean_y
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(var_x > _MIN_REQUEST_VARIANCE, cov / var_x, 0.0)
    slope = np.clip(np.nan_to_num(slope, nan=0.0), 0.0, _MAX_REQUEST_SLOPE)
    excess = y - (mean_y + slope * (x - mean_x))
    hour = max(1, -(-HOUR_SECONDS // step))
    smoothed = _rolling(excess, hour, "mean")
    lag = LEAK_RISE_HOURS * hour
    rise = np.full(n_steps, np.nan)
    rise[lag:] = smoothed[lag:] - smoothed[:-lag]
    # A leak keeps rising: in each of the last LEAK_RAMP_PARTS parts of the rise window (a step
    # that more memory in use brings rises in at most two of them, however it is smoothed).
    quick = _rolling(excess, short_window_steps(step), "mean")
    part = max(1, lag // LEAK_RAMP_PARTS)
    ramp = np.full(n_steps, np.inf)
    for k in range(LEAK_RAMP_PARTS):
        ramp = np.fmin(ramp, _lagged(quick, k * part) - _lagged(quick, (k + 1) * part))
    sustained = LEAK_RAMP_PARTS * ramp
    return {"memory_excess": np.maximum(np.fmin(np.fmin(smoothed, rise), sustained), 0.0)[columns]}


def _node_flaps(columns: np.ndarray, n_steps: int, step: int) -> dict[str, np.ndarray]:
    present = np.zeros(n_steps, dtype=bool)
    present[columns] = True
    returns = np.zeros(n_steps)
    returns[1:] = present[1:] & ~present[:-1]
    returns[: int(columns.min()) + 1] = 0.0
    cumulative = np.cumsum(returns)
    out = {}
    windows = (("flaps_excess_short", short_window_steps(step)), ("flaps_excess_1h", None))
    for name, steps in windows:
        k = steps if steps is not None else max(1, -(-HOUR_SECONDS // step))
        lagged = np.concatenate([np.zeros(k), cumulative[:-k]]) if k < n_steps else 0.0
        out[name] = np.maximum((cumulative - lagged)[columns] - EXPECTED_FLAPS[name], 0.0)
    return out


RESIDUAL_STATS = ("shift_rz", "seasonal_rz", "forecast_rz")
_NODE_STATS = (
    "median",
    "scale",
    "burst",
    "floor",
    "jumps",
    "pulses",
    "repeat",
    "inside",
    *RESIDUAL_STATS,
)


def anomaly_features(
    metrics: pd.DataFrame,
    resources: Sequence[str] = ("cpu", "memory"),
    step_seconds: int | None = None,
) -> pd.DataFrame:
    """The detector's features for every node-metrics row.

    Args:
        metrics: node metrics (contract of :mod:`components.contracts`); with ``resources`` of
            ``("cpu",)`` the memory column may be all NaN (a CPU-only source such as NAB).
        resources: which utilisation columns to use.
        step_seconds: the scrape interval (default: inferred).

    Returns:
        ``timestamp``, ``node`` and :func:`feature_names` (float64, no NaN), sorted by
        (node, timestamp).
    """
    resources = check_resources(resources)
    frame = metrics
    if MEMORY_UTILIZATION not in frame.columns:
        frame = frame.assign(**{MEMORY_UTILIZATION: np.nan})
    step = int(step_seconds) if step_seconds is not None else infer_step_seconds(frame)
    base = compute_node_features(frame, step)
    out = pd.DataFrame({TIMESTAMP: base[TIMESTAMP], NODE: base[NODE]})
    nanos = base[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    node_codes, _ = pd.factorize(base[NODE])
    boundaries = np.flatnonzero(np.diff(node_codes)) + 1
    blocks = np.split(np.arange(len(base)), boundaries)
    columns = {name: np.zeros(len(base)) for name in feature_names(resources)}
    grid_columns = []
    for rows in blocks:
        absolute = nanos[rows] // (step * 1_000_000_000)
        grid_columns.append(absolute - absolute.min())
    repeat: np.ndarray | None = None
    inside: np.ndarray | None = None
    for prefix in resources:
        values = base[RESOURCES[prefix]].to_numpy(dtype=np.float64)
        stats = {key: np.zeros(len(base)) for key in _NODE_STATS}
        for rows, cols in zip(blocks, grid_columns, strict=True):
            node_stats = _node_resource(cols, values[rows], int(cols.max()) + 1, step)
            for key in _NODE_STATS:
                stats[key][rows] = node_stats[key]
        median, scale = stats["median"], stats["scale"]
        columns[f"{prefix}_floor"] = stats["floor"]
        columns[f"{prefix}_floor_rz"] = np.maximum(
            (stats["floor"] - median) / np.maximum(scale, stats["burst"]), 0.0
        )
        columns[f"{prefix}_jumps"] = stats["jumps"]
        columns[f"{prefix}_pulses"] = stats["pulses"]
        for key in RESIDUAL_STATS:
            columns[f"{prefix}_{key}"] = stats[key]
        repeat = stats["repeat"] if repeat is None else np.minimum(repeat, stats["repeat"])
        inside = stats["inside"] if inside is None else np.maximum(inside, stats["inside"])
        for window in ("1h", "6h"):
            slope = base[f"{prefix}_slope_{window}"].to_numpy(dtype=np.float64)
            columns[f"{prefix}_rise_{window}"] = np.maximum(slope, 0.0)
    if "memory" in resources:
        memory = base[MEMORY_UTILIZATION].to_numpy(dtype=np.float64)
        requested = base[MEMORY_REQUESTED_RATIO].to_numpy(dtype=np.float64)
        for rows, cols in zip(blocks, grid_columns, strict=True):
            excess = _memory_excess(cols, memory[rows], requested[rows], int(cols.max()) + 1, step)
            for name in MEMORY_EXCESS_FEATURES:
                columns[name][rows] = excess[name]
    short = short_window_steps(step)
    min_run = max(1, FROZEN_MIN_RUN_SECONDS // step)
    for rows, cols in zip(blocks, grid_columns, strict=True):
        held = np.zeros(int(cols.max()) + 1, dtype=bool)
        held[cols] = repeat[rows] * inside[rows] > 0
        frozen = (_run_so_far(held) >= min_run).astype(np.float64)
        grid = np.full(len(held), np.nan)
        grid[cols] = frozen[cols]
        columns["frozen_share"][rows] = _rolling(grid, short, "mean")[cols]
        flaps = _node_flaps(cols, int(cols.max()) + 1, step)
        for name in HEALTH_FEATURES:
            columns[name][rows] = flaps[name]
    for name, values in columns.items():
        out[name] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return out
