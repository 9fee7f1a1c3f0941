"""Forecast examples: node features, future targets at each horizon and a time-ordered split.

Features come from :func:`components.features.engineering.compute_node_features` (one row per
node-metrics row, sorted by node and timestamp). A target for horizon ``h`` is the node's sample
at grid step ``t + h`` (on the scrape grid aligned to the Unix epoch, as the features use); it is
NaN when that scrape is missing. The seasonal-naive value is the sample at ``t + h - 1 day``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import NODE, TIMESTAMP
from components.durations import format_duration, parse_duration_seconds
from components.errors import MlschedError
from components.features.definitions import FEATURE_NAMES, RESOURCES
from components.features.engineering import compute_node_features, infer_step_seconds

NS = 1_000_000_000
DAY_SECONDS = 86_400
DEFAULT_HORIZONS = ("5m", "15m", "30m")


@dataclass(frozen=True)
class Horizon:
    """A forecast horizon: its name (``"15m"``), seconds, and whole scrape steps."""

    name: str
    seconds: int
    steps: int


def parse_horizons(text: str | Sequence[str]) -> tuple[str, ...]:
    """Horizon names from ``"5m,15m,30m"`` (or a list), normalised and sorted by length.

    Raises:
        MlschedError: an unreadable, duplicate or non-positive horizon, or one of a day or more.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    seconds = []
    for item in items:
        if not str(item).strip():
            continue
        value = parse_duration_seconds(str(item).strip(), what="horizon")
        if not float(value).is_integer():
            raise MlschedError(f"horizon {item!r}: must be whole seconds")
        if value >= DAY_SECONDS:
            raise MlschedError(f"horizon {item!r}: must be shorter than one day")
        seconds.append(int(value))
    if not seconds:
        raise MlschedError("horizons: give at least one, e.g. 5m,15m,30m")
    if len(set(seconds)) != len(seconds):
        raise MlschedError(f"horizons: duplicates in {text!r}")
    return tuple(format_duration(s) for s in sorted(seconds))


def horizon_steps(names: Sequence[str], step_seconds: int) -> tuple[Horizon, ...]:
    """The horizons in whole scrape steps (rounded to the nearest step).

    Raises:
        MlschedError: a horizon shorter than one scrape step.
    """
    out = []
    for name in names:
        seconds = int(parse_duration_seconds(name, what="horizon"))
        if seconds < step_seconds:
            interval = format_duration(step_seconds)
            raise MlschedError(f"horizon {name} is shorter than the scrape interval of {interval}")
        out.append(Horizon(name, seconds, max(1, round(seconds / step_seconds))))
    return tuple(out)


@dataclass
class ForecastDataset:
    """Feature rows with their future targets, aligned row by row.

    Attributes:
        features: ``timestamp``, ``node`` and the feature columns, sorted by (node, timestamp).
        step_seconds: the scrape interval the grid uses.
        horizons: the horizons, shortest first.
        current: resource -> the level at ``t`` (the persistence forecast).
        targets: (resource, horizon name) -> the level at ``t + h`` (NaN when not observed).
        seasonal: (resource, horizon name) -> the level at ``t + h - 1 day`` (seasonal naive).
    """

    features: pd.DataFrame
    step_seconds: int
    horizons: tuple[Horizon, ...]
    current: dict[str, np.ndarray]
    targets: dict[tuple[str, str], np.ndarray]
    seasonal: dict[tuple[str, str], np.ndarray]

    @property
    def nanos(self) -> np.ndarray:
        stamps = self.features[TIMESTAMP]
        return stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(self.current)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the positions of ``wanted`` in the sorted ``keys``; NaN where absent."""
    position = np.searchsorted(keys, wanted)
    position = np.minimum(position, len(keys) - 1)
    hit = keys[position] == wanted
    return np.where(hit, values[position], np.nan)


def build_forecast_dataset(
    metrics: pd.DataFrame,
    horizons: Sequence[str] = DEFAULT_HORIZONS,
    *,
    step_seconds: int | None = None,
    features: pd.DataFrame | None = None,
) -> ForecastDataset:
    """Features and targets for every node-metrics row.

    Args:
        metrics: node metrics as read by :func:`components.contracts.read_node_metrics`.
        horizons: horizon names such as ``("5m", "15m", "30m")``.
        step_seconds: the scrape interval (default: inferred from the data).
        features: precomputed :func:`compute_node_features` output for ``metrics`` (optional).

    Raises:
        MlschedError: empty input, or a horizon shorter than the scrape interval.
    """
    if metrics.empty:
        raise MlschedError("node metrics: no rows")
    step = infer_step_seconds(metrics) if step_seconds is None else int(step_seconds)
    steps = horizon_steps(parse_horizons(horizons), step)
    if features is None:
        features = compute_node_features(metrics, step)
    features = features.reset_index(drop=True)
    nanos = features[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    codes = pd.factorize(features[NODE], sort=True)[0].astype(np.int64)
    columns = nanos // (step * NS)
    columns -= columns.min()
    width = int(columns.max()) + 2 + DAY_SECONDS // step
    keys = codes * width + columns
    if np.any(np.diff(keys) <= 0):
        raise MlschedError(
            f"node metrics: two samples of a node fall in one {step}s step; "
            "pass the scrape interval explicitly"
        )
    day_steps = round(DAY_SECONDS / step)
    current, targets, seasonal = {}, {}, {}
    for prefix, column in RESOURCES.items():
        level = features[column].to_numpy(dtype=np.float64)
        current[prefix] = level
        for horizon in steps:
            targets[prefix, horizon.name] = _lookup(keys, level, keys + horizon.steps)
            seasonal[prefix, horizon.name] = _lookup(keys, level, keys + horizon.steps - day_steps)
    return ForecastDataset(features, step, steps, current, targets, seasonal)


@dataclass(frozen=True)
class Split:
    """Row masks of a time-ordered split; fit/validation are purged per horizon by the caller."""

    train_cut: np.ndarray  # per row: the node's train/test boundary (epoch ns)
    validation_cut: np.ndarray  # per row: the node's fit/validation boundary inside train

    def fit(self, dataset: ForecastDataset, horizon: Horizon) -> np.ndarray:
        """Rows for fitting: their target lies before the validation boundary."""
        return dataset.nanos + horizon.seconds * NS < self.validation_cut

    def validation(self, dataset: ForecastDataset, horizon: Horizon) -> np.ndarray:
        """Rows for early stopping: from the validation boundary, targets before the train cut."""
        nanos = dataset.nanos
        return (nanos >= self.validation_cut) & (nanos + horizon.seconds * NS < self.train_cut)

    def early_stopping(self, dataset: ForecastDataset, horizon: Horizon) -> np.ndarray:
        """The first half (in time) of the validation rows: they choose the number of trees."""
        middle = self.validation_cut + (self.train_cut - self.validation_cut) // 2
        return self.validation(dataset, horizon) & (dataset.nanos < middle)

    def calibration(self, dataset: ForecastDataset, horizon: Horizon) -> np.ndarray:
        """The second half of the validation rows: held out from fitting and early stopping,
        they calibrate the P90 (conformal)."""
        return self.validation(dataset, horizon) & ~self.early_stopping(dataset, horizon)

    def train(self, dataset: ForecastDataset, horizon: Horizon) -> np.ndarray:
        """Fit and validation rows together (targets before the train cut)."""
        return dataset.nanos + horizon.seconds * NS < self.train_cut

    def test(self, dataset: ForecastDataset) -> np.ndarray:
        """Evaluation rows: at or after the node's train/test boundary."""
        return dataset.nanos >= self.train_cut


def time_split(
    dataset: ForecastDataset, train_fraction: float = 0.7, validation_fraction: float = 0.2
) -> Split:
    """Per node: the first ``train_fraction`` of its time span trains, the rest tests.

    The last ``validation_fraction`` of each node's training span is the early-stopping fold.
    No training row's target lies at or after the boundary, so nothing of the test part leaks.

    Raises:
        MlschedError: a fraction outside (0, 1).
    """
    if not 0.0 < train_fraction < 1.0:
        raise MlschedError(f"train fraction must be in (0, 1), got {train_fraction}")
    if not 0.0 < validation_fraction < 1.0:
        raise MlschedError(f"validation fraction must be in (0, 1), got {validation_fraction}")
    nanos = dataset.nanos
    nodes = dataset.features[NODE]
    frame = pd.DataFrame({NODE: nodes.to_numpy(), "t": nanos})
    span = frame.groupby(NODE, sort=False)["t"].agg(["min", "max"])
    start = nodes.map(span["min"]).to_numpy(dtype=np.float64)
    end = nodes.map(span["max"]).to_numpy(dtype=np.float64)
    train_cut = (start + train_fraction * (end - start)).astype(np.int64)
    validation_cut = (start + train_fraction * (1 - validation_fraction) * (end - start)).astype(
        np.int64
    )
    return Split(train_cut, validation_cut)


def feature_matrix(features: pd.DataFrame, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """The float32 matrix of ``names`` (raises MlschedError when a column is missing)."""
    missing = [name for name in names if name not in features.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise MlschedError(f"features: missing column(s) {shown}")
    return features[list(names)].to_numpy(dtype=np.float32)
