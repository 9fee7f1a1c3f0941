"""The fixed reference model of issue 16 (its specification and features, checked by hand) and
the split-conformal offset of the forecaster's P90."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts import NODE
from components.forecast.model import conformal_offset
from components.forecast.reference import (
    REFERENCE_LAGS,
    REFERENCE_PARAMS,
    REFERENCE_TREES,
    REFERENCE_WINDOWS,
    reference_feature_names,
    reference_features,
)

STEP = 300
NS = 1_000_000_000


def test_reference_is_the_specified_model():
    assert REFERENCE_LAGS == (1, 2, 3, 6, 12, 24, 48)
    assert REFERENCE_WINDOWS == (3, 6, 12, 36, 72, 288)
    assert REFERENCE_TREES == 300
    assert REFERENCE_PARAMS["objective"] == "reg:absoluteerror"
    assert REFERENCE_PARAMS["max_depth"] == 5 and REFERENCE_PARAMS["learning_rate"] == 0.05
    assert REFERENCE_PARAMS["subsample"] == 0.8 and REFERENCE_PARAMS["colsample_bytree"] == 0.8
    assert len(reference_feature_names()) == 1 + 7 + 2 * 6 + 1 + 2


def test_reference_features_by_hand_at_the_trace_step():
    """Two nodes on a 5-minute grid, one with a missing scrape: lags read NaN across the gap,
    windows cover the samples present, yesterday is 288 steps back."""
    rng = np.random.default_rng(0)
    steps = 400
    start = pd.Timestamp("2026-01-05T00:00:00Z").value
    frames = []
    for node in ("a", "b"):
        position = np.arange(steps)
        if node == "b":
            position = np.delete(position, 350)
        frames.append(
            pd.DataFrame(
                {
                    "t": start + position * STEP * NS,
                    NODE: node,
                    "v": rng.uniform(0, 1, len(position)),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    nanos, nodes, level = frame["t"].to_numpy(), frame[NODE].to_numpy(), frame["v"].to_numpy()
    matrix = reference_features(nanos, nodes, level, STEP)
    names = reference_feature_names()
    column = {name: matrix[:, i].astype(np.float64) for i, name in enumerate(names)}
    b = frame[NODE] == "b"
    grid = pd.Series(np.nan, index=range(steps))
    grid[(frame.loc[b, "t"].to_numpy() - start) // (STEP * NS)] = frame.loc[b, "v"].to_numpy()
    for row_position in (351, 360, 399):  # grid positions of node b, after the gap
        row = np.flatnonzero(
            b.to_numpy() & (frame["t"].to_numpy() == start + row_position * STEP * NS)
        )[0]
        now = grid[row_position]
        for k in REFERENCE_LAGS:
            expected = now - grid.get(row_position - k, np.nan)
            got = column[f"diff_lag_{k}"][row]
            assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(
                expected, abs=1e-6
            )
        for w in REFERENCE_WINDOWS:
            window = grid[max(0, row_position - w + 1) : row_position + 1].dropna()
            assert column[f"mean_{w}_minus_now"][row] == pytest.approx(
                window.mean() - now, abs=1e-5
            )
            assert column[f"std_{w}"][row] == pytest.approx(window.std(ddof=0), abs=1e-5)
        assert column["yesterday_minus_now"][row] == pytest.approx(
            grid[row_position - 288] - now, abs=1e-6
        )
        hour = (row_position * STEP % 86_400) / 3600
        assert column["hour_sin"][row] == pytest.approx(np.sin(2 * np.pi * hour / 24), abs=1e-6)
        assert column["hour_cos"][row] == pytest.approx(np.cos(2 * np.pi * hour / 24), abs=1e-6)
        assert column["level"][row] == pytest.approx(now)
    assert np.isnan(column["diff_lag_1"][b.to_numpy()][350])  # the row after the missing scrape


def test_conformal_offset_covers_exchangeable_rows():
    rng = np.random.default_rng(1)
    actual = rng.standard_t(3, 40_000)
    biased_upper = np.full_like(actual, 0.2)  # a badly placed P90: covers far less than 0.9
    offset = conformal_offset(actual[:20_000], biased_upper[:20_000], 0.9)
    coverage = np.mean(actual[20_000:] <= biased_upper[20_000:] + offset)
    assert abs(coverage - 0.9) < 0.01
    assert conformal_offset(np.array([]), np.array([]), 0.9) == 0.0
