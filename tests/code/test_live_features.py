"""The live loop's incremental node history gives the online path's features, and the loop
outlives failed periods."""

from __future__ import annotations

import urllib.request

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.features import definitions as d
from components.features import live
from components.features.engineering import latest_node_features
from components.features.live import LoopStatus, NodeHistory, run_loop, serve_status_metrics

STEP = 600
END = 1_767_225_600  # 2026-01-01T00:00:00Z


def _history(days: float = 8.5, nodes: int = 5, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.arange(END - int(days * 86_400), END + 1, STEP)
    frames = []
    for index in range(nodes):
        keep = rng.random(len(seconds)) > 0.05  # missed scrapes
        if index == nodes - 1:
            keep &= seconds > END - 20 * 3600  # a node that joined 20 h ago
        stamps = seconds[keep]
        frame = pd.DataFrame(
            {
                TIMESTAMP: pd.to_datetime(stamps, unit="s", utc=True),
                NODE: f"node-{index}",
                CPU_UTILIZATION: rng.uniform(0, 1, len(stamps)),
                MEMORY_UTILIZATION: rng.uniform(0.2, 0.9, len(stamps)),
                d.POD_COUNT: rng.integers(0, 30, len(stamps)).astype(float),
                d.CPU_REQUESTED_RATIO: rng.uniform(0, 1, len(stamps)),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _fed(history: pd.DataFrame, until: int, chunk_seconds: int) -> NodeHistory:
    """A NodeHistory fed the way the loop feeds it: the recent span first, then period chunks."""
    state = NodeHistory(STEP)
    seconds = history[TIMESTAMP].astype("int64") // 1_000_000_000
    start = until - 30 * 3600
    state.add(history[(seconds >= start) & (seconds <= start + 26 * 3600)])
    at = start + 26 * 3600
    while at < until:
        state.add(history[(seconds > at) & (seconds <= min(until, at + chunk_seconds))])
        at += chunk_seconds
    return state


@pytest.mark.parametrize("until_hours", [0, 3.5])
def test_incremental_history_gives_the_online_path_features(until_hours):
    history = _history()
    until = END - int(until_hours * 3600)
    state = _fed(history, until, chunk_seconds=3 * STEP)
    seconds = history[TIMESTAMP].astype("int64") // 1_000_000_000
    ranges = state.far_lag_ranges()
    days_back = {(until - end) // 86_400 for _, end in ranges}
    assert days_back == {1, 2, 3, 4, 5, 6}  # the points 2 to 7 days back, each just under
    fetched = sum((end - start) // STEP + 1 for start, end in ranges)
    assert fetched <= 6 * 4 * 2  # 4 offsets a day, for at most 2 distinct latest samples

    def fetch(start, end, optional=False):
        return history[(seconds >= start) & (seconds <= end)]

    online = (
        state.latest_features(live.far_samples(fetch, ranges))
        .sort_values(NODE)
        .reset_index(drop=True)
    )
    expected = latest_node_features(
        history[seconds <= until], pd.Timestamp(until, unit="s", tz="UTC"), STEP
    )
    assert len(online) == len(expected) == 5
    pd.testing.assert_series_equal(online[NODE], expected[NODE])
    pd.testing.assert_series_equal(online[TIMESTAMP], expected[TIMESTAMP])
    for name in d.FEATURE_NAMES:
        np.testing.assert_allclose(
            online[name], expected[name], rtol=2e-6, atol=2e-6, equal_nan=True, err_msg=name
        )
    assert online["cpu_same_time_last_week"].notna().sum() >= 3
    assert online["cpu_change_next_30m_last_week"].notna().sum() >= 3
    assert all(online[name].dtype == np.float32 for name in d.FEATURE_NAMES)


def test_far_ranges_hold_only_the_points_the_fresh_nodes_read():
    state = NodeHistory(30)
    stale = END - 10 * 3600
    state.add(
        pd.DataFrame(
            {
                TIMESTAMP: pd.to_datetime([END, stale], unit="s", utc=True),
                NODE: ["fresh", "stale"],
                CPU_UTILIZATION: [0.5, 0.5],
                MEMORY_UTILIZATION: [0.5, 0.5],
            }
        )
    )
    # day D back: D days, and D days less 5, 15 and 30 minutes (the seasonal leads)
    offsets = [day * 86_400 - lead for day in range(2, 8) for lead in (0, 300, 900, 1800)]
    expected = sorted({latest - back for latest in (END, stale) for back in offsets})
    ranges = state.far_lag_ranges()
    assert all(start == end for start, end in ranges)  # no span between the points
    assert [start for start, _ in ranges] == expected
    assert [start for start, _ in state.far_lag_ranges(since=stale)] == sorted(
        END - back for back in offsets
    )
    assert state.far_lag_ranges(since=END) == []


def test_week_lag_is_nan_without_the_far_samples():
    state = _fed(_history(), END, chunk_seconds=STEP)
    assert state.latest_features()["cpu_same_time_last_week"].isna().all()


def _run_on_a_stepping_clock(fetch, write, clock: dict, periods: int):
    """The loop with a clock that each sleep moves on by one step."""

    def sleep(delay: float) -> None:
        clock["now"] += STEP

    return run_loop(
        NodeHistory(STEP),
        fetch,
        write,
        STEP,
        clock=lambda: clock["now"],
        sleep=sleep,
        periods=periods,
    )


def test_loop_survives_failed_periods_and_resumes_where_history_ends():
    history = _history(days=1.5, nodes=3)
    seconds = history[TIMESTAMP].astype("int64") // 1_000_000_000
    clock = {"now": float(END - 4 * STEP)}
    asked: list[tuple[int, int]] = []
    written: list[pd.DataFrame] = []

    def fetch(start: int, end: int, optional: bool = False) -> pd.DataFrame:
        asked.append((start, end))
        if len(asked) == 2:
            raise TimeoutError("Prometheus did not answer in 5 s")
        return history[(seconds >= start) & (seconds <= end)]

    status = _run_on_a_stepping_clock(
        fetch, lambda frame: written.append(frame) or len(frame), clock, periods=5
    )
    assert status.failures == 1 and status.periods == 5
    assert asked[2][0] == asked[0][1]  # the failed period's steps are asked again
    assert status.last_sample_seconds == END
    last = pd.concat(written)
    assert (last.groupby(NODE)[TIMESTAMP].max() == pd.Timestamp(END, unit="s", tz="UTC")).all()


def test_status_metrics_endpoint_reports_lag_and_failures(free_ports):
    status = LoopStatus(periods=4, failures=1, last_sample_seconds=END, lag_seconds=3.5)
    (port,) = free_ports()
    server = serve_status_metrics(lambda: status, port, "127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
    text = text.decode()
    assert "mlsched_node_state_lag_seconds 3.5" in text
    assert "mlsched_node_state_failures_total 1.0" in text
    assert "mlsched_node_state_last_sample_timestamp_seconds 1.7672256e+09" in text


def test_a_rejected_sample_costs_a_gap_not_a_stuck_loop():
    history = _history(days=1.5, nodes=2)
    seconds = history[TIMESTAMP].astype("int64") // 1_000_000_000
    bad = END - 30 * STEP  # a step whose sample every query over it rejects
    clock = {"now": float(bad - 2 * STEP)}

    def fetch(start: int, end: int, optional: bool = False) -> pd.DataFrame:
        if start <= bad <= end:
            raise ValueError(f"a utilisation of -0.2 at {bad}")
        return history[(seconds >= start) & (seconds <= end)]

    status = _run_on_a_stepping_clock(
        fetch, lambda frame: len(frame), clock, periods=live.CATCH_UP_SECONDS // STEP + 6
    )
    assert 0 < status.failures <= live.CATCH_UP_SECONDS // STEP + 1
    assert status.last_sample_seconds > bad
