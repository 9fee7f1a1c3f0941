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
from components.anomaly.ensemble import EnsembleConfig, IsolationEnsemble, fit_ensemble
from components.anomaly.events import EventRules, alarm_events
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
    """A fitted ensemble, its alarm threshold and the budget it was calibrated to."""

    ensemble: IsolationEnsemble
    threshold: float
    fpr_budget: float
    rules: EventRules = field(default_factory=EventRules)
    peak_threshold: float = -np.inf

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
        return _scored(features, self.ensemble.score(features), self.threshold)

    def events(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm events of :meth:`score`'s output under the detector's event rules."""
        return alarm_events(scored, self.rules, min_peak=self.peak_threshold)


def fit_detector(
    features: pd.DataFrame,
    config: EnsembleConfig,
    fpr_budget: float,
    step_seconds: int,
    rules: EventRules | None = None,
) -> AnomalyDetector:
    """Fit the ensemble on unlabelled training features and calibrate its thresholds.

    An event must peak at ``config.min_peak_score`` at least (in the ensemble's standardised
    units, multiples of each node's training spread), whatever the calibrated peak threshold:
    on quiet training data the calibrated one alone lets marginal bumps through.
    """
    rules = rules or EventRules()
    features = features.reset_index(drop=True)
    ensemble = fit_ensemble(features, config, step_seconds)
    scores = ensemble.score(features)
    threshold = calibrate_threshold(scores, fpr_budget)
    peak = max(calibrate_peak(scores, threshold, rules.peak_factor), config.min_peak_score)
    return AnomalyDetector(ensemble, threshold, fpr_budget, rules, peak)


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

    def events(self, scored: pd.DataFrame) -> pd.DataFrame:
        """Alarm events of :meth:`score`'s output under the same rules as the detector."""
        return alarm_events(scored, self.rules, min_peak=self.peak_threshold)


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
