"""``collect_node_metrics``: pull node history from Prometheus into the node-metrics contract.

Incremental rule: rows are collected once per (node, timestamp), on the grid of multiples of the
step since the epoch. The output records which time spans it covers (``_collect_state.json``,
see :mod:`components.collect.state`; without it, the span from its first to its last timestamp);
a run fetches only the grid points of ``[start, end]`` outside them, and afterwards covers its
whole range up to the latest timestamp the output holds. Gaps inside a covered span are missing
scrapes and are not asked again (remove the output to collect everything anew). New rows that
fall in a covered span or already exist are dropped, so no row is ever written twice.

Atomicity: everything is fetched first; only when every request succeeded is the output
rewritten, with the contract's writer, which replaces it atomically. A failed run leaves the
previous output exactly as it was.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.cli_args import utc_timestamp
from components.collect.config import CollectConfig, QuerySpec, load_collect_config
from components.collect.prometheus_range import (
    FetchSettings,
    FetchStats,
    RangeFetcher,
    RangeTask,
    TaskResult,
    client_url,
    connect,
    node_addresses,
    plan_tasks,
    scrape_interval_seconds,
)
from components.collect.state import (
    OutputState,
    merge_intervals,
    missing_ranges,
    parquet_fingerprint,
    read_state,
    state_path,
    write_state,
)
from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    UTILIZATION_RANGE,
    read_node_metrics,
    write_node_metrics,
)
from components.errors import ContractError, MlschedError

UTILIZATION_COLUMNS = (CPU_UTILIZATION, MEMORY_UTILIZATION)
# rate() extrapolation can push 1 - idle slightly below 0; such values are clipped to 0.
NEGATIVE_TOLERANCE = 0.05
_SHOWN = 5


@dataclass(frozen=True)
class CollectReport:
    """What a collection run did.

    Attributes:
        output: where the node metrics are.
        start: first grid timestamp of the requested range.
        end: last grid timestamp of the requested range.
        fetched: the sub-ranges that were actually queried (empty: all was there already).
        rows_added: rows written by this run.
        rows_total: rows in the output after the run.
        nodes: nodes that got new rows.
        series: per query, how many node series it returned over the fetched ranges.
        requests: HTTP requests sent, retries included.
        retries: requests repeated after a 5xx, a time-out or a connection error.
        warnings: problems that did not stop the run (e.g. an optional query without series).
        seconds: wall time of the run.
        timings: seconds spent reading the output, fetching, assembling rows and writing.
    """

    output: Path
    start: pd.Timestamp
    end: pd.Timestamp
    fetched: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    rows_added: int
    rows_total: int
    nodes: tuple[str, ...]
    series: dict[str, int]
    requests: int
    retries: int
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines."""
        if self.fetched:
            spans = ", ".join(f"{_iso(a)}..{_iso(b)}" for a, b in self.fetched)
        else:
            spans = "nothing (already collected)"
        series = ", ".join(f"{name}={count}" for name, count in self.series.items()) or "-"
        return (
            f"{self.output}: {self.rows_added:,} rows added ({self.rows_total:,} in all), "
            f"{len(self.nodes)} nodes, in {self.seconds:.1f} s\n"
            f"  fetched: {spans}\n"
            f"  series per query: {series}\n"
            f"  requests: {self.requests} ({self.retries} retried)"
        )


def collect_node_metrics(
    prometheus: Any,
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    step_seconds: float,
    output: str | os.PathLike,
    config: CollectConfig | str | os.PathLike | None = None,
    *,
    settings: FetchSettings | None = None,
    progress: bool = True,
) -> CollectReport:
    """Collect node metrics over ``[start, end]`` from Prometheus into ``output``.

    Timestamps are the multiples of ``step_seconds`` since the epoch within the range, so re-runs
    with other bounds line up. Only what the output lacks is fetched (see the module docstring).

    Args:
        prometheus: a ``PrometheusConnect`` (used as it is) or a base URL.
        start: first instant, zone-aware (ISO 8601 text, datetime or Timestamp).
        end: last instant (included), zone-aware.
        step_seconds: query resolution in whole seconds.
        output: the node-metrics folder (parquet by day); ``.parquet``/``.csv`` give one file.
        config: a loaded config, a YAML path, or None for the shipped ``queries.yaml``.
        settings: chunking, parallelism and retries.
        progress: show a progress bar over the requests.

    Raises:
        MlschedError: for bad arguments, an unreadable output, a rejected query, a required
            query without series, a Prometheus that stays unreachable, or values outside the
            contract; the output is then left as it was.
    """
    began = time.perf_counter()
    if not isinstance(config, CollectConfig):
        config = load_collect_config(config)
    settings = settings or FetchSettings()
    step = _whole_step(step_seconds)
    first, last = _grid(_epoch(start, "start"), _epoch(end, "end"), step)
    target = Path(output)
    state = _already_collected(target, first, last, step)
    if state is not None:
        return CollectReport(
            output=target,
            start=_stamp(first),
            end=_stamp(last),
            fetched=(),
            rows_added=0,
            rows_total=state.rows,
            nodes=(),
            series={spec.column: 0 for spec in config.queries},
            requests=0,
            retries=0,
            seconds=time.perf_counter() - began,
        )
    existing = _read_existing(target)
    span = _span(existing)
    warnings: list[str] = []
    covered = _coverage(target, existing, span, warnings)
    ranges = missing_ranges(covered, first, last, step)

    timings = {"read_seconds": time.perf_counter() - began}
    fetched = fetch_node_metrics(
        connect(prometheus),
        config,
        ranges,
        step,
        settings,
        had_rows=span is not None,
        progress=progress,
    )
    timings["fetch_seconds"] = time.perf_counter() - began - sum(timings.values())
    warnings += fetched.warnings
    new, stats = _without_known_rows(fetched.frame, existing, covered), fetched.stats
    timings["assemble_seconds"] = time.perf_counter() - began - sum(timings.values())

    combined = existing
    if len(new):
        combined = new if existing is None else pd.concat([existing, new], ignore_index=True)
        write_node_metrics(combined, target)
    total = 0 if combined is None else len(combined)
    new_span = _span(combined)
    if new_span is not None:
        latest = new_span[1]
        grown = list(covered) + ([(first, min(last, latest))] if first <= latest else [])
        state = OutputState(merge_intervals(grown, join_gap=step), total, *new_span)
        if len(new) or read_state(target) != state:
            write_state(target, state)
    timings["write_seconds"] = time.perf_counter() - began - sum(timings.values())
    return CollectReport(
        output=target,
        start=_stamp(first),
        end=_stamp(last),
        fetched=tuple((_stamp(lo), _stamp(hi)) for lo, hi in ranges),
        rows_added=len(new),
        rows_total=total,
        nodes=tuple(sorted(new[NODE].unique())) if len(new) else (),
        series=fetched.series,
        requests=stats.requests,
        retries=stats.retries,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - began,
        timings={name: round(value, 3) for name, value in timings.items()},
    )


@dataclass(frozen=True)
class FetchedMetrics:
    """Node-metrics rows queried from Prometheus, in memory."""

    frame: pd.DataFrame
    warnings: list[str]
    stats: FetchStats
    series: dict[str, int]


def fetch_node_metrics(
    client: Any,
    config: CollectConfig,
    ranges: list[tuple[int, int]],
    step: int,
    settings: FetchSettings,
    *,
    had_rows: bool = False,
    progress: bool = False,
) -> FetchedMetrics:
    """Query every query of ``config`` over ``ranges`` (epoch seconds on the ``step`` grid,
    inclusive) and join the series into node-metrics rows, sorted by node and time.

    Raises:
        MlschedError: as :func:`collect_node_metrics`, without touching any file.
    """
    warnings: list[str] = []
    tasks, aliases = [], {}
    if ranges:
        window = config.window_for(step, _scrape_interval(client, config, warnings))
        if config.node_addresses:
            aliases = node_addresses(client, config.node_addresses, ranges[0][0], ranges[-1][1])
        tasks = [
            task
            for spec in config.queries
            for lo, hi in ranges
            for task in plan_tasks(
                spec, spec.render(window, step), lo, hi, step, settings.max_points
            )
        ]
        tasks.sort(key=lambda task: task.start)
    collector = _Collector(config, tasks)
    stats = RangeFetcher(client, settings, aliases).run(tasks, collector.add, progress=progress)
    frame, frame_warnings = collector.frame(client_url(client), ranges, had_rows=had_rows)
    return FetchedMetrics(frame, warnings + frame_warnings, stats, collector.series_counts())


def _scrape_interval(client: Any, config: CollectConfig, warnings: list[str]) -> float | None:
    """The scrape interval an automatic ``$window`` follows: configured, else Prometheus'."""
    if config.window_seconds is not None or config.scrape_interval_seconds is not None:
        return config.scrape_interval_seconds
    interval = scrape_interval_seconds(client)
    if interval is None:
        warnings.append(
            f"Prometheus at {client_url(client)} lists no scrape targets; the automatic $window "
            f"assumes a 30s scrape interval (set --scrape-interval or --window)"
        )
    return interval


def _already_collected(target: Path, first: int, last: int, step: int) -> OutputState | None:
    """The state of ``target`` when it covers ``[first, last]`` and matches the files' metadata.

    A run with nothing to fetch then skips reading (and validating) the whole output.
    """
    state = read_state(target)
    if state is None or missing_ranges(state.covered, first, last, step):
        return None
    fingerprint = parquet_fingerprint(target)
    return state if fingerprint is not None and state.matches(*fingerprint) else None


def _coverage(
    target: Path,
    existing: pd.DataFrame | None,
    span: tuple[int, int] | None,
    warnings: list[str],
) -> tuple[tuple[int, int], ...]:
    """What the output already covers: the state file's intervals, else the data's span."""
    state = read_state(target)
    rows = 0 if existing is None else len(existing)
    first, last = span if span is not None else (None, None)
    if state is not None and state.matches(rows, first, last):
        return state.covered
    if state is not None:
        warnings.append(
            f"{state_path(target)} does not describe the data in {target}; taking the data's "
            "time span as collected"
        )
    return () if span is None else (span,)


def _without_known_rows(
    new: pd.DataFrame, existing: pd.DataFrame | None, covered: tuple[tuple[int, int], ...]
) -> pd.DataFrame:
    """``new`` less rows inside covered spans or already in ``existing`` (never a duplicate)."""
    if not len(new):
        return new
    seconds = new[TIMESTAMP].to_numpy("datetime64[s]").astype(np.int64)
    inside = np.zeros(len(new), dtype=bool)
    for lo, hi in covered:
        inside |= (seconds >= lo) & (seconds <= hi)
    new = new[~inside]
    if existing is None or existing.empty or not len(new):
        return new.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(existing[[NODE, TIMESTAMP]])
    known = pd.MultiIndex.from_frame(new[[NODE, TIMESTAMP]]).isin(keys)
    return new[~known].reset_index(drop=True)


def _whole_step(step_seconds: float) -> int:
    if not isinstance(step_seconds, int | float) or isinstance(step_seconds, bool):
        raise MlschedError(f"step: expected seconds, got {step_seconds!r}")
    if step_seconds < 1 or not float(step_seconds).is_integer():
        raise MlschedError(f"step: must be a whole number of seconds >= 1, got {step_seconds!r}")
    return int(step_seconds)


def _epoch(value: str | datetime | pd.Timestamp, what: str) -> float:
    return utc_timestamp(value, what).timestamp()


def _grid(start: float, end: float, step: int) -> tuple[int, int]:
    if end < start:
        raise MlschedError(f"end ({_iso_epoch(end)}) is before start ({_iso_epoch(start)})")
    first, last = math.ceil(start / step) * step, math.floor(end / step) * step
    if first > last:
        raise MlschedError(
            f"{_iso_epoch(start)}..{_iso_epoch(end)} holds no multiple of the {step} s step"
        )
    return first, last


def _stamp(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _iso(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_epoch(seconds: float) -> str:
    return _iso(pd.Timestamp(seconds, unit="s", tz="UTC"))


def _read_existing(target: Path) -> pd.DataFrame | None:
    if not target.exists():
        return None
    if target.is_dir():
        files = [p for p in target.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not files:
            return None
        if not any(p.suffix.lower() in (".parquet", ".csv") for p in files):
            raise MlschedError(
                f"{target}: exists and holds no node metrics; refusing to replace it "
                "(choose another --output)"
            )
    try:
        return read_node_metrics(target)
    except ContractError as error:
        raise MlschedError(f"existing output cannot be extended: {error}") from None


def _span(frame: pd.DataFrame | None) -> tuple[int, int] | None:
    if frame is None or frame.empty:
        return None
    seconds = frame[TIMESTAMP].to_numpy("datetime64[s]").astype(np.int64)
    return int(seconds.min()), int(seconds.max())


@dataclass
class _Column:
    spec: QuerySpec
    promql: str
    pieces: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    nodes: set[str] = field(default_factory=set)


class _Collector:
    """Gathers task results per column and joins them into node-metrics rows."""

    def __init__(self, config: CollectConfig, tasks: list[RangeTask]):
        self.config = config
        promql = {task.query.column: task.promql for task in tasks}
        self.columns = {
            spec.column: _Column(spec, promql.get(spec.column, spec.promql))
            for spec in config.queries
        }
        self.node_codes: dict[str, int] = {}

    def add(self, result: TaskResult) -> None:
        """Keep one task's series (called in the main thread)."""
        column = self.columns[result.task.query.column]
        for series in result.series:
            code = self.node_codes.setdefault(series.node, len(self.node_codes))
            column.pieces.append((code, series.seconds, series.values))
            column.nodes.add(series.node)

    def series_counts(self) -> dict[str, int]:
        """Per query, how many nodes' series it returned."""
        return {name: len(column.nodes) for name, column in self.columns.items()}

    def frame(
        self, url: str, ranges: list[tuple[int, int]], *, had_rows: bool
    ) -> tuple[pd.DataFrame, list[str]]:
        """The joined rows (sorted by node and time) and the warnings.

        Args:
            url: Prometheus' URL, for messages.
            ranges: the fetched ranges, for messages.
            had_rows: whether the output held rows before; a required query without series is
                then a warning (nothing new yet), otherwise an error.

        Raises:
            MlschedError: when a required query returned nothing over the whole range, the
                required queries share no node, or a utilisation value breaks the contract.
        """
        warnings: list[str] = []
        if not ranges:
            return _empty_frame(), warnings
        where = ", ".join(f"{_iso_epoch(a)}..{_iso_epoch(b)}" for a, b in ranges)
        for column in self.columns.values():
            if column.nodes:
                continue
            message = (
                f"query '{column.spec.column}' returned no series over {where}: {column.promql} "
                f"(check the metric and label names against Prometheus at {url}; "
                f"queries come from {self.config.source})"
            )
            if column.spec.required and not had_rows:
                raise MlschedError(message)
            warnings.append(message + ("; no new rows" if column.spec.required else ""))
        if not all(self.columns[name].nodes for name in UTILIZATION_COLUMNS):
            return _empty_frame(), warnings
        self._check_required_nodes(warnings)
        names = np.array(sorted(self.node_codes), dtype=object)
        remap = np.empty(len(names), dtype=np.int64)
        for rank, name in enumerate(names):
            remap[self.node_codes[name]] = rank
        keyed = {
            name: _keyed(column, remap) for name, column in self.columns.items() if column.nodes
        }
        keys = _required_keys([keyed[name] for name in UTILIZATION_COLUMNS])
        data: dict[str, np.ndarray] = {}
        for name, (column_keys, column_values) in keyed.items():
            data[name] = _lookup(column_keys, column_values, keys)
        complete = np.isfinite(data[CPU_UTILIZATION]) & np.isfinite(data[MEMORY_UTILIZATION])
        keys = keys[complete]
        for name in data:
            data[name] = data[name][complete]
        codes, seconds = keys >> _SECONDS_BITS, keys & ((1 << _SECONDS_BITS) - 1)
        for name in UTILIZATION_COLUMNS:
            data[name] = self._utilization(name, data[name], names[codes], seconds)
        for name in data:
            if name not in UTILIZATION_COLUMNS:
                data[name][~np.isfinite(data[name])] = np.nan
        self._warn_unmatched(warnings, set(names[np.unique(codes)]))
        frame = pd.DataFrame(
            {TIMESTAMP: pd.to_datetime(seconds, unit="s", utc=True), NODE: names[codes]}
        )
        for name in self.columns:
            if name in data:
                frame[name] = data[name]
        return frame, warnings

    def _check_required_nodes(self, warnings: list[str]) -> None:
        cpu, memory = (self.columns[name] for name in UTILIZATION_COLUMNS)
        if not cpu.nodes & memory.nodes:
            raise MlschedError(
                f"the nodes of '{CPU_UTILIZATION}' ({_few(cpu.nodes)}) and of "
                f"'{MEMORY_UTILIZATION}' ({_few(memory.nodes)}) have no name in common; set "
                f"node_label/strip_port in {self.config.source} so both name nodes alike"
            )
        for one, other in ((cpu, memory), (memory, cpu)):
            only = one.nodes - other.nodes
            if only:
                warnings.append(
                    f"{len(only)} node(s) only in '{one.spec.column}', left out: {_few(only)}"
                )

    def _warn_unmatched(self, warnings: list[str], kept: set[str]) -> None:
        for column in self.columns.values():
            if column.spec.required or not column.nodes:
                continue
            if not column.nodes & kept:
                warnings.append(
                    f"query '{column.spec.column}' named nodes {_few(column.nodes)}, none of "
                    f"which match the utilisation queries' nodes ({_few(kept)}); check its "
                    f"node_label/strip_port in {self.config.source}"
                )

    def _utilization(
        self, name: str, values: np.ndarray, nodes: np.ndarray, seconds: np.ndarray
    ) -> np.ndarray:
        low, high = UTILIZATION_RANGE
        bad = (values < low - NEGATIVE_TOLERANCE) | (values > high)
        if bad.any():
            at = int(np.argmax(bad))
            column = self.columns[name]
            raise MlschedError(
                f"query '{name}' ({column.promql}) gave {values[at]:g} for node {nodes[at]} at "
                f"{_iso_epoch(int(seconds[at]))}, outside [{low:g}, {high:g}]: utilisation must "
                "be a fraction of capacity (is the query a percentage?)"
            )
        return np.clip(values, low, high)


_SECONDS_BITS = 36


def _keyed(column: _Column, remap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (node rank, second) keys of a column and their values.

    Each piece is one node's series from one request, already in time order, and requests never
    overlap, so ordering the pieces by node and first second orders every sample.
    """
    pieces = sorted(column.pieces, key=lambda piece: (remap[piece[0]], piece[1][0]))
    keys = np.concatenate(
        [(int(remap[code]) << _SECONDS_BITS) | seconds for code, seconds, _ in pieces]
    )
    values = np.concatenate([values for _, _, values in pieces])
    repeated = np.flatnonzero(keys[1:] <= keys[:-1])
    if len(repeated):
        raise MlschedError(
            f"query '{column.spec.column}' returned two values for one node and time "
            f"({_iso_epoch(int(keys[repeated[0]] & ((1 << _SECONDS_BITS) - 1)))}); "
            "aggregate it to one series per node"
        )
    return keys, values


def _required_keys(columns: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    keys = columns[0][0]
    for other, _ in columns[1:]:
        if not np.array_equal(keys, other):
            keys = keys[_lookup_hits(other, keys)]
    return keys


def _lookup_hits(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    if not len(keys):
        return np.zeros(len(wanted), dtype=bool)
    position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return keys[position] == wanted


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    if np.array_equal(keys, wanted):
        return values
    position = np.searchsorted(keys, wanted)
    position = np.minimum(position, max(len(keys) - 1, 0))
    out = np.full(len(wanted), np.nan)
    if len(keys):
        hit = keys[position] == wanted
        out[hit] = values[position[hit]]
    return out


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            TIMESTAMP: pd.Series([], dtype="datetime64[ns, UTC]"),
            NODE: pd.Series([], dtype=object),
            CPU_UTILIZATION: pd.Series([], dtype=float),
            MEMORY_UTILIZATION: pd.Series([], dtype=float),
        }
    )


def _few(names: set[str] | np.ndarray) -> str:
    ordered = sorted(names)
    shown = ", ".join(repr(n) for n in ordered[:_SHOWN])
    return shown + (f" and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else "")
