"""Drift check: PSI and KS statistics, the window split, the config file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.drift import (
    DEFAULT_CONFIG,
    DriftConfig,
    detect_drift,
    ks_statistic,
    load_drift_config,
    population_stability_index,
    write_drift_report,
)
from components.errors import MlschedError

START = pd.Timestamp("2026-01-01T00:00:00Z")


def _metrics(days: int = 4, shift_last_day: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(START, periods=days * 288, freq="5min")
    frames = []
    for node in ("n1", "n2", "n3"):
        cpu = np.clip(rng.normal(0.4, 0.08, len(stamps)), 0, 1.5)
        last_day = stamps > stamps[-1] - pd.Timedelta(days=1)
        cpu[last_day] = np.clip(cpu[last_day] + shift_last_day, 0, 1.5)
        memory = np.clip(rng.normal(0.5, 0.05, len(stamps)), 0, 1.5)
        frames.append(
            pd.DataFrame(
                {TIMESTAMP: stamps, NODE: node, CPU_UTILIZATION: cpu, MEMORY_UTILIZATION: memory}
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_psi_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 20_000)
    assert population_stability_index(reference, rng.normal(0, 1, 5_000)) < 0.02
    small = population_stability_index(reference, rng.normal(0.2, 1, 5_000))
    large = population_stability_index(reference, rng.normal(1.0, 1, 5_000))
    assert 0.02 < small < large and large > 0.5


def test_ks_statistic_matches_the_cdf_gap():
    assert ks_statistic(np.arange(100.0), np.arange(100.0)) == 0.0
    assert ks_statistic(np.zeros(50), np.ones(50)) == 1.0


def test_psi_handles_constant_reference_without_infinities():
    value = population_stability_index(np.full(1000, 0.3), np.full(200, 0.9))
    assert np.isfinite(value) and value > 1


def test_no_drift_on_stationary_data():
    report = detect_drift(_metrics(), load_drift_config())
    assert not report.drifted
    assert [f.feature for f in report.features] == [CPU_UTILIZATION, MEMORY_UTILIZATION]
    assert "pod_count" in report.skipped
    assert report.current_rows == 3 * 288 and report.reference_rows == 3 * 3 * 288


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_a_shifted_last_day_drifts_on_that_feature_only(method):
    report = detect_drift(_metrics(shift_last_day=0.15), DriftConfig(method=method))
    assert report.drifted
    assert report.drifted_features == [CPU_UTILIZATION]
    assert report.to_dict()["drifted_features"] == [CPU_UTILIZATION]
    assert "DRIFT" in report.summary()


def test_min_drifted_features_raises_the_bar():
    config = DriftConfig(min_drifted_features=2)
    assert not detect_drift(_metrics(shift_last_day=0.15), config).drifted


def test_too_short_history_is_an_error_naming_the_window():
    with pytest.raises(MlschedError, match="training window holds 0 rows"):
        detect_drift(_metrics(days=1), DriftConfig())


def test_absent_features_are_an_error():
    with pytest.raises(MlschedError, match="none of the features"):
        detect_drift(_metrics(), DriftConfig(features=("gpu_utilization",)))


def test_shipped_config_loads_and_bad_configs_name_the_key(tmp_path):
    config = load_drift_config()
    assert DEFAULT_CONFIG.is_file() and config.method == "psi"
    assert config.recent_window_seconds == 86_400
    bad = tmp_path / "drift.yaml"
    bad.write_text("method: chi2\n")
    with pytest.raises(MlschedError, match="method must be one of"):
        load_drift_config(bad)
    bad.write_text("psi:\n  threshold: -1\n")
    with pytest.raises(MlschedError, match="psi.threshold"):
        load_drift_config(bad)
    bad.write_text("treshold: 1\n")
    with pytest.raises(MlschedError, match="unknown key"):
        load_drift_config(bad)


def test_report_is_written_atomically(tmp_path):
    report = detect_drift(_metrics(), DriftConfig())
    path = write_drift_report(report, tmp_path / "out" / "drift.json")
    assert path.is_file() and not list(path.parent.glob(".*"))


def test_psi_is_nan_when_a_side_has_no_values():
    assert np.isnan(population_stability_index(np.array([np.nan, np.inf]), np.ones(10)))
    assert np.isnan(population_stability_index(np.ones(10), np.array([])))


def test_the_extender_drift_gauge_equals_the_retraining_trigger_on_the_same_data():
    from scheduler_client.api import NodeAllocatable
    from scheduler_client.inventory import NodeInventory
    from scheduler_client.metrics import ExtenderMetrics
    from scheduler_client.predictions import PredictionCache

    # Utilisation on a 5 % grid, so many values sit exactly on a quantile edge: the side a tie
    # falls on changes the value.
    rng = np.random.default_rng(3)
    nodes = [f"n{i}" for i in range(300)]
    history = _metrics(days=2)
    recent = history[TIMESTAMP] > history[TIMESTAMP].max() - pd.Timedelta(days=1)
    reference = history.loc[~recent].reset_index(drop=True)
    now = history[TIMESTAMP].max() + pd.Timedelta(minutes=5)
    reference[CPU_UTILIZATION] = np.round(rng.normal(0.4, 0.1, len(reference)) * 20) / 20
    current = pd.DataFrame(
        {
            TIMESTAMP: now,
            NODE: nodes,
            CPU_UTILIZATION: np.round(rng.normal(0.45, 0.1, len(nodes)) * 20) / 20,
            MEMORY_UTILIZATION: rng.normal(0.5, 0.05, len(nodes)),
        }
    )
    config = DriftConfig(recent_window_seconds=60, min_rows=10)
    trigger = detect_drift(pd.concat([reference, current], ignore_index=True), config)

    inventory = NodeInventory([NodeAllocatable(node, 8.0, 2**35, 0) for node in nodes])
    snapshot = current.set_index(NODE)
    cache = PredictionCache(
        inventory, lambda names: snapshot.loc[list(names)], None, reference=reference
    )
    metrics = ExtenderMetrics()
    metrics.watch(cache, [])
    assert cache.refresh()
    for feature in trigger.features:
        gauge = metrics.registry.get_sample_value(
            "mlsched_extender_feature_drift_psi", {"feature": feature.feature}
        )
        assert gauge == pytest.approx(feature.psi, rel=1e-12) and feature.psi > 0.01
