"""Forecast dataset, split, metrics and model: shapes, determinism and no time leakage."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.cpus import available_cpus
from components.errors import MlschedError
from components.features.definitions import FEATURE_NAMES, RESOURCES
from components.forecast import metrics as m
from components.forecast.dataset import (
    build_forecast_dataset,
    feature_matrix,
    infer_step_seconds,
    parse_horizons,
    time_split,
)
from components.forecast.evaluate import evaluate_forecast, run_forecast_experiment
from components.forecast.model import (
    COARSE,
    COMPACT,
    FULL,
    MEMBERS,
    SEASONAL_HUBER,
    ForecastParams,
    best_blend_weights,
    boosting_threads,
    coarse_columns,
    compact_columns,
    level_ceiling,
    load_forecaster,
    model_matrix,
    seasonal_columns,
    weight_grid,
)

START = pd.Timestamp("2026-01-05T00:00:00Z")
FAST = ForecastParams(
    n_estimators=20,
    max_train_rows=2000,
    early_stopping_rounds=5,
    quantile_early_stopping_rounds=5,
)


def make_metrics(
    nodes: int = 3, days: float = 3, step: int = 300, seed: int = 0, gaps: bool = False
) -> pd.DataFrame:
    """A small node-metrics frame: daily cycles plus AR noise, optionally with missing scrapes."""
    rng = np.random.default_rng(seed)
    steps = int(days * 86_400 / step)
    stamps = START + pd.to_timedelta(np.arange(steps) * step, unit="s")
    hours = (np.arange(steps) * step / 3600.0) % 24
    frames = []
    for i in range(nodes):
        noise = np.cumsum(rng.normal(0, 0.01, steps)) * 0.2
        cpu = 0.4 + 0.2 * np.sin(2 * np.pi * (hours - 6 - i) / 24) + noise
        memory = 0.5 + 0.05 * np.sin(2 * np.pi * hours / 24) + 0.3 * noise
        frame = pd.DataFrame(
            {
                TIMESTAMP: stamps,
                NODE: f"node-{i}",
                CPU_UTILIZATION: np.clip(cpu, 0, 1),
                MEMORY_UTILIZATION: np.clip(memory, 0, 1),
            }
        )
        if gaps:
            frame = frame[rng.uniform(size=steps) > 0.05]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_parse_horizons_normalises_and_rejects_bad_values():
    assert parse_horizons("30m, 5m,900s") == ("5m", "15m", "30m")
    for bad in ("", "5m,5m", "1d", "soon", "-5m"):
        with pytest.raises(MlschedError):
            parse_horizons(bad)


@pytest.mark.parametrize("step", [30, 60, 300])
def test_step_inference_and_target_alignment(step):
    metrics = make_metrics(nodes=2, days=1.2, step=step, gaps=True)
    assert infer_step_seconds(metrics) == step
    dataset = build_forecast_dataset(metrics, ["5m", "15m"])
    assert dataset.step_seconds == step
    assert len(dataset.features) == len(metrics)
    series = metrics.set_index([NODE, TIMESTAMP])[CPU_UTILIZATION]
    features = dataset.features
    for row in (5, len(features) // 2, len(features) - 3):
        node, stamp = features[NODE].iloc[row], features[TIMESTAMP].iloc[row]
        for name, minutes in (("5m", 5), ("15m", 15)):
            expected = series.get((node, stamp + pd.Timedelta(minutes=minutes)), np.nan)
            got = dataset.targets["cpu", name][row]
            assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected)
        yesterday = series.get((node, stamp + pd.Timedelta(minutes=15) - pd.Timedelta(days=1)))
        got = dataset.seasonal["cpu", "15m"][row]
        assert np.isnan(got) if yesterday is None else got == pytest.approx(yesterday)


def test_horizon_shorter_than_step_fails_clearly():
    with pytest.raises(MlschedError, match="shorter than the scrape interval"):
        build_forecast_dataset(make_metrics(nodes=1, days=1, step=600), ["5m"])


def test_split_purges_targets_across_the_boundary():
    dataset = build_forecast_dataset(make_metrics(), ["5m", "30m"])
    split = time_split(dataset, 0.7, 0.2)
    nanos = dataset.nanos
    test = split.test(dataset)
    for horizon in dataset.horizons:
        fit, validation = split.fit(dataset, horizon), split.validation(dataset, horizon)
        target_time = nanos + horizon.seconds * 1_000_000_000
        assert not (fit & validation).any() and not (fit & test).any()
        assert (target_time[fit] < split.validation_cut[fit]).all()
        assert (target_time[validation] < split.train_cut[validation]).all()
        for node in dataset.features[NODE].unique():
            rows = (dataset.features[NODE] == node).to_numpy()
            assert nanos[rows & (fit | validation)].max() < nanos[rows & test].min()


def test_training_ignores_everything_after_the_boundary():
    """Scrambling the test part of the history changes no trained booster (no leakage)."""
    metrics = make_metrics(days=3)
    first = run_forecast_experiment(metrics, ["15m"], 0.6, params=FAST)
    cut = first.split.train_cut.min()
    scrambled = metrics.copy()
    later = scrambled[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64) >= cut
    rng = np.random.default_rng(1)
    scrambled.loc[later, CPU_UTILIZATION] = rng.uniform(0, 1, later.sum())
    scrambled.loc[later, MEMORY_UTILIZATION] = rng.uniform(0, 1, later.sum())
    second = run_forecast_experiment(scrambled, ["15m"], 0.6, params=FAST)
    for key, booster in first.forecaster.boosters.items():
        assert booster.save_raw() == second.forecaster.boosters[key].save_raw(), key


def test_training_is_deterministic_and_round_trips(tmp_path):
    metrics = make_metrics(gaps=True)
    first = run_forecast_experiment(metrics, ["5m", "15m"], 0.7, params=FAST)
    second = run_forecast_experiment(metrics, ["5m", "15m"], 0.7, params=FAST)
    assert json.dumps(first.report, sort_keys=True) == json.dumps(second.report, sort_keys=True)
    features = first.dataset.features.tail(50).reset_index(drop=True)
    predicted = first.forecaster.predict(features)
    assert list(predicted.columns) == [TIMESTAMP, NODE, *first.forecaster.output_columns]
    assert len(predicted) == 50
    assert (predicted["cpu_15m_p90"] >= predicted["cpu_15m"]).all()
    saved = first.forecaster.save(tmp_path / "model")
    reloaded = load_forecaster(saved)
    pd.testing.assert_frame_equal(reloaded.predict(features), predicted)
    with pytest.raises(MlschedError, match="missing column"):
        reloaded.predict(features.drop(columns=["cpu_mean_1h"]))


def test_blend_weights_are_chosen_on_the_grid_by_held_out_mae():
    grid = weight_grid(3)
    assert len(grid) == 15 and all(abs(sum(w) - 1) < 1e-12 for w in grid)
    actual = np.array([0.0, 1.0, 2.0, 3.0])
    exact, biased = actual.copy(), actual + 1.0
    # the member that matches alone gets all the weight; halves when two err in opposite ways
    assert best_blend_weights(actual, {"a": biased, "b": exact}) == {"b": 1.0}
    halves = best_blend_weights(actual, {"a": actual - 1.0, "b": biased, "c": actual + 3.0})
    assert halves == {"a": 0.5, "b": 0.5}
    assert best_blend_weights(actual[:0], {FULL: actual[:0], "b": actual[:0]}) == {FULL: 1.0}


def test_blends_within_the_tolerance_prefer_the_even_one():
    actual, a = np.zeros(10), np.ones(10)
    # a alone is 0.4 % better than the even blend: within the tolerance, the even blend wins
    assert best_blend_weights(actual, {"a": a, "b": a + 0.008}) == {"a": 0.5, "b": 0.5}
    # every blend with b is over 1 % worse: beyond the noise, a is kept alone
    assert best_blend_weights(actual, {"a": a, "b": a + 0.05}) == {"a": 1.0}


def test_a_blend_must_beat_the_even_one_across_nodes_to_be_chosen():
    rng = np.random.default_rng(0)
    nodes = np.repeat(np.arange(8), 50)
    actual = np.zeros(len(nodes))
    # b is 5 % worse on average, but only because of one node: with 8 nodes, within the noise
    a = np.ones(len(nodes))
    b = np.where(nodes == 0, 1.4, 1.0) + rng.normal(0, 1e-3, len(nodes))
    assert best_blend_weights(actual, {"a": a, "b": b}) == {"a": 1.0}
    assert best_blend_weights(actual, {"a": a, "b": b}, nodes=nodes) == {"a": 0.5, "b": 0.5}
    # 5 % worse on every node alike: distinguishable, a is kept alone
    even = np.full(len(nodes), 1.05)
    assert best_blend_weights(actual, {"a": a, "b": even}, nodes=nodes) == {"a": 1.0}
    # one node: the fixed tolerance alone decides
    one = np.zeros(len(nodes))
    assert best_blend_weights(actual, {"a": a, "b": b}, nodes=one) == {"a": 1.0}


def test_blend_weights_score_the_blend_clipped_as_served():
    actual = np.zeros(4)
    over = np.full(4, 5.0)  # overshoots, but the level ceiling clips it to the truth
    low = np.full(4, -0.5)
    assert best_blend_weights(actual, {"a": over, "b": low}) == {"b": 1.0}
    bounds = (np.full(4, -1.0), np.zeros(4))
    # clipped, every blend with a positive sum is exact; the most even of them is chosen
    assert best_blend_weights(actual, {"a": over, "b": low}, bounds) == {"a": 0.5, "b": 0.5}


def test_forecasts_stay_under_full_capacity_unless_the_node_ran_above_it():
    features = pd.DataFrame({"cpu_max_24h": [0.4, 1.0, 1.2, 9.0, np.nan]})
    np.testing.assert_allclose(level_ceiling(features, "cpu"), [1.0, 1.0, 1.2, 1.5, 1.0])


def test_trained_blend_keeps_only_weighted_members():
    experiment = run_forecast_experiment(make_metrics(), ["15m"], 0.7, params=FAST)
    forecaster = experiment.forecaster
    for point in ("cpu_15m", "memory_15m"):
        weights = forecaster.blend_weights[point]
        assert set(weights) <= set(MEMBERS) and abs(sum(weights.values()) - 1) < 1e-9
        members = {k for k in forecaster.boosters if k.startswith(point) and "p90" not in k}
        assert len(members) == len(weights)


def test_compact_member_reads_the_short_memory_summary_of_its_resource():
    names = list(FEATURE_NAMES)
    for resource in ("cpu", "memory"):
        read = [names[i] for i in compact_columns(names, resource)]
        assert len(read) == 23 and read[0] == RESOURCES[resource]
        assert all(n.startswith(f"{resource}_") or n.startswith("hour_of_day") for n in read[1:])


def test_seasonal_member_reads_the_compact_summary_and_the_seasonal_leads():
    names = list(FEATURE_NAMES)
    for resource in ("cpu", "memory"):
        read = [names[i] for i in seasonal_columns(names, resource)]
        leads = read[23:]
        assert read[:23] == [names[i] for i in compact_columns(names, resource)]
        assert len(leads) == 9 and all(n.startswith(f"{resource}_change_next_") for n in leads)


def test_saved_models_with_a_member_no_longer_trained_still_predict():
    experiment = run_forecast_experiment(make_metrics(), ["15m"], 0.7, params=FAST)
    forecaster, features = experiment.forecaster, experiment.dataset.features
    names = list(FEATURE_NAMES)
    columns = coarse_columns(names)
    relative = model_matrix(feature_matrix(features, names), names, "cpu")
    rng = np.random.default_rng(0)
    coarse = xgb.train(
        {"max_depth": 2},
        xgb.DMatrix(
            relative[:, columns],
            rng.normal(size=len(relative)),
            feature_names=[names[i] for i in columns],
        ),
        5,
    )
    forecaster.boosters["cpu_15m_coarse"] = coarse
    forecaster.blend_weights["cpu_15m"] = {COARSE: 1.0}
    expected = coarse.predict(
        xgb.DMatrix(relative[:, columns], feature_names=[names[i] for i in columns])
    )
    np.testing.assert_allclose(
        forecaster.predict_changes(feature_matrix(features, names))["cpu_15m"], expected, rtol=1e-6
    )
    assert COARSE not in MEMBERS and COMPACT not in MEMBERS and SEASONAL_HUBER in MEMBERS


def test_report_structure_and_metric_definitions():
    report = evaluate_forecast(make_metrics(), ["5m", "15m"], 0.7, params=FAST)
    assert report["data"]["step_seconds"] == 300 and report["data"]["nodes"] == 3
    for resource in ("cpu", "memory"):
        for horizon in ("5m", "15m"):
            entry = report[resource][horizon]
            for method in ("model", "persistence", "seasonal_naive"):
                assert set(entry[method]) == {"mae", "rmse", "accuracy", "p90_abs_error", "skill"}
            assert entry["persistence"]["skill"] == 0.0
            assert entry["skill"] == entry["model"]["skill"]
            assert entry["rows"] > 0
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 4.0])
    assert m.mae(actual, predicted) == pytest.approx(0.375)
    assert m.rmse(actual, predicted) == pytest.approx(np.sqrt(1.25 / 4))
    assert m.accuracy(actual, predicted) == pytest.approx(1 - 1.5 / 10)
    assert m.p90_abs_error(actual, predicted) == pytest.approx(np.quantile([0.5, 0, 1, 0], 0.9))
    assert m.skill(0.3, 0.4) == pytest.approx(0.25)
    assert np.isnan(m.skill(0.3, 0.0))


def test_too_short_histories_fail_clearly():
    with pytest.raises(MlschedError, match="one day"):
        evaluate_forecast(make_metrics(days=0.9), ["15m"], 0.7, params=FAST)
    with pytest.raises(MlschedError, match="no node has two samples"):
        evaluate_forecast(make_metrics(days=1).groupby(NODE).head(1), ["15m"], 0.7, params=FAST)
    with pytest.raises(MlschedError, match="train fraction"):
        evaluate_forecast(make_metrics(), ["15m"], 1.5, params=FAST)


def test_boosters_use_every_available_cpu_unless_told_otherwise():
    assert ForecastParams().n_jobs == 0
    assert boosting_threads(0) == available_cpus() >= 1
    assert boosting_threads(3) == 3
    metrics = make_metrics()
    one = run_forecast_experiment(metrics, ["15m"], 0.7, params=replace(FAST, n_jobs=1))
    every = run_forecast_experiment(metrics, ["15m"], 0.7, params=FAST)
    config = json.loads(every.forecaster.boosters["cpu_15m_p90"].save_config())
    assert int(config["learner"]["generic_param"]["nthread"]) == available_cpus()
    # the thread count changes how fast, not what is learned
    assert one.report["cpu"]["15m"]["skill"] == pytest.approx(every.report["cpu"]["15m"]["skill"])
