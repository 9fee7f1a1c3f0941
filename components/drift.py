"""Data drift of node metrics: the training window against the most recent window.

Per key feature, the population stability index (PSI, over quantile bins of the training window)
or the two-sample Kolmogorov-Smirnov statistic; the retraining pipeline retrains when enough
features drift. Thresholds live in ``drift.yaml`` beside this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.atomic import write_text
from components.config_files import read_yaml
from components.contracts import TIMESTAMP
from components.durations import parse_duration_seconds
from components.errors import MlschedError

DEFAULT_CONFIG = Path(__file__).with_name("drift.yaml")
METHODS = ("psi", "ks")
_EPSILON = 1e-4


@dataclass(frozen=True)
class DriftConfig:
    """What to compare and when a difference counts as drift."""

    method: str = "psi"
    recent_window_seconds: float = 86_400.0
    features: tuple[str, ...] = ("cpu_utilization", "memory_utilization")
    psi_bins: int = 10
    psi_threshold: float = 0.2
    ks_threshold: float = 0.15
    min_drifted_features: int = 1
    min_rows: int = 100

    @property
    def threshold(self) -> float:
        return self.psi_threshold if self.method == "psi" else self.ks_threshold


def load_drift_config(path: str | os.PathLike | None = None) -> DriftConfig:
    """Read a drift YAML (default: the shipped ``components/drift.yaml``)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    raw = read_yaml(file, "drift config") or {}
    if not isinstance(raw, dict):
        raise MlschedError(f"{file}: expected a mapping")
    known = {"method", "recent_window", "features", "psi", "ks", "min_drifted_features", "min_rows"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MlschedError(f"{file}: unknown key(s) {', '.join(unknown)}")
    defaults = DriftConfig()
    method = raw.get("method", defaults.method)
    if method not in METHODS:
        raise MlschedError(f"{file}: method must be one of {', '.join(METHODS)}, got {method!r}")
    features = raw.get("features", list(defaults.features))
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise MlschedError(f"{file}: features must be a non-empty list of column names")
    psi = raw.get("psi") or {}
    ks = raw.get("ks") or {}
    config = DriftConfig(
        method=method,
        recent_window_seconds=parse_duration_seconds(
            raw.get("recent_window", "1d"), what=f"{file}: recent_window"
        ),
        features=tuple(features),
        psi_bins=_positive(psi.get("bins", defaults.psi_bins), f"{file}: psi.bins", int),
        psi_threshold=_positive(
            psi.get("threshold", defaults.psi_threshold), f"{file}: psi.threshold"
        ),
        ks_threshold=_positive(ks.get("threshold", defaults.ks_threshold), f"{file}: ks.threshold"),
        min_drifted_features=_positive(
            raw.get("min_drifted_features", 1), f"{file}: min_drifted_features", int
        ),
        min_rows=_positive(raw.get("min_rows", defaults.min_rows), f"{file}: min_rows", int),
    )
    if config.psi_bins < 2:
        raise MlschedError(f"{file}: psi.bins must be at least 2")
    return config


def _positive(value: Any, what: str, kind=float):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise MlschedError(f"{what}: expected a positive number, got {value!r}") from None
    if not number > 0 or (kind is int and number != float(value)):
        raise MlschedError(f"{what}: expected a positive {kind.__name__}, got {value!r}")
    return number


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` over ``reference``'s quantile bins.

    Bins are closed on the right (a value equal to an edge falls in the bin below it); an empty
    bin counts as a share of ``1e-4``, so a share missing on one side stays finite. Non-finite
    values are dropped; NaN when either side has no value left (no distribution to compare).
    The retraining trigger and the extender's drift gauge both use this one definition.
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    expected = np.maximum(expected / expected.sum(), _EPSILON)
    actual = np.maximum(actual / actual.sum(), _EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the two CDFs)."""
    from scipy.stats import ks_2samp

    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    return float(
        ks_2samp(reference[np.isfinite(reference)], current[np.isfinite(current)]).statistic
    )


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison."""

    feature: str
    psi: float
    ks: float
    reference_mean: float
    current_mean: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """The drift verdict and each feature's statistics."""

    drifted: bool
    method: str
    threshold: float
    features: tuple[FeatureDrift, ...]
    skipped: tuple[str, ...]
    reference_start: str
    split: str
    end: str
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["drifted_features"] = self.drifted_features
        return document

    def summary(self) -> str:
        verdict = "DRIFT" if self.drifted else "no drift"
        lines = [
            f"{verdict} (drift when {self.method} > {self.threshold:g}): training window "
            f"{self.reference_start} .. {self.split} ({self.reference_rows:,} rows) vs "
            f"{self.split} .. {self.end} ({self.current_rows:,} rows)"
        ]
        for f in self.features:
            mark = "*" if f.drifted else " "
            lines.append(
                f" {mark} {f.feature}: psi {f.psi:.3f}, ks {f.ks:.3f}, mean "
                f"{f.reference_mean:.3f} -> {f.current_mean:.3f}"
            )
        if self.skipped:
            lines.append(f"   skipped (absent): {', '.join(self.skipped)}")
        return "\n".join(lines)


def detect_drift(metrics: pd.DataFrame, config: DriftConfig | None = None) -> DriftReport:
    """Compare the last ``recent_window`` of ``metrics`` with everything before it.

    Raises:
        MlschedError: when no configured feature is present, or a window has too few rows.
    """
    config = config or DriftConfig()
    present = [f for f in config.features if f in metrics.columns]
    skipped = tuple(f for f in config.features if f not in metrics.columns)
    if not present:
        raise MlschedError(
            f"drift: none of the features {', '.join(config.features)} is in the node metrics"
        )
    stamps = metrics[TIMESTAMP]
    end = stamps.max()
    split = end - pd.Timedelta(seconds=config.recent_window_seconds)
    recent = stamps > split
    reference, current = metrics.loc[~recent], metrics.loc[recent]
    for name, part in (("training window", reference), ("recent window", current)):
        if len(part) < config.min_rows:
            raise MlschedError(
                f"drift: the {name} holds {len(part)} rows (< min_rows {config.min_rows}); "
                f"the node metrics span {stamps.min()} .. {end}"
            )
    results = []
    for feature in present:
        ref, cur = reference[feature].to_numpy(float), current[feature].to_numpy(float)
        psi = population_stability_index(ref, cur, config.psi_bins)
        ks = ks_statistic(ref, cur)
        statistic = psi if config.method == "psi" else ks
        results.append(
            FeatureDrift(
                feature=feature,
                psi=psi,
                ks=ks,
                reference_mean=float(np.nanmean(ref)),
                current_mean=float(np.nanmean(cur)),
                drifted=bool(statistic > config.threshold),
            )
        )
    drifted = sum(r.drifted for r in results) >= config.min_drifted_features
    return DriftReport(
        drifted=drifted,
        method=config.method,
        threshold=config.threshold,
        features=tuple(results),
        skipped=skipped,
        reference_start=stamps.min().isoformat(),
        split=split.isoformat(),
        end=end.isoformat(),
        reference_rows=len(reference),
        current_rows=len(current),
    )


def write_drift_report(report: DriftReport, path: str | os.PathLike) -> Path:
    """Write the report as JSON, atomically."""
    return write_text(path, json.dumps(report.to_dict(), indent=2))
