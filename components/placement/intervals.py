"""Means with 95 % t-intervals, and paired differences that say when two policies differ.

A policy's figure over the evaluation's (seed, window) cells is summarised by
:func:`t_interval`: the mean and the Student-t interval ``mean +- t(0.975, n - 1) x sd / sqrt(n)``.
Two policies replayed on the same cells are compared by :func:`paired_difference`: the t-interval
of the per-cell differences (pairing removes what the cells share: the workload draw, the window).
The difference is "not distinguishable" when that interval holds zero, or when there are fewer
than two cells (no interval can be formed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
NOT_DISTINGUISHABLE = "not distinguishable"
REFERENCE_BETTER = "reference better"
REFERENCE_WORSE = "reference worse"


def t_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, *, floor: float | None = None
) -> dict[str, float]:
    """``{"mean", "low", "high", "n"}`` of ``values``; with one value the interval is that value.

    ``floor``: the least value the figure can take (0 for counts and minutes). The interval is cut
    there: the true mean lies above it, so the cut interval covers it as often, and a report never
    shows an impossible negative bound.

    Raises:
        ValueError: for no values or a non-finite one.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarise")
    if not np.isfinite(array).all():
        raise ValueError("values must be finite")
    mean = float(array.mean())
    n = int(array.size)
    if n < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * array.std(ddof=1) / np.sqrt(n))
    low = mean - half if floor is None else max(mean - half, floor)
    return {"mean": mean, "low": low, "high": mean + half, "n": n}


def paired_difference(
    values: Sequence[float],
    reference: Sequence[float],
    *,
    lower_is_better: bool = True,
    confidence: float = CONFIDENCE,
) -> dict[str, float | bool | str | int]:
    """The interval of ``values - reference`` over matched cells, and what it says.

    Returns:
        ``mean_difference``, ``low``, ``high``, ``n``, ``distinguishable`` (the interval
        excludes zero and ``n >= 2``) and ``verdict``: "reference better" / "reference worse"
        (on the metric's own sense, ``lower_is_better``) or "not distinguishable".

    Raises:
        ValueError: when the two sequences differ in length.
    """
    values = np.asarray(values, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(f"paired cells differ: {values.shape} vs {reference.shape}")
    summary = t_interval(values - reference, confidence)
    distinguishable = summary["n"] >= 2 and (summary["low"] > 0 or summary["high"] < 0)
    if not distinguishable:
        verdict = NOT_DISTINGUISHABLE
    else:
        policy_higher = summary["low"] > 0
        verdict = REFERENCE_BETTER if policy_higher == lower_is_better else REFERENCE_WORSE
    return {
        "mean_difference": summary["mean"],
        "low": summary["low"],
        "high": summary["high"],
        "n": summary["n"],
        "distinguishable": bool(distinguishable),
        "verdict": verdict,
    }
