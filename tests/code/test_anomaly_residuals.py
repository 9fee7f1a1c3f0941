"""What the detector adds for real incidents, on small hand-made series: level-shift, seasonal and
forecast residual features, per-node calibration of the threshold, the detection delay and the
leave-one-series-out choice of alarm settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.anomaly.detector import ADAPT_SHARE, adapt_to_recent, fit_detector, time_split
from components.anomaly.ensemble import EnsembleConfig
from components.anomaly.evaluation import evaluate_alarms, pool_figures
from components.anomaly.events import EventRules, alarm_events, event_alarm_mask
from components.anomaly.heldout import AlarmSetting, leave_one_series_out
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.features.anomaly_statistics import anomaly_features

T0 = pd.Timestamp("2026-01-05T00:00:00Z")
STEP = 300
DAY = 86_400 // STEP


def series(values: np.ndarray, node: str = "n") -> pd.DataFrame:
    return pd.DataFrame(
        {
            TIMESTAMP: T0 + pd.to_timedelta(np.arange(len(values)) * STEP, unit="s"),
            NODE: node,
            CPU_UTILIZATION: values,
            MEMORY_UTILIZATION: np.nan,
        }
    )


def cpu_features(values: np.ndarray) -> pd.DataFrame:
    return anomaly_features(series(values), ("cpu",), STEP)


def noisy(days: float, level: float = 0.4, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level + rng.normal(0, sigma, int(days * DAY)), 0, 1)


def test_level_shift_scores_a_drop_as_well_as_a_rise():
    for new_level in (0.1, 0.8):
        values = noisy(3)
        values[2 * DAY :] += new_level - 0.4
        shift = cpu_features(values)["cpu_shift_rz"].to_numpy()
        assert shift[DAY : 2 * DAY].max() < 3
        assert shift[2 * DAY + 12 : 2 * DAY + 24].min() > 10


def test_an_idle_nodes_usual_bursts_are_no_level_shift():
    """A nearly idle node that runs an hour at 0.9 every 7 hours: by its third day such an hour is
    a small shift in units of its own bursts (its robust spread alone is near zero)."""
    values = noisy(4, level=0.01, sigma=0.001)
    for start in range(0, 4 * DAY - 12, 7 * 12):
        values[start : start + 12] = 0.9
    shift = cpu_features(values)["cpu_shift_rz"].to_numpy()
    assert shift[2 * DAY : 4 * DAY].max() < 3


def test_seasonal_residual_ignores_a_daily_spike_but_not_a_new_one():
    values = noisy(4, level=0.05, sigma=0.002)
    for day in range(4):
        values[day * DAY + 100] = 0.6  # the daily job, same time each day
    values[3 * DAY + 200] = 0.6  # the same spike at an hour it never ran
    seasonal = cpu_features(values)["cpu_seasonal_rz"].to_numpy()
    assert seasonal[3 * DAY + 100] < 0.2 * seasonal[3 * DAY + 200]
    assert seasonal[3 * DAY + 200] > 10


def test_a_daily_job_that_drifts_in_time_and_size_is_no_forecast_surprise():
    """The backup spike of an idle node runs some minutes earlier or later and a little larger
    each day: within the range the node took at that hour in the last days, it is no forecast
    residual; the same spike at an hour it never ran is."""
    values = noisy(5, level=0.0015, sigma=0.0001)
    for day, (shift, height) in enumerate([(0, 0.014), (3, 0.015), (-2, 0.0145), (4, 0.015)]):
        values[day * DAY + 40 + shift] = height
    values[4 * DAY + 38] = 0.016  # the daily job, a little earlier and larger than ever
    values[4 * DAY + 200] = 0.016  # an hour it never ran
    features = cpu_features(values)
    forecast, seasonal = features["cpu_forecast_rz"], features["cpu_seasonal_rz"]
    job = slice(4 * DAY + 38, 4 * DAY + 44)
    new = slice(4 * DAY + 200, 4 * DAY + 206)
    assert forecast[job].max() == 0.0
    assert forecast[new].max() > 0.5
    assert seasonal[new].max() > 5 * max(seasonal[job].max(), 0.1)


def test_a_node_that_keeps_scoring_high_adapts_after_a_while():
    """Scores stay high from day 2 on (a new regime): the onset alarms, a day later the node's
    threshold has followed its scores up; another node and seconds 0 are untouched."""
    stamps = T0 + pd.to_timedelta(np.arange(4 * DAY) * STEP, unit="s")
    scores = np.where(np.arange(4 * DAY) >= 2 * DAY, 5.0, 0.0)
    frame = pd.DataFrame({NODE: "n", TIMESTAMP: stamps})
    both = pd.concat([frame, frame.assign(**{NODE: "quiet"})], ignore_index=True)
    all_scores = np.concatenate([scores, np.zeros(4 * DAY)])
    adapted = adapt_to_recent(both, all_scores, 1.0, 2 * 86_400)
    onset = int(ADAPT_SHARE * 2 * DAY)  # rows of high scores it takes to move the quantile
    assert (adapted[2 * DAY : 2 * DAY + onset] > 1.0).all()
    assert (adapted[3 * DAY : 4 * DAY] <= 1.0).all()
    assert (adapted[: 2 * DAY] == 0.0).all() and (adapted[4 * DAY :] == 0.0).all()
    assert np.array_equal(adapt_to_recent(both, all_scores, 1.0, 0), all_scores)


def test_forecast_residual_fires_outside_the_interval_only():
    values = noisy(2)
    quiet = cpu_features(values)["cpu_forecast_rz"].to_numpy()
    values[DAY + 50 : DAY + 53] = 0.9
    loud = cpu_features(values)["cpu_forecast_rz"].to_numpy()
    assert np.median(quiet[DAY:]) < 0.05
    assert loud[DAY + 52] > 5 and loud[DAY + 52] > 20 * quiet[DAY + 52]


def test_residual_features_are_causal():
    values = noisy(3)
    changed = values.copy()
    changed[2 * DAY :] = 0.95
    before = cpu_features(values).iloc[: 2 * DAY]
    after = cpu_features(changed).iloc[: 2 * DAY]
    pd.testing.assert_frame_equal(before, after)


def test_threshold_is_calibrated_per_node():
    frames = [series(noisy(3, sigma=0.002, seed=1), "quiet"), series(noisy(3, seed=2), "busy")]
    rng = np.random.default_rng(3)
    busy = frames[1][CPU_UTILIZATION].to_numpy()
    busy[rng.choice(len(busy), 60, replace=False)] = 0.95  # routine bursts on this node
    features = anomaly_features(pd.concat(frames, ignore_index=True), ("cpu",), STEP)
    config = EnsembleConfig(resources=("cpu",), n_estimators=30)
    per_node = fit_detector(features, config, 0.02, STEP)
    unpooled = EnsembleConfig(resources=("cpu",), n_estimators=30, per_node_threshold=False)
    pooled = fit_detector(features, unpooled, 0.02, STEP)
    own = per_node.score(features).groupby(NODE)["alarm"].mean()
    shared = pooled.score(features).groupby(NODE)["alarm"].mean()
    assert own.max() <= 2 * 0.02 and own.min() > 0
    # one pooled threshold spends the budget unevenly between the two nodes
    assert abs(shared["busy"] - shared["quiet"]) > 2 * abs(own["busy"] - own["quiet"])
    assert set(per_node.node_calibration) == {"quiet", "busy"}


def test_delay_runs_from_the_window_start_to_the_first_alarm():
    stamps = T0 + pd.to_timedelta(np.arange(60), unit="min")
    alarm = np.zeros(60, dtype=bool)
    alarm[20:25] = True  # inside the first window, 10 minutes after it opens
    alarm[38:45] = True  # began before the second window: no delay
    scored = pd.DataFrame({NODE: "a", TIMESTAMP: stamps, "score": alarm * 5.0, "alarm": alarm})
    events = alarm_events(scored, EventRules(min_gap_seconds=60, min_duration_seconds=0))
    scored = scored.assign(alarm=event_alarm_mask(scored, events))
    windows = [(stamps[10], stamps[30]), (stamps[40], stamps[50])]
    overall = evaluate_alarms(scored, events, {"a": windows})["overall"]
    assert overall["delays_minutes"] == [10.0, 0.0]
    assert overall["detection_delay_minutes"] == pytest.approx(5.0)


def _figures(events: int, true: int, windows: int, hit: int) -> dict:
    counts = {
        "events": events,
        "true_events": true,
        "windows": windows,
        "hit_windows": hit,
        "normal_points": 100,
        "false_alarm_points": events - true,
        "delays_minutes": [0.0] * hit,
    }
    return {**pool_figures({"x": counts}), **counts}


def test_leave_one_series_out_never_uses_the_held_out_labels():
    loose, strict = AlarmSetting(0.01, 1.0, 600), AlarmSetting(0.001, 3.0, 600)
    # "strict" is best on a and b; on c alone "loose" would be best.
    results = {
        loose: {"a": _figures(5, 1, 1, 1), "b": _figures(5, 1, 1, 1), "c": _figures(1, 1, 1, 1)},
        strict: {"a": _figures(1, 1, 1, 1), "b": _figures(1, 1, 1, 1), "c": _figures(0, 0, 1, 0)},
    }
    held_out = leave_one_series_out(results)
    assert held_out["chosen"]["c"]["fpr_budget"] == strict.fpr_budget
    assert held_out["per_node"]["c"]["hit_windows"] == 0
    assert held_out["overall"]["windows"] == 3 and held_out["overall"]["hit_windows"] == 2
    split = time_split(series(noisy(1)), 0.5)
    assert split[: DAY // 2].all() and not split[DAY // 2 + 1 :].any()


def test_per_trace_figures_become_mlflow_metric_names():
    from components.anomaly.evaluation import per_node_metrics

    figures = {**_figures(2, 1, 1, 1), "detection_delay_minutes": 5.0}
    metrics = per_node_metrics({"per_node": {"ec2 cpu/24ae8d": figures}})
    assert metrics["node_ec2_cpu_24ae8d_event_f1"] == pytest.approx(figures["event_f1"])
    assert metrics["node_ec2_cpu_24ae8d_detection_delay_minutes"] == 5.0
