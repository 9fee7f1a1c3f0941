"""An ensemble of Isolation Forests over feature subsets and time windows, one score per sample.

Each member is an :class:`~sklearn.ensemble.IsolationForest` over a small subset of the features of
:mod:`components.features.anomaly_statistics`, each over its own time window: the sustained CPU
level (15 minutes against the trailing 24 h), CPU jumps and short pulses (15 minutes), a
frozen exporter (15 minutes), the CPU rise (1 h and 6 h), memory beyond what its requests explain (a
leak, 1 h against a 2 h rise), the scrape health (15 minutes and 1 h), and for CPU the level shift
(the last hour against the trailing day) and the residuals beyond a seasonal (same time yesterday)
and a robust one-step forecast's P90 interval (15 minutes). A member's raw score is
``-score_samples`` (higher is more anomalous), standardised per node by the median and the distance
to a high quantile of that node's training scores (at least a share of the pooled distance, so a
node that was quiet in training is not hypersensitive), plus how far the row lies beyond the
training range (which a forest cannot score). The ensemble score of a sample is the largest member
score, averaged over a trailing window per node. Fitting is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.anomaly_statistics import (
    FROZEN_FEATURES,
    HEALTH_FEATURES,
    MEMORY_EXCESS_FEATURES,
    check_resources,
)

MIN_TRAIN_ROWS = 50
MIN_SPREAD = 0.05
# Range units by feature suffix: utilisation and shares in tenths, slopes per hour in
# twentieths, robust z-scores and counts in ones.
FEATURE_UNITS = {
    "_floor": 0.1,
    "_share": 0.1,
    "_rise_1h": 0.05,
    "_rise_6h": 0.05,
    "_excess": 0.05,
    "_pulses": 0.1,
}


def member_features(resources: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The feature subset of each ensemble member for ``resources``."""
    resources = check_resources(resources)

    def each(*suffixes: str) -> tuple[str, ...]:
        return tuple(f"{prefix}_{suffix}" for prefix in resources for suffix in suffixes)

    # CPU alone: memory moves in steps with the pods placed on a node and with its own level
    # shifts, which a level against the trailing day cannot tell from an incident; the leak
    # member scores memory against what its requests explain instead.
    members = {"cpu_level": ("cpu_floor", "cpu_floor_rz")}
    members["cpu_shift"] = ("cpu_shift_rz",)
    members["cpu_residual"] = ("cpu_seasonal_rz", "cpu_forecast_rz")
    members["spikes"] = ("cpu_jumps", "cpu_pulses")
    members["frozen"] = FROZEN_FEATURES
    members["trend"] = ("cpu_rise_1h", "cpu_rise_6h")
    if "memory" in resources:
        members["leak"] = MEMORY_EXCESS_FEATURES
    members["health"] = HEALTH_FEATURES
    return members


@dataclass(frozen=True)
class EnsembleConfig:
    """How the ensemble is built."""

    resources: tuple[str, ...] = ("cpu", "memory")
    n_estimators: int = 100
    max_samples: int = 512
    contamination: float | str = "auto"
    smooth_seconds: int = 1800
    spread_quantile: float = 0.98
    range_margin: float = 1.0
    min_peak_score: float = 2.0
    node_spread_floor: float = 0.35
    per_node_threshold: bool = True
    seed: int = 0


@dataclass
class Member:
    """One fitted Isolation Forest and the standardisation of its scores, per node.

    A raw score ``-score_samples`` is standardised as ``(raw - center) / spread`` with the median
    and the distance from the median to a high quantile of the node's training scores (the
    pooled training scores for nodes the training data did not have).
    """

    name: str
    features: tuple[str, ...]
    forest: IsolationForest
    center: float
    spread: float
    node_center: dict[str, float] = field(default_factory=dict)
    node_spread: dict[str, float] = field(default_factory=dict)
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def raw(self, features: pd.DataFrame) -> np.ndarray:
        return -self.forest.score_samples(features[list(self.features)].to_numpy(np.float64))

    def exceedance(self, features: pd.DataFrame) -> np.ndarray:
        """How far beyond the training range a row lies, in range units (0 inside it).

        A forest cannot split on a feature that was constant in training, and puts every value
        beyond the training range in the same leaf as the extreme; this term scores what lies
        outside what training saw.
        """
        data = features[list(self.features)].to_numpy(np.float64)
        beyond = np.maximum(data - self.upper, self.lower - data) / self.scale
        return np.maximum(beyond, 0.0).max(axis=1)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        nodes = features[NODE].astype(str)
        center = nodes.map(self.node_center).fillna(self.center).to_numpy(np.float64)
        spread = nodes.map(self.node_spread).fillna(self.spread).to_numpy(np.float64)
        return (self.raw(features) - center) / spread + self.exceedance(features)


def feature_unit(name: str) -> float:
    """The smallest range unit of a feature for :meth:`Member.exceedance`."""
    for suffix, unit in FEATURE_UNITS.items():
        if name.endswith(suffix):
            return unit
    return 1.0


def _standardisation(raw: np.ndarray, quantile: float) -> tuple[float, float]:
    center = float(np.median(raw))
    return center, max(float(np.quantile(raw, quantile)) - center, MIN_SPREAD)


@dataclass
class IsolationEnsemble:
    """The fitted ensemble; see the module docstring."""

    config: EnsembleConfig
    step_seconds: int
    members: list[Member] = field(default_factory=list)

    @property
    def feature_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for member in self.members:
            seen.update(dict.fromkeys(member.features))
        return tuple(seen)

    def member_scores(self, features: pd.DataFrame) -> pd.DataFrame:
        """Each member's standardised score per row of ``features``."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise MlschedError(f"anomaly features: missing column(s) {', '.join(missing)}")
        return pd.DataFrame({m.name: m.score(features) for m in self.members}, index=features.index)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """The ensemble score per row of ``features`` (sorted by node, timestamp)."""
        combined = self.member_scores(features).max(axis=1).to_numpy()
        return smooth_per_node(features, combined, self.config.smooth_seconds)


def smooth_per_node(features: pd.DataFrame, values: np.ndarray, seconds: int) -> np.ndarray:
    """Trailing time-window mean of ``values`` per node (rows sorted by node, timestamp)."""
    if seconds <= 0 or len(values) == 0:
        return values
    frame = pd.DataFrame(
        {NODE: features[NODE].to_numpy(), TIMESTAMP: features[TIMESTAMP], "v": values}
    )
    rolled = (
        frame.set_index(TIMESTAMP)
        .groupby(NODE, sort=False)["v"]
        .rolling(f"{int(seconds)}s", min_periods=1)
        .mean()
    )
    return rolled.to_numpy()


def fit_ensemble(
    features: pd.DataFrame, config: EnsembleConfig, step_seconds: int
) -> IsolationEnsemble:
    """Fit every member on ``features`` (unlabelled training rows)."""
    if len(features) < MIN_TRAIN_ROWS:
        raise MlschedError(
            f"anomaly training data: {len(features)} rows, need at least {MIN_TRAIN_ROWS}"
        )
    ensemble = IsolationEnsemble(config=config, step_seconds=step_seconds)
    q = config.spread_quantile
    for index, (name, columns) in enumerate(member_features(config.resources).items()):
        data = features[list(columns)].to_numpy(np.float64)
        forest = IsolationForest(
            n_estimators=config.n_estimators,
            max_samples=min(config.max_samples, len(data)),
            contamination=config.contamination,
            random_state=config.seed * 1000 + index,
        ).fit(data)
        member = Member(name, columns, forest, *_standardisation(-forest.score_samples(data), q))
        member.lower, member.upper = data.min(axis=0), data.max(axis=0)
        spread = np.quantile(data, 0.99, axis=0) - np.quantile(data, 0.01, axis=0)
        member.scale = config.range_margin * np.maximum(spread, [feature_unit(c) for c in columns])
        raw = member.raw(features)
        floor = config.node_spread_floor * member.spread
        for node, rows in features.groupby(NODE, sort=True).indices.items():
            center, spread = _standardisation(raw[rows], q)
            member.node_center[str(node)] = center
            member.node_spread[str(node)] = max(spread, floor)
        ensemble.members.append(member)
    return ensemble
