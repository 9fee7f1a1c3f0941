"""The live node-state loop: Prometheus -> the latest node features -> the Feast online store.

Each period the loop queries only the samples newer than its history (the collector's queries,
:func:`components.collect.fetch_node_metrics`), shifts them into a per-node ring buffer at the
query step (:class:`NodeHistory`), computes the features of each node's latest sample from the
buffer with the one feature implementation (:func:`~components.features.engineering.
latest_grid_features`) and writes them under their sample times. The buffer holds the longest
window plus margin (26 h); lags and seasonal leads older than that (same time last week, what
followed this time 2 to 7 days ago) are queried for the latest samples only, exactly the grid
points they read, so a period's work does not grow with the lag. A failed period is logged in
one line and retried next period from where the history ends; the loop never exits on one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.features import definitions as d
from components.features.engineering import NS, latest_grid_features, mean_where_seen

log = logging.getLogger(__name__)

HISTORY_SECONDS = max(d.WINDOWS.values()) + 2 * 3600
"""The buffer's span: the longest window, the step before it, and the EWMA's decay."""
CATCH_UP_SECONDS = 600
"""How far back a period re-queries after failed ones: a sample the query rejects (or an outage
longer than this) then costs a gap in the history, never a loop stuck on the same range."""
METRIC_COLUMNS = (CPU_UTILIZATION, MEMORY_UTILIZATION, *d.EXTRA_COLUMNS)

Fetch = Callable[..., pd.DataFrame]
"""``fetch(start, end, optional=False)``: node-metrics rows over ``[start, end]`` epoch seconds
on the step grid; ``optional``: a query without series gives no rows instead of an error."""


class NodeHistory:
    """Each node's recent node metrics on a ``(nodes, steps)`` ring of consecutive steps."""

    def __init__(self, step_seconds: int, history_seconds: int = HISTORY_SECONDS):
        self.step = int(step_seconds)
        self.n_steps = math.ceil(history_seconds / self.step) + 1
        self.end: int | None = None  # epoch step index of the last column
        self.nodes = np.empty(0, dtype=object)
        self._index: dict[str, int] = {}
        self.nanos = np.zeros((0, self.n_steps), dtype=np.int64)
        self.values = {name: np.full((0, self.n_steps), np.nan) for name in METRIC_COLUMNS}

    @property
    def end_seconds(self) -> int | None:
        """The time of the buffer's last step (epoch seconds), None while empty."""
        return None if self.end is None else self.end * self.step

    def add(self, metrics: pd.DataFrame) -> int:
        """Shift in node-metrics rows (newer steps move the ring on; older rows outside the
        span are dropped). Returns the rows kept."""
        if metrics.empty:
            return 0
        nanos = metrics[TIMESTAMP].dt.tz_convert("UTC").to_numpy("datetime64[ns]").view(np.int64)
        steps = nanos // (self.step * NS)
        newest = int(steps.max())
        self._advance(newest)
        columns = steps - (self.end - self.n_steps + 1)
        keep = columns >= 0
        rows = self._rows(metrics[NODE].to_numpy(dtype=object)[keep])
        columns = columns[keep]
        self.nanos[rows, columns] = nanos[keep]
        for name, grid in self.values.items():
            if name in metrics.columns:
                values = pd.to_numeric(metrics[name], errors="coerce").to_numpy(np.float64)
                grid[rows, columns] = values[keep]
        return int(keep.sum())

    def _advance(self, newest: int) -> None:
        if self.end is None:
            self.end = newest
            return
        shift = newest - self.end
        if shift <= 0:
            return
        self.end = newest
        for grid, empty in ((self.nanos, 0), *((v, np.nan) for v in self.values.values())):
            if shift >= self.n_steps:
                grid[:] = empty
            else:
                grid[:, :-shift] = grid[:, shift:]
                grid[:, -shift:] = empty

    def _rows(self, names: np.ndarray) -> np.ndarray:
        new = [name for name in dict.fromkeys(names.tolist()) if name not in self._index]
        if new:
            for name in new:
                self._index[name] = len(self._index)
            self.nodes = np.concatenate([self.nodes, np.asarray(new, dtype=object)])
            grow = ((0, len(new)), (0, 0))
            self.nanos = np.pad(self.nanos, grow)
            self.values = {
                k: np.pad(v, grow, constant_values=np.nan) for k, v in self.values.items()
            }
        return np.fromiter((self._index[name] for name in names), np.int64, len(names))

    def far_lag_ranges(self, since: float | None = None) -> list[tuple[int, int]]:
        """Epoch seconds ``[start, end]`` of the samples that the lags and seasonal leads beyond
        the buffer read for the latest samples of the nodes whose latest sample is after
        ``since`` (all nodes without it): exactly the grid points they read, consecutive ones
        joined into one range (empty: no such offset, or no sample yet).

        A week of days back holds about two dozen such points per node; the span between them
        (half an hour a day, or the hours between a stale node and a fresh one) is not fetched.
        """
        latest = self._latest_steps()
        if latest is None:
            return []
        if since is not None:
            latest = latest[latest * self.step > since]
        shifts = {
            shift
            for shift in (self._lag_steps(seconds) for seconds in _offsets_back())
            if shift >= self.n_steps
        }
        points = np.unique(np.subtract.outer(np.unique(latest), np.fromiter(shifts, np.int64)))
        if points.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(points) > 1) + 1
        return [
            (int(run[0]) * self.step, int(run[-1]) * self.step) for run in np.split(points, breaks)
        ]

    def _lag_steps(self, seconds: int) -> int:
        return -(-seconds // self.step)  # as the feature implementation counts a lag

    def _latest_steps(self) -> np.ndarray | None:
        present = self.nanos > 0
        if self.end is None or not present.any():
            return None
        last = self.n_steps - 1 - np.argmax(present[:, ::-1], axis=1)
        return (last + self.end - self.n_steps + 1)[present.any(axis=1)]

    def latest_features(self, far: pd.DataFrame | None = None) -> pd.DataFrame:
        """Each node's features at its latest sample in the buffer, equal to
        :func:`~components.features.engineering.latest_node_features` over the same history.

        Args:
            far: node metrics covering :meth:`far_lag_ranges` (the lags beyond the buffer are
                NaN without them).
        """
        features = latest_grid_features(self.nodes, self.step, self.nanos, self.values)
        if features.empty:
            return features
        stamps = features[TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64) // NS
        rows = np.fromiter((self._index[n] for n in features[NODE]), np.int64, len(features))
        for lag, seconds in d.LAGS.items():
            if self._lag_steps(seconds) >= self.n_steps:
                for prefix, column in d.RESOURCES.items():
                    back = self._back(far, column, rows, stamps, seconds)
                    features[f"{prefix}_{lag}"] = back.astype(np.float32)
        for lead, lead_seconds in d.SEASONAL_LEADS.items():
            for kind, days in d.SEASONAL_KINDS.items():
                backs = [day * d.SEASONAL_DAY_SECONDS for day in days]
                if all(self._lag_steps(b) < self.n_steps for b in backs):
                    continue  # the buffer holds them: computed above
                for prefix, column in d.RESOURCES.items():
                    mean = mean_where_seen(
                        self._back(far, column, rows, stamps, back - lead_seconds)
                        - self._back(far, column, rows, stamps, back)
                        for back in backs
                    )
                    name = f"{prefix}_{d.seasonal_lead_suffix(lead, kind)}"
                    features[name] = mean.astype(np.float32)
        return features

    def _back(
        self,
        far: pd.DataFrame | None,
        column: str,
        rows: np.ndarray,
        stamps: np.ndarray,
        seconds: int,
    ) -> np.ndarray:
        """``column`` at the step ``seconds`` before each latest sample, as a lag reads it: from
        the buffer when it holds that step, else from ``far``."""
        shift = self._lag_steps(seconds)
        wanted_steps = stamps // self.step - shift
        if shift >= self.n_steps:
            wanted = pd.MultiIndex.from_arrays([self.nodes[rows], wanted_steps * self.step])
            return _lookup(far, column, wanted).astype(np.float64)
        position = wanted_steps - (self.end - self.n_steps + 1)
        inside = position >= 0
        out = np.full(len(rows), np.nan)
        out[inside] = self.values[column][rows[inside], position[inside]]
        return out


def far_samples(fetch: Fetch, ranges: list[tuple[int, int]]) -> pd.DataFrame | None:
    """The node metrics of ``ranges`` (each sample once; None: no range)."""
    if not ranges:
        return None
    parts = [fetch(start, end, optional=True) for start, end in ranges]
    return pd.concat(parts, ignore_index=True).drop_duplicates([NODE, TIMESTAMP])


def _offsets_back() -> list[int]:
    """Seconds before a sample that its lags and seasonal leads read."""
    offsets = list(d.LAGS.values())
    for lead in d.SEASONAL_LEADS.values():
        for days in d.SEASONAL_KINDS.values():
            for day in days:
                offsets += [day * d.SEASONAL_DAY_SECONDS, day * d.SEASONAL_DAY_SECONDS - lead]
    return offsets


def _lookup(far: pd.DataFrame | None, column: str, wanted: pd.MultiIndex) -> np.ndarray:
    if far is None or far.empty:
        return np.full(len(wanted), np.nan, dtype=np.float32)
    seconds = far[TIMESTAMP].to_numpy("datetime64[ns]").view(np.int64) // NS
    series = pd.Series(far[column].to_numpy(np.float64), index=[far[NODE], seconds])
    return series.reindex(wanted).to_numpy(np.float32)


# --------------------------------------------------------------------------- the loop


@dataclass
class LoopStatus:
    """What the loop exposes about itself (and its /metrics endpoint reports)."""

    periods: int = 0
    failures: int = 0
    rows_written: int = 0
    last_sample_seconds: float | None = None  # newest sample time written
    last_period_seconds: float = 0.0  # wall time of the last period's work
    lag_seconds: float | None = None  # now - newest sample written, at the period's end
    period_timings: dict[str, float] = field(default_factory=dict)


def run_period(
    history: NodeHistory,
    fetch: Fetch,
    write: Callable[[pd.DataFrame], int],
    now: float,
    status: LoopStatus,
) -> int:
    """One period: query the steps after the history's end up to ``now``, compute the latest
    features and write those newer than what was written. Returns the rows written.

    Raises:
        Exception: whatever the query or the write raised (the loop logs and counts it).
    """
    started = time.perf_counter()
    last = int(now) // history.step * history.step
    if history.end_seconds is None:
        first = last - HISTORY_SECONDS
    else:
        first = max(history.end_seconds, last - CATCH_UP_SECONDS)
    timings = {}
    if first <= last:
        history.add(fetch(first, last))
    timings["query"] = time.perf_counter() - started
    far = far_samples(fetch, history.far_lag_ranges(status.last_sample_seconds))
    timings["far_query"] = time.perf_counter() - started - sum(timings.values())
    features = history.latest_features(far)
    timings["features"] = time.perf_counter() - started - sum(timings.values())
    if status.last_sample_seconds is not None:
        newer = features[TIMESTAMP] > pd.Timestamp(status.last_sample_seconds, unit="s", tz="UTC")
        features = features[newer]
    written = write(features) if len(features) else 0
    timings["write"] = time.perf_counter() - started - sum(timings.values())
    if written:
        status.last_sample_seconds = features[TIMESTAMP].max().value / NS
        status.rows_written += written
    status.period_timings = timings
    status.last_period_seconds = time.perf_counter() - started
    return written


def run_loop(
    history: NodeHistory,
    fetch: Fetch,
    write: Callable[[pd.DataFrame], int],
    every_seconds: float,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    status: LoopStatus | None = None,
    periods: int | None = None,
    on_period: Callable[[LoopStatus], None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> LoopStatus:
    """Run :func:`run_period` every ``every_seconds`` (``periods`` times, or until ``stopped()``).
    A failed period logs one line and counts in ``status.failures``; the next starts where the
    history ends, so nothing is skipped."""
    status = status or LoopStatus()
    while (periods is None or status.periods < periods) and not stopped():
        began = clock()
        try:
            run_period(history, fetch, write, began, status)
        except Exception as error:  # noqa: BLE001 - a live loop outlives any one period
            status.failures += 1
            log.warning("node-state period failed (%s): %s", type(error).__name__, error)
        status.periods += 1
        if status.last_sample_seconds is not None:
            status.lag_seconds = clock() - status.last_sample_seconds
        if on_period is not None:
            on_period(status)
        if periods is None or status.periods < periods:
            sleep(max(0.0, began + every_seconds - clock()))
    return status


def serve_status_metrics(status_of: Callable[[], LoopStatus], port: int, address: str = ""):
    """Start a ``/metrics`` endpoint (prometheus_client) that reports the loop's lag, its last
    sample time, its period duration and its failures; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Collector:
        def collect(self):
            status = status_of()
            gauges = {
                "last_sample_timestamp_seconds": status.last_sample_seconds,
                "lag_seconds": status.lag_seconds,
                "period_duration_seconds": status.last_period_seconds,
            }
            for name, value in gauges.items():
                if value is not None:
                    yield GaugeMetricFamily(f"mlsched_node_state_{name}", name, value=value)
            yield CounterMetricFamily(
                "mlsched_node_state_failures", "failed periods", value=status.failures
            )
            yield CounterMetricFamily("mlsched_node_state_periods", "periods", value=status.periods)

    registry = CollectorRegistry()
    registry.register(_Collector())
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


def prometheus_fetch(prometheus: str, step_seconds: int, config, settings) -> Fetch:
    """A :data:`Fetch` running a collector query config (:class:`~components.collect.
    CollectConfig`) against ``prometheus`` with its fetch settings (time-out, retries)."""
    from components.collect import fetch_node_metrics
    from components.collect.prometheus_range import connect

    client = connect(prometheus)

    def fetch(start: int, end: int, optional: bool = False) -> pd.DataFrame:
        return fetch_node_metrics(
            client, config, [(start, end)], step_seconds, settings, had_rows=optional
        ).frame

    return fetch
