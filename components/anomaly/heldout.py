"""Leave-one-series-out choice of the alarm settings, so labelled figures never see their labels.

The ensemble is fitted once, without labels, on every series' training part. Each setting of
the grid (false-positive budget, event peak factor, time within which events merge into one
incident, how long a history each node's threshold adapts to) then gives
per-series figures; for each series in turn the setting with the best pooled event F1 on the
*other* series is chosen and that series is scored with it. The pooled figures over these
held-out choices are what the labels cannot have tuned.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from components.anomaly.detector import adapt_to_recent, calibrate_detector, time_split
from components.anomaly.ensemble import EnsembleConfig, fit_ensemble
from components.anomaly.evaluate import apply_events, check_metrics
from components.anomaly.evaluation import evaluate_alarms, pool_figures
from components.anomaly.events import EventRules
from components.contracts import NODE, AnomalyLabels
from components.features.anomaly_statistics import anomaly_features, infer_step_seconds

FPR_BUDGETS = (0.01, 0.003, 0.001)
PEAK_FACTORS = (1.0, 1.75, 3.0)
MERGE_SECONDS = (0, 6 * 3600, 12 * 3600)
ADAPT_SECONDS = (0, 2 * 86_400, 4 * 86_400)


@dataclass(frozen=True)
class AlarmSetting:
    """One point of the grid the held-out protocol chooses from."""

    fpr_budget: float
    peak_factor: float
    merge_seconds: int
    adapt_seconds: int = 0
    min_gap_seconds: int = 600
    min_duration_seconds: int = 120

    @property
    def rules(self) -> EventRules:
        return EventRules(
            self.min_gap_seconds, self.min_duration_seconds, self.peak_factor, self.merge_seconds
        )


def default_grid() -> list[AlarmSetting]:
    """Every combination of :data:`FPR_BUDGETS`, :data:`PEAK_FACTORS` and :data:`MERGE_SECONDS`."""
    axes = (FPR_BUDGETS, PEAK_FACTORS, MERGE_SECONDS, ADAPT_SECONDS)
    return [AlarmSetting(*values) for values in itertools.product(*axes)]


def figures_by_setting(
    metrics: pd.DataFrame,
    labels: AnomalyLabels,
    train_fraction: float,
    config: EnsembleConfig,
    grid: Sequence[AlarmSetting],
    *,
    runs: bool = False,
) -> dict[AlarmSetting, dict[str, dict]]:
    """Per-series figures (:func:`~components.anomaly.evaluation.evaluate_alarms`' ``per_node``)
    of every setting, the ensemble fitted once on the unlabelled training parts; with ``runs``,
    of the alarm runs before they merge into incidents (each run an alarm of its own)."""
    check_metrics(metrics, config.resources, "node metrics")
    step = infer_step_seconds(metrics)
    features = anomaly_features(metrics, config.resources, step)
    train = time_split(features, train_fraction)
    fit_rows = features[train].reset_index(drop=True)
    test = features[~train].reset_index(drop=True)
    ensemble = fit_ensemble(fit_rows, config, step)
    train_scores = ensemble.score(fit_rows)
    nodes = fit_rows[NODE].astype(str).to_numpy()
    # Scored over the whole history, so the adaptation sees the training part before the test.
    all_scores = ensemble.score(features)
    all_nodes = features[NODE].astype(str).to_numpy()
    out = {}
    for setting in grid:
        detector = calibrate_detector(
            ensemble,
            nodes,
            train_scores,
            setting.fpr_budget,
            setting.rules,
            adapt_seconds=setting.adapt_seconds,
        )
        adapted = adapt_to_recent(
            features,
            detector.calibrate(all_nodes, all_scores),
            detector.threshold,
            detector.adapt_seconds,
        )
        calibrated = adapted[~train]
        scored = pd.DataFrame(
            {
                NODE: test[NODE].to_numpy(),
                "timestamp": test["timestamp"].to_numpy(),
                "score": calibrated,
                "alarm": calibrated > detector.threshold,
            }
        )
        scored["timestamp"] = pd.DatetimeIndex(test["timestamp"]).tz_convert("UTC")
        alarmed, events = apply_events(detector, scored)
        if runs:
            events = detector.alarm_runs(scored)
        out[setting] = evaluate_alarms(alarmed, events, labels)["per_node"]
    return out


def leave_one_series_out(results: dict[AlarmSetting, dict[str, dict]]) -> dict:
    """For each series, the setting with the best pooled event F1 on the other series (ties: the
    earlier in the grid) and that series' figures under it.

    Returns:
        ``{"overall": pooled held-out figures, "per_node": {...}, "chosen": {node: setting}}``.
    """
    settings = list(results)
    series = sorted(results[settings[0]])
    per_node, chosen = {}, {}
    for held in series:
        others = [s for s in series if s != held]
        f1 = [pool_figures({s: results[x][s] for s in others})["event_f1"] for x in settings]
        best = settings[int(np.argmax([-1.0 if v is None else v for v in f1]))]
        per_node[held] = results[best][held]
        chosen[held] = asdict(best)
    return {"overall": pool_figures(per_node), "per_node": per_node, "chosen": chosen}
