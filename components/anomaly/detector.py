"""The node anomaly detector (Isolation Forest ensemble + calibrated threshold) and its baseline.

Both detectors share one interface: ``score(frame) -> DataFrame[node, timestamp, score, alarm]``
where ``frame`` holds node metrics (with enough trailing history, see
:data:`~components.features.anomaly_statistics.LOOKBACK_SECONDS`) or already the detector's
features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from components.anomaly.calibrate import calibrate_peak, calibrate_threshold
from components.anomaly.ensemble import (
    MIN_TRAIN_ROWS,
    EnsembleConfig,
    IsolationEnsemble,
    fit_ensemble,
)
from components.anomaly.events import EventRules, alarm_events, merge_incidents
from components.contracts import NODE, TIMESTAMP
from components.errors import MlschedError
from components.features.anomaly_statistics import (
    MAD_TO_SIGMA,
    RESOURCES,
    anomaly_features,
    check_resources,
    infer_step_seconds,
)

SCORE_COLUMNS = (NODE, TIMESTAMP, "score", "alarm")
_MIN_SCALE = 0.002
# Scores within floating-point noise of the threshold (a constant series) do not alarm.
ALARM_TOLERANCE = 1e-9
# A node's training days hold only a few of its natural bursts and memory steps, so its own
# 99 % quantile underestimates its tail: a quiet-looking node is made at most 1 / 0.7 times as
# sensitive as the pooled scale.
NODE_WIDTH_FLOOR = 0.7
# The share of its recent time a node may score above the threshold before the threshold follows
# its scores up (see adapt_to_recent).
ADAPT_SHARE = 0.02


def _scored(frame: pd.DataFrame, score: np.ndarray, threshold: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            NODE: frame[NODE].to_numpy(),
            TIMESTAMP: pd.DatetimeIndex(frame[TIMESTAMP]).tz_convert("UTC"),
            "score": score,
            "alarm": score > threshold + ALARM_TOLERANCE,
        }
    )


@dataclass
class AnomalyDetector:
    """A fitted ensemble, its alarm threshold and the budget it was calibrated to.

    ``node_calibration`` calibrates the threshold per node: a node's scores are mapped by the
    affine map that takes its own training median and budget quantile to the pooled ones
    (``center`` and ``threshold``), so ``threshold`` alarms at every node's false-positive budget
    and the event peak threshold sits as far above each node's threshold as the pooled one does
    (nodes training did not see keep the pooled scale).
    """

    ensemble: IsolationEnsemble
    threshold: float
    fpr_budget: float
    rules: EventRules = field(default_factory=EventRules)
    peak_threshold: float = -np.inf
    center: float = 0.0
    node_calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    adapt_seconds: int = 0

    @property
    def resources(self) -> tuple[str, ...]:
        return self.ensemble.config.resources

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The detector's features of ``frame``, computed unless ``frame`` already holds them."""
        if all(column in frame.columns for column in self.ensemble.feature_names):
            return frame.sort_values([NODE, TIMESTAMP], kind="stable").reset_index(drop=True)
        return anomaly_features(frame, self.resources, self.ensemble.step_seconds)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``node``, ``timestamp``, ``score`` and ``alarm`` (score above the threshold) per row."""
        features = self.features(frame)
        return _scored(features, self.calibrated(features), self.threshold)

    def calibrated(self, features: pd.DataFrame) -> np.ndarray:
        """The ensemble score of each row, mapped by its node's calibration and adapted to the
        node's own recent scores (:func:`adapt_to_recent`)."""
        nodes = features[NODE].astype(str).to_numpy()
        calibrated = self.calibrate(nodes, self.ensemble.score(features))
        seconds = getattr(self, "adapt_seconds", 0)  # absent in older pickles
        return adapt_to_recent(features, calibrated, self.threshold, seconds)

    def calibrate(self, nodes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``scores`` of ``nodes`` on the pooled scale (see the class docstring)."""
        calibration = getattr(self, "node_calibration", None)  # absent in older pickles
        if not calibration:
            return scores
        known = pd.Series(nodes).map(calibration)
        default = (self.center, self.threshold)
        pairs = np.array([default if not isinstance(v, tuple) else v for v in known], ndmin=2)
        center, threshold = pairs[:, 0], pairs[:, 1]
        gain = (self.threshold - self.center) / (threshold - center)
        return self.threshold + (scores - threshold) * gain

    def alarm_runs(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm events of :meth:`score`'s output under the event rules, before merging."""
        return alarm_events(scored, self.rules, min_peak=self.peak_threshold)

    def events(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm incidents of :meth:`score`'s output under the event rules."""
        return merge_incidents(self.alarm_runs(scored), self.rules.merge_seconds)


def adapt_to_recent(
    features: pd.DataFrame, scores: np.ndarray, threshold: float, seconds: int
) -> np.ndarray:
    """``scores`` lowered by how far the node's own ``1 - ADAPT_SHARE`` quantile over the
    trailing ``seconds`` (the row itself excluded) lies above ``threshold``.

    A node that has scored above the threshold for more than ``ADAPT_SHARE`` of its recent time
    has a new normal (a service that moved to a burstier regime, a recovery after an outage):
    it alarms again only where it exceeds what it recently did. A node alarms on a change, so an
    incident is found as it begins, and its pages stop once it has lasted a while. Rows (sorted
    by node, timestamp) with less than half the window of history keep their scores. ``seconds``
    0 leaves the scores as they are.
    """
    if seconds <= 0 or len(scores) == 0:
        return scores
    frame = pd.DataFrame(
        {NODE: features[NODE].to_numpy(), TIMESTAMP: features[TIMESTAMP], "s": scores}
    )
    step = max(1, int(pd.Series(frame[TIMESTAMP]).diff().dt.total_seconds().median() or 1))
    rolled = (
        frame.set_index(TIMESTAMP)
        .groupby(NODE, sort=False)["s"]
        .rolling(f"{int(seconds)}s", closed="left", min_periods=max(1, seconds // step // 2))
        .quantile(1.0 - ADAPT_SHARE)
    )
    recent = np.nan_to_num(rolled.to_numpy(np.float64), nan=-np.inf)
    return scores - np.maximum(recent - threshold, 0.0)


def fit_detector(
    features: pd.DataFrame,
    config: EnsembleConfig,
    fpr_budget: float,
    step_seconds: int,
    rules: EventRules | None = None,
    *,
    adapt_seconds: int = 0,
) -> AnomalyDetector:
    """Fit the ensemble on unlabelled training features and calibrate its thresholds.

    An event must peak at ``config.min_peak_score`` at least (in the ensemble's standardised
    units, multiples of each node's training spread), whatever the calibrated peak threshold:
    on quiet training data the calibrated one alone lets marginal bumps through.
    """
    features = features.reset_index(drop=True)
    ensemble = fit_ensemble(features, config, step_seconds)
    return calibrate_detector(
        ensemble,
        features[NODE].astype(str).to_numpy(),
        ensemble.score(features),
        fpr_budget,
        rules,
        adapt_seconds=adapt_seconds,
    )


def calibrate_detector(
    ensemble: IsolationEnsemble,
    nodes: np.ndarray,
    scores: np.ndarray,
    fpr_budget: float,
    rules: EventRules | None = None,
    *,
    adapt_seconds: int = 0,
) -> AnomalyDetector:
    """A detector from a fitted ensemble and its scores on the (unlabelled) training rows of
    ``nodes``: the pooled threshold, the per-node offsets and the event peak threshold; with
    ``adapt_seconds`` the threshold follows each node's recent scores (:func:`adapt_to_recent`)."""
    rules = rules or EventRules()
    config = ensemble.config
    threshold = calibrate_threshold(scores, fpr_budget)
    center = float(np.nanmedian(scores))
    per_node = {}
    if config.per_node_threshold:
        per_node = node_calibration(nodes, scores, fpr_budget, threshold - center)
    detector = AnomalyDetector(
        ensemble, threshold, fpr_budget, rules, -np.inf, center, per_node, adapt_seconds
    )
    peak = calibrate_peak(detector.calibrate(nodes, scores), threshold, rules.peak_factor)
    detector.peak_threshold = max(peak, config.min_peak_score)
    return detector


def node_calibration(
    nodes: np.ndarray, scores: np.ndarray, fpr_budget: float, pooled_width: float
) -> dict[str, tuple[float, float]]:
    """Per node, the median and the ``1 - fpr_budget`` quantile of its training scores, the
    quantile at least ``NODE_WIDTH_FLOOR`` of ``pooled_width`` above the median (a node quiet in
    training is not made hypersensitive); nodes with fewer than ``MIN_TRAIN_ROWS`` training
    scores are left out (they keep the pooled scale)."""
    calibration = {}
    for node, rows in pd.Series(scores).groupby(nodes, sort=True).indices.items():
        if len(rows) >= MIN_TRAIN_ROWS:
            center = float(np.nanmedian(scores[rows]))
            quantile = calibrate_threshold(scores[rows], fpr_budget)
            width = max(quantile - center, NODE_WIDTH_FLOOR * pooled_width, ALARM_TOLERANCE)
            calibration[str(node)] = (center, center + width)
    return calibration


@dataclass
class RobustZBaseline:
    """Baseline: ``max |x - median| / (1.4826 MAD)`` over the raw utilisation columns, with each
    node's median and MAD from its training rows, thresholded at the same false-positive budget.
    """

    resources: tuple[str, ...]
    medians: dict[str, dict[str, float]]
    scales: dict[str, dict[str, float]]
    threshold: float = np.inf
    rules: EventRules = field(default_factory=EventRules)
    peak_threshold: float = -np.inf

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        score = np.zeros(len(frame))
        nodes = frame[NODE].astype(str)
        for prefix in self.resources:
            column = RESOURCES[prefix]
            median = nodes.map(self.medians[prefix]).to_numpy(dtype=np.float64)
            scale = nodes.map(self.scales[prefix]).to_numpy(dtype=np.float64)
            z = np.abs(frame[column].to_numpy(dtype=np.float64) - median) / scale
            score = np.fmax(score, np.nan_to_num(z, nan=0.0))
        return score

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        ordered = frame.sort_values([NODE, TIMESTAMP], kind="stable").reset_index(drop=True)
        return _scored(ordered, self.raw_score(ordered), self.threshold)

    def alarm_runs(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm events of :meth:`score`'s output under the same rules as the detector."""
        return alarm_events(scored, self.rules, min_peak=self.peak_threshold)

    def events(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm incidents of :meth:`score`'s output, merged as the detector's."""
        return merge_incidents(self.alarm_runs(scored), self.rules.merge_seconds)


def fit_baseline(
    train: pd.DataFrame,
    resources: Sequence[str],
    fpr_budget: float,
    rules: EventRules | None = None,
) -> RobustZBaseline:
    """Fit :class:`RobustZBaseline` on unlabelled training rows of node metrics."""
    resources = check_resources(resources)
    medians: dict[str, dict[str, float]] = {}
    scales: dict[str, dict[str, float]] = {}
    for prefix in resources:
        grouped = train.groupby(NODE)[RESOURCES[prefix]]
        median = grouped.median()
        mad = (train[RESOURCES[prefix]] - train[NODE].map(median)).abs().groupby(train[NODE])
        scale = np.maximum(MAD_TO_SIGMA * mad.median(), _MIN_SCALE)
        medians[prefix] = {str(k): float(v) for k, v in median.items()}
        scales[prefix] = {str(k): float(v) for k, v in scale.items()}
    baseline = RobustZBaseline(resources, medians, scales, rules=rules or EventRules())
    scores = baseline.raw_score(train)
    baseline.threshold = calibrate_threshold(scores, fpr_budget)
    baseline.peak_threshold = calibrate_peak(scores, baseline.threshold, baseline.rules.peak_factor)
    return baseline


def time_split(frame: pd.DataFrame, train_fraction: float) -> np.ndarray:
    """True for each row in the first ``train_fraction`` of its node's time span."""
    if not 0.0 < train_fraction < 1.0:
        raise MlschedError(f"train fraction must lie in (0, 1), got {train_fraction}")
    stamps = pd.DatetimeIndex(frame[TIMESTAMP]).as_unit("ns").asi8
    grouped = pd.Series(stamps, index=frame.index).groupby(frame[NODE].to_numpy())
    first = grouped.transform("min").to_numpy()
    last = grouped.transform("max").to_numpy()
    cut = first + (last - first) * train_fraction
    return stamps < cut


__all__ = [
    "AnomalyDetector",
    "RobustZBaseline",
    "fit_baseline",
    "fit_detector",
    "infer_step_seconds",
    "time_split",
]
