"""The anomaly detector's parts on small hand-made frames: features, ensemble, calibration,
events, evaluation, splits, persistence and the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from components.anomaly.calibrate import calibrate_threshold
from components.anomaly.detector import fit_baseline, fit_detector, time_split
from components.anomaly.ensemble import EnsembleConfig, member_features
from components.anomaly.evaluate import evaluate_anomaly, run_anomaly_evaluation
from components.anomaly.evaluation import evaluate_alarms, label_mask
from components.anomaly.events import EventRules, alarm_events, event_alarm_mask, merge_incidents
from components.anomaly.io import read_anomaly_metrics
from components.anomaly.model import load_anomaly_detector, save_detector
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.errors import ContractError, MlschedError
from components.features.anomaly_statistics import anomaly_features, feature_names

T0 = pd.Timestamp("2026-01-05T00:00:00Z")
STEP = 60


def cycle_metrics(nodes: int = 3, days: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """Daily CPU cycles with noise, steady memory, one-minute scrapes."""
    rng = np.random.default_rng(seed)
    steps = int(days * 86_400 / STEP)
    minutes = np.arange(steps)
    frames = []
    for i in range(nodes):
        phase = 2 * np.pi * minutes / 1440 + i
        frames.append(
            pd.DataFrame(
                {
                    TIMESTAMP: T0 + pd.to_timedelta(minutes, unit="min"),
                    NODE: f"n{i}",
                    CPU_UTILIZATION: np.clip(
                        0.3 + 0.1 * i + 0.15 * np.sin(phase) + rng.normal(0, 0.02, steps), 0, 1
                    ),
                    MEMORY_UTILIZATION: 0.5 + 0.02 * np.sin(phase) + rng.normal(0, 0.004, steps),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def scored_frame(alarms: dict[str, list[int]], minutes: int = 60) -> pd.DataFrame:
    rows = []
    for node, alarmed in alarms.items():
        for m in range(minutes):
            rows.append((T0 + pd.Timedelta(minutes=m), node, float(m in alarmed), m in alarmed))
    return pd.DataFrame(rows, columns=[TIMESTAMP, NODE, "score", "alarm"])


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return cycle_metrics()


@pytest.fixture(scope="module")
def features(metrics) -> pd.DataFrame:
    return anomaly_features(metrics)


def test_features_cover_every_row_without_gaps(metrics, features):
    assert len(features) == len(metrics)
    assert list(features.columns) == [TIMESTAMP, NODE, *feature_names(("cpu", "memory"))]
    values = features[list(feature_names(("cpu", "memory")))].to_numpy()
    assert np.isfinite(values).all()
    assert features.groupby(NODE)[TIMESTAMP].apply(lambda s: s.is_monotonic_increasing).all()


def test_features_are_causal(metrics, features):
    cut = T0 + pd.Timedelta(hours=30)
    changed = metrics.copy()
    later = changed[TIMESTAMP] > cut
    changed.loc[later, CPU_UTILIZATION] = 0.99
    changed.loc[later, MEMORY_UTILIZATION] = 0.01
    again = anomaly_features(changed)
    early = features[TIMESTAMP] <= cut
    pd.testing.assert_frame_equal(
        features[early].reset_index(drop=True), again[early].reset_index(drop=True)
    )
    assert not np.allclose(features.loc[~early, "cpu_floor"], again.loc[~early, "cpu_floor"])


def test_cpu_only_features_ignore_memory(metrics):
    cpu_only = anomaly_features(metrics.assign(**{MEMORY_UTILIZATION: np.nan}), ("cpu",))
    both = anomaly_features(metrics)
    assert not any(name.startswith("memory") for name in cpu_only.columns)
    np.testing.assert_allclose(cpu_only["cpu_floor_rz"], both["cpu_floor_rz"])
    with pytest.raises(MlschedError, match="resources"):
        anomaly_features(metrics, ("disk",))


def test_frozen_share_counts_exact_repeats(metrics):
    frozen = metrics.copy()
    rows = (frozen[NODE] == "n0") & (frozen[TIMESTAMP] >= T0 + pd.Timedelta(hours=40))
    frozen.loc[rows, [CPU_UTILIZATION, MEMORY_UTILIZATION]] = [0.4, 0.5]
    out = anomaly_features(frozen)
    inside = (out[NODE] == "n0") & (out[TIMESTAMP] >= T0 + pd.Timedelta(hours=41))
    assert (out.loc[inside, "frozen_share"] == 1.0).all()
    assert out.loc[out[NODE] == "n1", "frozen_share"].max() < 0.2


def test_frozen_share_needs_a_run_of_five_minutes_and_tolerates_counter_noise(metrics):
    held = metrics.copy()
    n0 = held[NODE] == "n0"
    start = T0 + pd.Timedelta(hours=40)
    minutes = (held[TIMESTAMP] - start) / pd.Timedelta(minutes=1)
    short = n0 & (minutes >= 0) & (minutes < 4)  # a rate() window sliding over a flat series
    held.loc[short, [CPU_UTILIZATION, MEMORY_UTILIZATION]] = [0.4, 0.5]
    out = anomaly_features(held)
    assert out.loc[out[NODE] == "n0", "frozen_share"].max() == 0.0
    long = n0 & (minutes >= 120) & (minutes < 180)
    flicker = np.where(np.arange(long.sum()) % 3 == 0, 1e-5, 0.0)  # 10 ms counter resolution
    held.loc[long, CPU_UTILIZATION] = 0.4 + flicker
    held.loc[long, MEMORY_UTILIZATION] = 0.5
    out = anomaly_features(held)
    node = out[out[NODE] == "n0"].set_index(TIMESTAMP)["frozen_share"]
    assert node[start + pd.Timedelta(minutes=123)] == 0.0, "under 5 minutes held: not frozen"
    assert node[start + pd.Timedelta(minutes=175)] > 0.5


def test_a_node_quiet_in_training_is_not_made_hypersensitive(metrics):
    quiet = metrics.copy()
    n0 = quiet[NODE] == "n0"
    quiet.loc[n0, CPU_UTILIZATION] = 0.3
    quiet.loc[n0, MEMORY_UTILIZATION] = 0.5
    features = anomaly_features(quiet)
    spreads = {}
    for floor in (0.0, 0.35):
        config = EnsembleConfig(n_estimators=20, node_spread_floor=floor)
        members = fit_detector(features, config, 0.01, STEP).ensemble.members
        spreads[floor] = [(m.node_spread["n0"], m.spread) for m in members]
    assert any(node < 0.35 * pooled for node, pooled in spreads[0.0])
    assert all(node >= 0.35 * pooled for node, pooled in spreads[0.35])


def test_members_cover_feature_subsets():
    both = member_features(("cpu", "memory"))
    assert {"cpu_level", "spikes", "frozen", "health", "trend", "leak"} <= set(both)
    # memory steps with its pods and level shifts: it is scored against its requests alone
    assert [name for name, fs in both.items() if any(f.startswith("memory") for f in fs)] == [
        "leak"
    ]
    cpu = member_features(("cpu",))
    assert all(not f.startswith("memory") for fs in cpu.values() for f in fs)


def test_ensemble_is_deterministic_by_seed(features):
    train = features[time_split(features, 0.5)]
    config = EnsembleConfig(n_estimators=20, seed=3)
    first = fit_detector(train, config, 0.01, STEP).score(features)
    second = fit_detector(train, config, 0.01, STEP).score(features)
    other = fit_detector(train, EnsembleConfig(n_estimators=20, seed=4), 0.01, STEP)
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first["score"], other.score(features)["score"])
    assert list(first.columns) == [NODE, TIMESTAMP, "score", "alarm"]
    assert len(first) == len(features)


def test_calibration_takes_the_budget_quantile():
    scores = np.arange(1000, dtype=float)
    assert calibrate_threshold(scores, 0.01) == pytest.approx(np.quantile(scores, 0.99))
    assert (scores > calibrate_threshold(scores, 0.05)).mean() == pytest.approx(0.05, abs=0.002)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(MlschedError, match="fpr budget"):
            calibrate_threshold(scores, bad)
    with pytest.raises(MlschedError, match="no training scores"):
        calibrate_threshold(np.array([np.nan]), 0.1)


def test_events_bridge_short_gaps_and_drop_short_events():
    scored = scored_frame({"a": [5, 6, 7, 9, 10, 30, 31, 32, 33], "b": [50]})
    events = alarm_events(scored, EventRules(min_gap_seconds=120, min_duration_seconds=120))
    assert list(events[NODE]) == ["a", "a"]
    assert list(events["start"]) == [T0 + pd.Timedelta(minutes=5), T0 + pd.Timedelta(minutes=30)]
    assert list(events["end"]) == [T0 + pd.Timedelta(minutes=10), T0 + pd.Timedelta(minutes=33)]
    assert list(events["samples"]) == [5, 4]
    mask = event_alarm_mask(scored, events)
    assert mask[(scored[NODE] == "a").to_numpy()].sum() == 6 + 4  # minute 8 bridged
    merged = alarm_events(scored, EventRules(min_gap_seconds=60, min_duration_seconds=0))
    assert len(merged) == 4  # 5-7, 9-10, 30-33 and b's single alarm
    assert alarm_events(scored_frame({"a": []}), EventRules()).empty


def test_incidents_merge_within_a_node_only():
    """A node's runs far apart stay separate incidents even when another node (sorted before
    it) alarmed until later: the merge gap is measured within each node."""
    scored = scored_frame({"a": [2000, 2001, 2002], "b": [5, 6, 7, 1000, 1001, 1002]}, 2100)
    runs = alarm_events(scored, EventRules(min_gap_seconds=60, min_duration_seconds=0))
    incidents = merge_incidents(runs, merge_seconds=3600)
    assert list(incidents[NODE]) == ["a", "b", "b"]
    assert len(merge_incidents(runs, merge_seconds=86_400)) == 2


def test_evaluation_counts_events_windows_and_points():
    scored = scored_frame({"a": list(range(10, 15)) + list(range(40, 43)), "b": []})
    events = alarm_events(scored, EventRules(min_gap_seconds=60, min_duration_seconds=0))
    scored = scored.assign(alarm=event_alarm_mask(scored, events))
    labels = {
        "a": [(T0 + pd.Timedelta(minutes=12), T0 + pd.Timedelta(minutes=20))],
        "b": [(T0 + pd.Timedelta(minutes=0), T0 + pd.Timedelta(minutes=4))],
        "gone": [(T0, T0)],
    }
    report = evaluate_alarms(scored, events, labels)
    overall = report["overall"]
    assert overall["events"] == 2 and overall["true_events"] == 1
    assert overall["event_precision"] == pytest.approx(0.5)
    assert overall["windows"] == 2 and overall["window_recall"] == pytest.approx(0.5)
    normal = 120 - 9 - 5
    assert overall["point_fpr"] == pytest.approx((2 + 3) / normal)
    assert overall["event_f1"] == pytest.approx(0.5)
    assert report["per_node"]["b"]["event_precision"] is None
    assert report["per_node"]["b"]["window_recall"] == 0.0
    assert label_mask(scored, labels).sum() == 9 + 5


def test_windows_outside_the_evaluated_span_do_not_count():
    scored = scored_frame({"a": []})
    later = (T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=3))
    report = evaluate_alarms(scored, alarm_events(scored, EventRules()), {"a": [later]})
    assert report["overall"]["windows"] == 0 and report["overall"]["window_recall"] is None


def test_time_split_is_per_node_and_time_ordered(metrics):
    shifted = metrics.copy()
    shifted.loc[shifted[NODE] == "n2", TIMESTAMP] += pd.Timedelta(days=30)
    train = time_split(shifted, 0.3)
    for _, group in shifted.assign(train=train).groupby(NODE):
        assert group["train"].mean() == pytest.approx(0.3, abs=0.01)
        stamps = group[TIMESTAMP]
        assert stamps[group["train"]].max() < stamps[~group["train"]].min()
    with pytest.raises(MlschedError, match="train fraction"):
        time_split(metrics, 1.0)


def test_baseline_scores_robust_z_per_node(metrics):
    baseline = fit_baseline(metrics, ("cpu",), 0.01)
    scored = baseline.score(metrics)
    assert (scored["alarm"].mean()) == pytest.approx(0.01, abs=0.003)
    spiked = metrics.copy()
    spiked.loc[0, CPU_UTILIZATION] = 1.0
    assert baseline.score(spiked).loc[0, "alarm"]


def test_evaluate_report_has_model_and_baseline(metrics):
    labels = {"n0": [(T0 + pd.Timedelta(hours=30), T0 + pd.Timedelta(hours=31))]}
    report = evaluate_anomaly(metrics, labels, 0.5)
    for section in (report, report["baseline"]):
        assert set(section["per_node"]) == {"n0", "n1", "n2"}
        for name in ("event_precision", "window_recall", "point_fpr", "event_f1"):
            assert name in section["overall"]
    assert report["overall"]["windows"] == 1
    assert report["settings"]["train_fraction"] == 0.5
    json.dumps(report)


def test_evaluate_fails_clearly_on_unusable_input(metrics):
    with pytest.raises(MlschedError, match="memory_utilization.*cpu-only"):
        evaluate_anomaly(metrics.assign(**{MEMORY_UTILIZATION: np.nan}), {}, 0.3)
    with pytest.raises(MlschedError, match="node n9 has 2 sample"):
        evaluate_anomaly(pd.concat([metrics, metrics.head(2).assign(node="n9")]), {}, 0.3)
    with pytest.raises(MlschedError, match="training"):
        evaluate_anomaly(metrics.groupby(NODE).head(10), {}, 0.3)
    with pytest.raises(MlschedError, match="no rows"):
        evaluate_anomaly(metrics.head(0), {}, 0.3)


def test_detector_round_trips_through_joblib(tmp_path, metrics, features):
    run = run_anomaly_evaluation(metrics, {}, 0.5, config=EnsembleConfig(n_estimators=10))
    save_detector(run.detector, tmp_path / "model")
    loaded = load_anomaly_detector(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.score(metrics), run.detector.score(metrics))
    pd.testing.assert_frame_equal(loaded.score(features), run.detector.score(metrics))
    assert json.loads((tmp_path / "model" / "detector.json").read_text())["resources"] == [
        "cpu",
        "memory",
    ]
    with pytest.raises(MlschedError, match="neither"):
        load_anomaly_detector(tmp_path)


def test_cpu_only_reading_accepts_a_missing_memory_column(tmp_path, metrics):
    csv = tmp_path / "cpu.csv"
    out = metrics.drop(columns=[MEMORY_UTILIZATION]).head(50)
    out.assign(**{TIMESTAMP: out[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        csv, index=False
    )
    read = read_anomaly_metrics(csv, cpu_only=True)
    assert read[MEMORY_UTILIZATION].isna().all() and len(read) == 50
    with pytest.raises(ContractError, match="memory_utilization"):
        read_anomaly_metrics(csv)
    bad = tmp_path / "bad.csv"
    out.assign(**{TIMESTAMP: out[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")}).to_csv(
        bad, index=False
    )
    with pytest.raises(ContractError, match="naive timestamp"):
        read_anomaly_metrics(bad, cpu_only=True)


def test_cli_writes_the_report(tmp_path, metrics, capsys):
    from components.anomaly.cli import add_evaluate_anomaly_parser

    parser = argparse.ArgumentParser()
    evaluate = parser.add_subparsers().add_parser("evaluate").add_subparsers()
    add_evaluate_anomaly_parser(evaluate)
    csv, labels = tmp_path / "m.csv", tmp_path / "labels.json"
    metrics.assign(**{TIMESTAMP: metrics[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        csv, index=False
    )
    labels.write_text(json.dumps({"n1": [["2026-01-06T10:00:00Z", "2026-01-06T11:00:00Z"]]}))
    args = parser.parse_args(
        ["evaluate", "anomaly", "--metrics", str(csv), "--labels", str(labels)]
        + ["--train-fraction", "0.5", "--output", str(tmp_path / "out" / "report.json")]
    )
    assert args.handler(args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["overall"]["windows"] == 1
    assert "model: event_precision" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "anomaly", "--metrics", "x", "--labels", "y"])


def _memory_rise(explained: bool) -> pd.DataFrame:
    """One node: memory rises by 0.3 over 4 h on day 2, with (or without) its requests."""
    frame = cycle_metrics(nodes=1, days=2.0)
    minutes = np.arange(len(frame))
    ramp = np.clip((minutes - 1800) / 240, 0.0, 1.0) * (minutes < 2400)
    requested = 0.4 + rng_noise(len(frame)) + (0.4 * ramp if explained else 0.0)
    return frame.assign(
        **{MEMORY_UTILIZATION: frame[MEMORY_UTILIZATION] + 0.3 * ramp},
        memory_requested_ratio=requested,
    )


def rng_noise(n: int) -> np.ndarray:
    return np.random.default_rng(7).normal(0, 0.01, n)


def test_memory_excess_flags_a_leak_but_not_a_rise_that_requests_explain():
    leak = anomaly_features(_memory_rise(explained=False))["memory_excess"].to_numpy()
    explained = anomaly_features(_memory_rise(explained=True))["memory_excess"].to_numpy()
    assert leak[1800:2040].max() > 0.1
    assert explained[1800:2040].max() < 0.05
    assert leak[:1800].max() < 0.05


def test_pulses_count_short_spikes_but_not_a_load_step():
    frame = cycle_metrics(nodes=1, days=2.0)
    cpu = frame[CPU_UTILIZATION].to_numpy().copy()
    cpu[2000:2030:5] += 0.4  # one-sample spikes every 5 minutes
    cpu[2400:] += 0.3  # a lasting load step
    pulses = anomaly_features(frame.assign(**{CPU_UTILIZATION: cpu}))["cpu_pulses"].to_numpy()
    assert pulses[2000:2040].max() > 1.0
    assert pulses[2390:2420].max() == 0.0
    assert pulses[1440:1990].max() == 0.0
