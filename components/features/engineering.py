"""Node features from node metrics: one vectorised implementation for training and serving.

:func:`compute_node_features` turns a node-metrics table (the contract of
:mod:`components.contracts`) into one feature row per node-metrics row, with the columns
``timestamp``, ``node`` and :data:`~components.features.definitions.FEATURE_NAMES` (float32).
:func:`latest_node_features` is the online path: the same function over a trailing window, keeping
each node's latest row. Training sets and served features therefore come from the same code.

How it works: the rows are placed on a regular grid per node (``nodes x scrape steps``, aligned to
the Unix epoch, a missing scrape being an empty cell), so time windows become fixed numbers of
steps and every statistic is a vectorised rolling operation over the grid that skips empty cells.
Each output value at step ``t`` is computed from cells at or before ``t`` only. See
:mod:`components.features.definitions` for the meaning of every feature.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.signal import lfilter

from components.atomic import replace_path
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.errors import ContractError, MlschedError
from components.features import definitions as d

NS = 1_000_000_000
DAY_NS = 86_400 * NS
MAX_GRID_CELLS = 150_000_000  # nodes x steps: about 1.2 GB per float64 grid
_ZSCORE_MIN_STD = 1e-9
_REQUIRED = (TIMESTAMP, NODE, CPU_UTILIZATION, MEMORY_UTILIZATION)


# --------------------------------------------------------------------------- the grid


@dataclass
class _Grid:
    """The rows of a node-metrics frame placed on a ``(nodes, steps)`` grid.

    Rows are handled in sorted (node, timestamp) order; ``rows`` maps that order back to the
    input. Output is needed only for grid columns ``>= first`` (the "region").
    """

    nodes: np.ndarray  # sorted node names
    step: int  # seconds per grid column
    n_steps: int
    first: int  # first grid column for which output is wanted
    rows: np.ndarray  # input positions, sorted by (node, timestamp)
    codes: np.ndarray  # node code of each sorted row
    columns: np.ndarray  # grid column of each sorted row
    nanos: np.ndarray  # epoch nanoseconds of each sorted row
    selected: np.ndarray  # bool per sorted row: is it an output row
    present: np.ndarray  # bool (nodes, steps)
    # Region columns whose output is read (None: all); windows are then computed only there.
    wanted: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.nodes), self.n_steps

    @property
    def n_out(self) -> int:
        return self.n_steps - self.first

    def values(self, source: np.ndarray) -> np.ndarray:
        """A float64 ``(nodes, steps)`` grid of one input column (sorted rows), NaN when empty."""
        grid = np.full(self.shape, np.nan)
        grid[self.codes, self.columns] = source
        return grid


def _nanos(frame: pd.DataFrame, what: str = "node metrics") -> np.ndarray:
    stamps = frame[TIMESTAMP]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ContractError(
            f"{what}: column '{TIMESTAMP}': expected time-zone-aware (UTC) timestamps, got "
            f"{stamps.dtype}; read node metrics with components.contracts.read_node_metrics"
        )
    return stamps.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").view(np.int64)


def infer_step_seconds(metrics: pd.DataFrame) -> int:
    """The scrape interval: the median gap between a node's consecutive samples, in seconds.

    Raises:
        MlschedError: no node has two samples.
    """
    frame = metrics[[NODE, TIMESTAMP]].sort_values([NODE, TIMESTAMP])
    nanos = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return _infer_step(pd.factorize(frame[NODE])[0], nanos)


def _infer_step(codes: np.ndarray, nanos: np.ndarray) -> int:
    same = codes[1:] == codes[:-1]
    gaps = np.diff(nanos)[same]
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        raise MlschedError(
            "node metrics: no node has two samples; cannot infer the scrape interval "
            "(pass step_seconds)"
        )
    return max(1, round(float(np.median(gaps)) / NS))


def _build_grid(metrics: pd.DataFrame, step_seconds: int | None, since_ns: int | None) -> _Grid:
    missing = [column for column in _REQUIRED if column not in metrics.columns]
    if missing:
        raise ContractError(
            f"node metrics: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, metrics.columns)) or 'none'})"
        )
    nanos = _nanos(metrics)
    codes, names = pd.factorize(metrics[NODE], sort=True)
    if (codes < 0).any():
        raise ContractError(f"node metrics: column '{NODE}': empty node name")
    codes = codes.astype(np.int64)
    ordered = (codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (nanos[1:] > nanos[:-1]))
    if ordered.all():
        rows = np.arange(len(codes))
    else:
        rows = np.lexsort((nanos, codes))
        codes, nanos = codes[rows], nanos[rows]
    if step_seconds is None:
        step = _infer_step(codes, nanos) if len(codes) else 1
    else:
        step = int(step_seconds)
        if step <= 0 or step != step_seconds:
            raise MlschedError(f"step_seconds must be a positive whole number, got {step_seconds}")
    absolute = nanos // (step * NS)
    origin = int(absolute.min()) if len(absolute) else 0
    columns = absolute - origin
    n_steps = int(columns.max()) + 1 if len(columns) else 0
    if len(names) * n_steps > MAX_GRID_CELLS:
        raise MlschedError(
            f"{len(names)} nodes x {n_steps} steps of {step}s is too large a grid for one call; "
            "compute features in time chunks (rows from chunk start - ONLINE_LOOKBACK_SECONDS "
            "on, with since=chunk start)"
        )
    clash = (codes[1:] == codes[:-1]) & (columns[1:] == columns[:-1])
    if clash.any():
        at = int(np.argmax(clash))
        first_stamp = pd.Timestamp(int(nanos[at]), tz="UTC").isoformat()
        second_stamp = pd.Timestamp(int(nanos[at + 1]), tz="UTC").isoformat()
        raise MlschedError(
            f"node {names[codes[at]]}: samples at {first_stamp} and {second_stamp} fall in the "
            f"same {step}s step; pass step_seconds equal to the scrape interval"
        )
    selected = np.ones(len(codes), dtype=bool) if since_ns is None else nanos >= since_ns
    first = int(columns[selected].min()) if selected.any() else n_steps
    present = np.zeros((len(names), n_steps), dtype=bool)
    present[codes, columns] = True
    return _Grid(
        nodes=np.asarray([str(name) for name in names], dtype=object),
        step=step,
        n_steps=n_steps,
        first=first,
        rows=rows,
        codes=codes,
        columns=columns,
        nanos=nanos,
        selected=selected,
        present=present,
    )


# --------------------------------------------------------------------------- grid operations


def _steps(grid: _Grid, seconds: int) -> int:
    """Grid steps in a window of ``seconds``: the steps ``s`` with ``t - seconds < s <= t``."""
    return max(1, -(-seconds // grid.step))


def _rolling(grid: _Grid, values: np.ndarray, seconds: int, how: str, q: float = 0.5):
    """A rolling statistic over the window ending at each region column; NaN where no sample."""
    k = _steps(grid, seconds)
    if grid.wanted is not None:
        return _windows_at(grid, values, k, how, q)
    lo = max(0, grid.first - k + 1)
    roll = pd.DataFrame(values[:, lo:].T, copy=False).rolling(k, min_periods=1)
    if how == "quantile":
        result = roll.quantile(q, interpolation="linear")
    elif how == "std":
        result = roll.std(ddof=0)
    else:
        result = getattr(roll, how)()
    return result.to_numpy(dtype=np.float64).T[:, grid.first - lo :]


def _windows_at(grid: _Grid, values: np.ndarray, k: int, how: str, q: float) -> np.ndarray:
    """:func:`_rolling` at the wanted region columns only (NaN elsewhere)."""
    out = np.full((len(grid.nodes), grid.n_out), np.nan)
    for column in grid.wanted:
        window = values[:, max(0, column - k + 1) : column + 1]
        seen = np.isfinite(window).any(axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
            if how == "quantile":
                result = np.nanquantile(window, q, axis=1)
            elif how == "std":
                result = np.nanstd(window, axis=1)
            else:
                result = getattr(np, f"nan{how}")(window, axis=1)
        out[:, column - grid.first] = np.where(seen, result, np.nan)
    return out


def _counts(grid: _Grid, cumulative: np.ndarray, seconds: int) -> np.ndarray:
    """Window sums over the region from an integer cumulative sum along the steps."""
    k = _steps(grid, seconds)
    out = cumulative[:, grid.first :].copy()
    if grid.first >= k:
        out -= cumulative[:, grid.first - k : grid.n_steps - k]
    elif grid.n_steps > k:
        start = k - grid.first
        out[:, start:] -= cumulative[:, : grid.n_steps - k]
    return out


def _lag(grid: _Grid, values: np.ndarray, seconds: int) -> np.ndarray:
    """The grid value at the last step at or before ``t - seconds``, for each region column."""
    shift = max(1, -(-seconds // grid.step))
    out = np.full((len(grid.nodes), grid.n_out), np.nan)
    source_lo = grid.first - shift
    skip = max(0, -source_lo)
    if skip < grid.n_out:
        out[:, skip:] = values[:, source_lo + skip : grid.n_steps - shift]
    return out


def _seasonal_lead(
    grid: _Grid, values: np.ndarray, lead_seconds: int, days: tuple[int, ...]
) -> np.ndarray:
    """Mean over ``days`` of the change from ``t - day`` to ``t - day + lead`` (NaN: none seen)."""
    return mean_where_seen(
        _lag(grid, values, day * d.SEASONAL_DAY_SECONDS - lead_seconds)
        - _lag(grid, values, day * d.SEASONAL_DAY_SECONDS)
        for day in days
    )


def mean_where_seen(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Element-wise mean of ``arrays`` over their finite entries (NaN where none is); one array
    at a time, so a week of day-back grids is never held at once."""
    total = count = 0.0
    for array in arrays:
        seen = np.isfinite(array)
        total = total + np.where(seen, array, 0.0)
        count = count + seen
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _ewma(grid: _Grid, values: np.ndarray, half_life_seconds: int) -> np.ndarray:
    """Exponentially weighted mean with time decay: missing scrapes age the older samples."""
    decay = 0.5 ** (grid.step / half_life_seconds)
    numerator = lfilter([1.0], [1.0, -decay], np.where(grid.present, values, 0.0), axis=1)
    weight = lfilter([1.0], [1.0, -decay], grid.present.astype(np.float64), axis=1)
    numerator, weight = numerator[:, grid.first :], weight[:, grid.first :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, numerator / weight, np.nan)


def _slope(
    grid: _Grid, values: np.ndarray, seconds: int, time_sums: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Least-squares slope over the window, per hour."""
    count, sum_t, sum_tt, t = time_sums
    sum_x = _rolling(grid, values, seconds, "sum")
    sum_tx = _rolling(grid, t * values, seconds, "sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        numerator = count * sum_tx - sum_t * sum_x
        denominator = count * sum_tt - sum_t * sum_t
        slope = np.where((count >= 2) & (denominator > 0), numerator / denominator, np.nan)
    return slope * (3600.0 / grid.step)


def _time_sums(grid: _Grid, seconds: int) -> tuple[np.ndarray, ...]:
    """Window count, sum of t and sum of t^2 over present samples (t in steps, local origin)."""
    k = _steps(grid, seconds)
    lo = max(0, grid.first - k + 1)
    t = np.where(grid.present, np.arange(grid.n_steps, dtype=np.float64) - lo, np.nan)
    count = _counts(grid, np.cumsum(grid.present, axis=1, dtype=np.int64), seconds)
    return (
        count.astype(np.float64),
        _rolling(grid, t, seconds, "sum"),
        _rolling(grid, t * t, seconds, "sum"),
        t,
    )


def _cluster_mean(present: np.ndarray, values: np.ndarray, count: np.ndarray) -> np.ndarray:
    total = np.where(present, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _cluster_rank(present: np.ndarray, values: np.ndarray, count: np.ndarray) -> np.ndarray:
    masked = np.where(present, values, np.nan)
    ranks = pd.DataFrame(masked.T, copy=False).rank(axis=1, method="average").to_numpy().T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 1, (ranks - 1.0) / (count - 1.0), 0.5)


# --------------------------------------------------------------------------- the features


class _Writer:
    """Collects feature columns (grid regions or per-row arrays) into one float32 block."""

    def __init__(self, grid: _Grid):
        self.grid = grid
        self.out_codes = grid.codes[grid.selected]
        self.out_columns = grid.columns[grid.selected] - grid.first
        self.out_cells = self.out_codes * grid.n_out + self.out_columns
        self.block = np.empty((len(d.FEATURE_NAMES), len(self.out_codes)), dtype=np.float32)
        self.index = {name: i for i, name in enumerate(d.FEATURE_NAMES)}
        self.written: set[str] = set()

    def put(self, name: str, values: np.ndarray) -> None:
        if values.ndim == 2:
            if values.flags.c_contiguous:
                values = np.take(values.reshape(-1), self.out_cells)
            else:
                values = values[self.out_codes, self.out_columns]
        self.block[self.index[name]] = values
        self.written.add(name)

    def frame(self) -> pd.DataFrame:
        missing = [name for name in d.FEATURE_NAMES if name not in self.written]
        if missing:  # pragma: no cover - a programming error
            raise AssertionError(f"features not computed: {missing}")
        grid = self.grid
        frame = pd.DataFrame(self.block.T, columns=list(d.FEATURE_NAMES), copy=False)
        stamps = pd.to_datetime(grid.nanos[grid.selected], unit="ns", utc=True)
        frame.insert(0, NODE, grid.nodes[self.out_codes])
        frame.insert(0, TIMESTAMP, stamps)
        return frame


def _row_values(metrics: pd.DataFrame, grid: _Grid, column: str) -> np.ndarray | None:
    if column not in metrics.columns:
        return None
    values = pd.to_numeric(metrics[column], errors="coerce").to_numpy(dtype=np.float64)
    return values[grid.rows]


def _resource_features(
    writer: _Writer, grid: _Grid, prefix: str, row_values: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-resource features; returns the regions the cluster features reuse."""
    values = grid.values(row_values)
    selected = row_values[grid.selected]
    writer.put(d.RESOURCES[prefix], selected)
    means = {w: _rolling(grid, values, d.WINDOWS[w], "mean") for w in d.MEAN_WINDOWS}
    stds = {w: _rolling(grid, values, d.WINDOWS[w], "std") for w in d.STD_WINDOWS}
    for w, mean in means.items():
        writer.put(f"{prefix}_mean_{w}", mean)
    for w, std in stds.items():
        writer.put(f"{prefix}_std_{w}", std)
    for w in d.MIN_WINDOWS:
        writer.put(f"{prefix}_min_{w}", _rolling(grid, values, d.WINDOWS[w], "min"))
    for w in d.MAX_WINDOWS:
        writer.put(f"{prefix}_max_{w}", _rolling(grid, values, d.WINDOWS[w], "max"))
    for name, q, w in d.QUANTILES:
        writer.put(f"{prefix}_{name}_{w}", _rolling(grid, values, d.WINDOWS[w], "quantile", q))
    for h, seconds in d.EWMA_HALF_LIVES.items():
        writer.put(f"{prefix}_ewma_{h}", _ewma(grid, values, seconds))
    for w in d.SLOPE_WINDOWS:
        sums = _time_sums(grid, d.WINDOWS[w])
        writer.put(f"{prefix}_slope_{w}", _slope(grid, values, d.WINDOWS[w], sums))
    for w in d.ZSCORE_WINDOWS:
        mean = means[w][writer.out_codes, writer.out_columns]
        std = stds[w][writer.out_codes, writer.out_columns]
        with np.errstate(invalid="ignore", divide="ignore"):
            zscore = np.where(std > _ZSCORE_MIN_STD, (selected - mean) / std, np.nan)
        writer.put(f"{prefix}_zscore_{w}", zscore)
    for lag, seconds in d.LAGS.items():
        writer.put(f"{prefix}_{lag}", _lag(grid, values, seconds))
    for lead, seconds in d.SEASONAL_LEADS.items():
        for kind, days in d.SEASONAL_KINDS.items():
            name = f"{prefix}_{d.seasonal_lead_suffix(lead, kind)}"
            writer.put(name, _seasonal_lead(grid, values, seconds, days))
    return {"values": values[:, grid.first :], d.CLUSTER_MEAN_WINDOW: means[d.CLUSTER_MEAN_WINDOW]}


def _state_features(writer: _Writer, grid: _Grid, rows: dict[str, np.ndarray]) -> None:
    """Time encodings, cross-resource ratios, requests, pods, network and scrape health."""
    nanos = grid.nanos[grid.selected]
    day_phase = (nanos % DAY_NS) / DAY_NS
    weekday = ((nanos // DAY_NS) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    week_phase = (weekday + day_phase) / 7.0
    writer.put("hour_of_day_sin", np.sin(2 * np.pi * day_phase))
    writer.put("hour_of_day_cos", np.cos(2 * np.pi * day_phase))
    writer.put("day_of_week_sin", np.sin(2 * np.pi * week_phase))
    writer.put("day_of_week_cos", np.cos(2 * np.pi * week_phase))
    writer.put("is_weekend", (weekday >= 5).astype(np.float64))

    cpu = rows[CPU_UTILIZATION][grid.selected]
    memory = rows[MEMORY_UTILIZATION][grid.selected]
    with np.errstate(invalid="ignore", divide="ignore"):
        writer.put("cpu_to_memory_ratio", np.where(memory > 0, cpu / memory, np.nan))
        writer.put("headroom", 1.0 - np.maximum(cpu, memory))
        for prefix, column in d.RESOURCES.items():
            usage = rows[column][grid.selected]
            requested = _selected_or_nan(rows, d.REQUESTED_RATIO[prefix], grid)
            ratio = np.where(requested > 0, usage / requested, np.nan)
            writer.put(f"{prefix}_usage_to_request", ratio)
            writer.put(f"{prefix}_request_slack", requested - usage)

    pods = rows.get(d.POD_COUNT)
    writer.put(d.POD_COUNT, _selected_or_nan(rows, d.POD_COUNT, grid))
    change = f"{d.POD_COUNT}_change_{d.POD_CHANGE_LAG}"
    if pods is None:
        writer.put(change, _nan_rows(grid))
    else:
        pod_grid = grid.values(pods)
        lagged = _lag(grid, pod_grid, d.WINDOWS[d.POD_CHANGE_LAG])
        writer.put(change, pod_grid[:, grid.first :] - lagged)
    for column in (d.CPU_REQUESTED_RATIO, d.MEMORY_REQUESTED_RATIO, d.NETWORK_RECEIVE):
        writer.put(column, _selected_or_nan(rows, column, grid))
    network = rows.get(d.NETWORK_RECEIVE)
    name = f"network_receive_mean_{d.NETWORK_MEAN_WINDOW}"
    if network is None:
        writer.put(name, _nan_rows(grid))
    else:
        seconds = d.WINDOWS[d.NETWORK_MEAN_WINDOW]
        writer.put(name, _rolling(grid, grid.values(network), seconds, "mean"))

    _health_features(writer, grid)


def _health_features(writer: _Writer, grid: _Grid) -> None:
    present = grid.present
    first_seen = np.argmax(present, axis=1)[:, None]
    column = np.arange(grid.first, grid.n_steps)[None, :]
    since_first = column - first_seen + 1
    cumulative = np.cumsum(present, axis=1, dtype=np.int64)
    for w in d.HEALTH_WINDOWS:
        k = _steps(grid, d.WINDOWS[w])
        expected = np.clip(since_first, 0, k)
        count = _counts(grid, cumulative, d.WINDOWS[w])
        with np.errstate(invalid="ignore", divide="ignore"):
            missing = np.where(expected > 0, 1.0 - count / expected, np.nan)
        writer.put(f"missing_ratio_{w}", missing)
    returns = np.zeros_like(present)
    returns[:, 1:] = present[:, 1:] & ~present[:, :-1]
    returns &= np.arange(grid.n_steps)[None, :] > first_seen
    cumulative_returns = np.cumsum(returns, axis=1, dtype=np.int64)
    for w in d.HEALTH_WINDOWS:
        writer.put(f"flaps_{w}", _counts(grid, cumulative_returns, d.WINDOWS[w]).astype(float))
    gaps = np.full(len(grid.nanos), np.nan)
    same_node = grid.codes[1:] == grid.codes[:-1]
    gaps[1:] = np.where(same_node, np.diff(grid.nanos) / NS, np.nan)
    writer.put("scrape_gap_seconds", gaps[grid.selected])


def _cluster_features(writer: _Writer, grid: _Grid, regions: dict[str, dict]) -> None:
    present = grid.present[:, grid.first :]
    count = present.sum(axis=0).astype(np.float64)
    window = d.CLUSTER_MEAN_WINDOW
    for prefix in d.RESOURCES:
        values = regions[prefix]["values"]
        mean = _cluster_mean(present, values, count)
        writer.put(f"{prefix}_minus_cluster_mean", values - mean[None, :])
        window_mean = regions[prefix][window]
        cluster_window_mean = _cluster_mean(present, window_mean, count)
        writer.put(f"{prefix}_mean_{window}_minus_cluster", window_mean - cluster_window_mean)
        writer.put(f"{prefix}_cluster_rank", _cluster_rank(present, values, count))
        writer.put(f"cluster_{prefix}_mean", np.broadcast_to(mean, present.shape))
    cumulative = np.cumsum(grid.present, axis=1, dtype=np.int64)
    seen = (_counts(grid, cumulative, d.WINDOWS[d.REPORTING_WINDOW]) > 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(seen > 0, count / seen, np.nan)
    writer.put("cluster_reporting_ratio", np.broadcast_to(ratio, present.shape))


def _selected_or_nan(rows: dict[str, np.ndarray], column: str, grid: _Grid) -> np.ndarray:
    values = rows.get(column)
    return _nan_rows(grid) if values is None else values[grid.selected]


def _nan_rows(grid: _Grid) -> np.ndarray:
    return np.full(int(grid.selected.sum()), np.nan)


def compute_node_features(
    metrics: pd.DataFrame,
    step_seconds: int | None = None,
    *,
    since: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Compute every node feature for every node-metrics row.

    Args:
        metrics: node metrics as read by :func:`components.contracts.read_node_metrics`
            (``timestamp`` UTC, ``node``, ``cpu_utilization``, ``memory_utilization`` and the
            optional extras of :data:`~components.features.definitions.EXTRA_COLUMNS`; absent
            extras give NaN features). Any row order.
        step_seconds: the scrape interval; by default the median gap between a node's samples.
            Windows and lags are counted in steps of it, aligned to the Unix epoch.
        since: compute features only for rows at or after this time; earlier rows serve as
            history (the online path and incremental jobs use it to save work).

    Returns:
        ``timestamp``, ``node`` and :data:`~components.features.definitions.FEATURE_NAMES`
        (float32), one row per input row (at or after ``since``), sorted by (node, timestamp),
        with a fresh index.

    Raises:
        ContractError: missing columns or naive timestamps.
        MlschedError: two samples of a node in one step, or a grid too large for one call.
    """
    since_ns = None
    if since is not None:
        since_ns = _utc(since, "since").value
    grid = _build_grid(metrics, step_seconds, since_ns)
    if not grid.selected.any():
        return _empty_features()
    rows: dict[str, np.ndarray] = {}
    for column in (CPU_UTILIZATION, MEMORY_UTILIZATION, *d.EXTRA_COLUMNS):
        values = _row_values(metrics, grid, column)
        if values is not None:
            rows[column] = values
    return _grid_features(grid, rows)


def latest_grid_features(
    nodes: np.ndarray, step_seconds: int, nanos: np.ndarray, columns: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The online path over a ready ``(nodes, steps)`` grid of consecutive steps (a live
    loop's history): each node's features at its latest sample, without building a frame.

    Args:
        nodes: the node names of the grid rows.
        nanos: int64 sample times in epoch nanoseconds, 0 in an empty cell.
        columns: node-metrics column -> float64 grid (``cpu_utilization`` and
            ``memory_utilization`` required, the extras optional).

    Returns:
        As :func:`latest_node_features` over the same samples (lags beyond the grid are NaN).
    """
    present = nanos > 0
    codes, steps = np.nonzero(present)  # row-major: sorted by node, then time
    if len(codes) == 0:
        return _empty_features()
    latest = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    selected = steps == latest[codes]
    grid = _Grid(
        nodes=np.asarray(nodes, dtype=object),
        step=int(step_seconds),
        n_steps=present.shape[1],
        first=int(steps[selected].min()),
        rows=np.arange(len(codes)),
        codes=codes.astype(np.int64),
        columns=steps.astype(np.int64),
        nanos=nanos[present],
        selected=selected,
        present=present,
    )
    grid.wanted = np.unique(steps[selected])
    return _grid_features(grid, {name: values[present] for name, values in columns.items()})


def _grid_features(grid: _Grid, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    writer = _Writer(grid)
    regions = {
        prefix: _resource_features(writer, grid, prefix, rows[column])
        for prefix, column in d.RESOURCES.items()
    }
    _state_features(writer, grid, rows)
    _cluster_features(writer, grid, regions)
    return writer.frame()


def _utc(value: pd.Timestamp | str, what: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise MlschedError(f"{what}: {value!r} has no time zone; pass a UTC timestamp")
    return stamp.tz_convert("UTC").as_unit("ns")


def latest_node_features(
    metrics: pd.DataFrame,
    at: pd.Timestamp | str,
    step_seconds: int | None = None,
    *,
    lookback_seconds: int = d.ONLINE_LOOKBACK_SECONDS,
) -> pd.DataFrame:
    """The online path: each node's features at its latest sample at or before ``at``.

    It is :func:`compute_node_features` over the trailing ``lookback_seconds`` (long enough for
    the longest lag and window), so its values equal the offline ones for the same rows.

    Returns:
        One row per node that reported in ``(at - lookback, at]``, with the same columns as
        :func:`compute_node_features`; ``timestamp`` is the node's latest sample time.
    """
    at = _utc(at, "at")
    stamps = metrics[TIMESTAMP]
    window = metrics[(stamps > at - pd.Timedelta(seconds=lookback_seconds)) & (stamps <= at)]
    if window.empty:
        return _empty_features()
    latest = window.groupby(NODE, sort=True)[TIMESTAMP].max()
    features = compute_node_features(window, step_seconds, since=latest.min())
    wanted = features[NODE].map(latest)
    return features[features[TIMESTAMP] == wanted].reset_index(drop=True)


def _empty_features() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=np.float32) for name in d.FEATURE_NAMES})
    frame.insert(0, NODE, pd.Series(dtype=object))
    frame.insert(0, TIMESTAMP, pd.Series(dtype="datetime64[ns, UTC]"))
    return frame


# --------------------------------------------------------------------------- the feature table


def write_feature_table(features: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a feature table as one parquet file, atomically: the Feast offline store's source.

    Raises:
        MlschedError: a column of :data:`FEATURE_NAMES` (or ``timestamp``/``node``) is missing.
    """
    target = Path(path)
    missing = [c for c in (TIMESTAMP, NODE, *d.FEATURE_NAMES) if c not in features.columns]
    if missing:
        raise MlschedError(f"{target}: feature table lacks column(s) {', '.join(missing)}")
    if not isinstance(features[TIMESTAMP].dtype, pd.DatetimeTZDtype):
        raise MlschedError(f"{target}: feature table timestamps must be UTC (time-zone aware)")
    columns = [TIMESTAMP, NODE, *d.FEATURE_NAMES]
    table = pa.Table.from_pandas(features[columns], preserve_index=False)
    table = table.cast(
        pa.schema(
            [pa.field(TIMESTAMP, pa.timestamp("ns", tz="UTC")), pa.field(NODE, pa.string())]
            + [pa.field(name, pa.float32()) for name in d.FEATURE_NAMES]
        )
    )
    return replace_path(target, lambda tmp: pq.write_table(table, tmp, row_group_size=1 << 20))


def read_feature_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_feature_table`."""
    file = Path(path)
    if not file.is_file():
        raise MlschedError(f"{file}: no feature table (run the features step first)")
    frame = pq.read_table(file).to_pandas()
    missing = [c for c in (TIMESTAMP, NODE, *d.FEATURE_NAMES) if c not in frame.columns]
    if missing:
        raise MlschedError(
            f"{file}: feature table lacks column(s) {', '.join(missing)}; it was written by "
            "another feature-set version, so compute the features again"
        )
    return frame


# --------------------------------------------------------------------------- training sets


def point_in_time_join(
    features: pd.DataFrame,
    entity_df: pd.DataFrame,
    *,
    ttl_seconds: int = d.FEATURE_TTL_SECONDS,
    names: list[str] | tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Feast's point-in-time join in memory, for training sets too large for Feast's file store.

    Each entity row ``(node, timestamp)`` gets the features of that node's latest feature row at
    or before ``timestamp`` and at most ``ttl_seconds`` older (NaN otherwise), the semantics of
    ``get_historical_features`` with the feature views' TTL; so no later row leaks into it.

    Args:
        features: a feature table (:func:`compute_node_features` or :func:`read_feature_table`).
        entity_df: ``node`` and ``timestamp`` (UTC); other columns (labels) are kept.
        names: the features to join (default: all of :data:`FEATURE_NAMES`).

    Returns:
        ``entity_df``'s columns in its row order, then the features as float32.
    """
    names = list(d.FEATURE_NAMES if names is None else names)
    for what, frame, needed in (
        ("features", features, (TIMESTAMP, NODE, *names)),
        ("entity rows", entity_df, (TIMESTAMP, NODE)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise MlschedError(f"{what}: missing column(s) {', '.join(missing)}")
    clash = [name for name in names if name in entity_df.columns]
    if clash:
        raise MlschedError(f"entity rows already have feature column(s) {', '.join(clash)}")
    feature_nanos = _nanos(features, "features")
    entity_nanos = _nanos(entity_df, "entity rows")
    codes, nodes = pd.factorize(features[NODE])
    order = np.lexsort((feature_nanos, codes))
    sorted_codes, sorted_nanos = codes[order], feature_nanos[order]
    starts = np.searchsorted(sorted_codes, np.arange(len(nodes)), side="left")
    ends = np.searchsorted(sorted_codes, np.arange(len(nodes)), side="right")
    entity_codes = pd.Index(nodes).get_indexer(entity_df[NODE])
    source = np.full(len(entity_df), -1, dtype=np.int64)
    by_node = np.argsort(entity_codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(entity_codes[by_node])) + 1
    for rows in np.split(by_node, boundaries):
        if len(rows) == 0 or entity_codes[rows[0]] < 0:
            continue
        code = entity_codes[rows[0]]
        block = sorted_nanos[starts[code] : ends[code]]
        position = np.searchsorted(block, entity_nanos[rows], side="right") - 1
        found = position >= 0
        age = entity_nanos[rows] - block[np.maximum(position, 0)]
        found &= age <= ttl_seconds * NS
        source[rows[found]] = order[starts[code] + position[found]]
    out = entity_df.reset_index(drop=True).copy()
    hit = source >= 0
    for name in names:
        column = np.full(len(out), np.nan, dtype=np.float32)
        column[hit] = features[name].to_numpy(dtype=np.float32)[source[hit]]
        out[name] = column
    return out
