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
