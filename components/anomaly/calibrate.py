"""The alarm threshold: the score that a false-positive budget of training points exceeds."""

from __future__ import annotations

import numpy as np

from components.errors import MlschedError


def calibrate_threshold(train_scores: np.ndarray, fpr_budget: float) -> float:
    """The ``1 - fpr_budget`` quantile of the training scores.

    The training part is unlabelled and mostly normal, so at most about ``fpr_budget`` of normal
    points score above it.

    Raises:
        MlschedError: a budget outside (0, 1) or no finite training score.
    """
    if not 0.0 < fpr_budget < 1.0:
        raise MlschedError(f"fpr budget must lie in (0, 1), got {fpr_budget}")
    finite = np.asarray(train_scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        raise MlschedError("cannot calibrate the alarm threshold: no training scores")
    return float(np.quantile(finite, 1.0 - fpr_budget))


def calibrate_peak(train_scores: np.ndarray, threshold: float, factor: float) -> float:
    """The score an alarm event must reach at least once: ``median + factor * (threshold -
    median)`` of the training scores (hysteresis: alarms start at ``threshold``, but an event
    whose peak stays below this is dropped). ``factor`` 1 keeps every event."""
    if factor < 1.0:
        raise MlschedError(f"peak factor must be at least 1, got {factor}")
    median = float(np.nanmedian(np.asarray(train_scores, dtype=np.float64)))
    return median + factor * (threshold - median)
