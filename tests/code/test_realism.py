"""The realism statistics on series whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from components.generate.realism import (
    autocorrelation,
    cycle_shares,
    find_bursts,
    node_grid,
    realism_statistics,
)

START = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday
STEP = 300


def _frame(series: dict[str, np.ndarray], step: int = STEP) -> pd.DataFrame:
    rows = []
    for node, values in series.items():
        stamps = START + pd.to_timedelta(np.arange(len(values)) * step, unit="s")
        rows.append(pd.DataFrame({"timestamp": stamps, "node": node, "cpu_utilization": values}))
    return pd.concat(rows, ignore_index=True).assign(memory_utilization=0.3)


def test_grid_averages_finer_samples_into_five_minute_bins_and_leaves_gaps_missing():
    values = np.arange(40, dtype=float)
    frame = _frame({"a": values}, step=30).drop(index=range(20, 30))
    grid = node_grid(frame, "cpu_utilization")
    assert grid.values.shape == (1, 4)
    assert grid.values[0, 0] == pytest.approx(values[:10].mean())
    assert np.isnan(grid.values[0, 2])


def test_autocorrelation_of_an_ar1_matches_its_coefficient():
    rng = np.random.default_rng(0)
    phi, n = 0.9, 20_000
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.standard_normal()
    grid = node_grid(_frame({"a": x}), "cpu_utilization")
    assert autocorrelation(grid, 300)[0] == pytest.approx(0.9, abs=0.02)
    assert autocorrelation(grid, 900)[0] == pytest.approx(0.9**3, abs=0.03)


def test_daily_share_finds_a_daily_cycle_and_not_a_persistent_acyclic_series():
    rng = np.random.default_rng(1)
    steps = 28 * 288
    hours = np.arange(steps) * STEP / 3600
    daily = np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, steps)
    walk = np.repeat(rng.normal(0, 1, steps // 36), 36)  # 3-hour levels, no cycle
    shares = cycle_shares(node_grid(_frame({"daily": daily, "walk": walk}), "cpu_utilization"))
    # A sine of amplitude 1 has variance 0.5 of a total 1.5.
    assert shares["daily"][0] == pytest.approx(1 / 3, abs=0.05)
    assert abs(shares["daily"][1]) < 0.05
    assert abs(shares["weekly"][0]) < 0.05


def test_weekly_share_finds_quiet_weekends():
    rng = np.random.default_rng(2)
    steps = 28 * 288
    day = np.arange(steps) * STEP // 86_400
    weekend = ((day % 7) >= 5).astype(float)
    shares = cycle_shares(
        node_grid(_frame({"a": weekend + rng.normal(0, 0.3, steps)}), "cpu_utilization")
    )
    assert shares["weekly"][0] > 0.5
    assert shares["between_days"][0] > 0.5


def test_bursts_are_found_with_their_duration_and_size():
    values = np.full(4 * 288, 0.1)
    values[300:306] += 0.4  # 30 minutes
    values[700:724] += 0.2  # 2 hours
    bursts = find_bursts(node_grid(_frame({"a": values}), "cpu_utilization"))
    assert sorted(bursts.duration_seconds / 60) == [30, 120]
    assert sorted(np.round(bursts.size, 6)) == [0.2, 0.4]
    assert bursts.node_days == pytest.approx(4)


def test_summary_reports_node_means_and_skips_a_resource_that_never_moves():
    rng = np.random.default_rng(3)
    series = {f"n{i}": level + rng.normal(0, 0.01, 3 * 288) for i, level in enumerate([0.02, 0.5])}
    frame = _frame(series)
    stats = realism_statistics(frame, "cpu_utilization")
    assert stats["nodes"] == 2
    assert stats["idle_node_share"] == 0.5
    assert stats["node_mean_p50"] == pytest.approx(0.26, abs=0.01)
    assert realism_statistics(frame, "memory_utilization") == {}
