"""``collect_node_metrics`` against a real Prometheus holding a small generated cluster."""

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from components.collect import FetchSettings, collect_node_metrics, load_collect_config
from components.collect.cli import add_collect_parser
from components.collect.config import parse_collect_config
from components.contracts import read_node_metrics
from components.errors import MlschedError
from components.harness.stack import stack_up
from tests.integration.conftest import HISTORY_END as END
from tests.integration.conftest import HISTORY_NODES as NODES
from tests.integration.conftest import HISTORY_STEP_SECONDS as STEP

pytestmark = pytest.mark.integration

START = END - pd.Timedelta(days=1)
WINDOW = 120  # the automatic $window at a 30 s step


@pytest.fixture(scope="module")
def full(served_history, tmp_path_factory):
    """One collection of the whole day, shared by the tests that only read it."""
    _, stack = served_history
    output = tmp_path_factory.mktemp("full") / "node_metrics"
    report = collect_node_metrics(stack.prometheus_url, START, END, STEP, output, progress=False)
    return report, read_node_metrics(output)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _on_grid(generated: pd.DataFrame, column: str) -> pd.DataFrame:
    """Generated values as a (timestamp x node) grid with NaN for missing scrapes."""
    grid = pd.date_range(START, END, freq=f"{STEP}s")
    return generated.pivot(index="timestamp", columns="node", values=column).reindex(grid)


def _rate_semantics(rows: pd.DataFrame, at: pd.Timestamp) -> float | None:
    """``1 - rate(idle[2m])`` at ``at`` as Prometheus 2.42 extrapolates it.

    Its range selectors include the window's left edge, so a gap-free 2m window holds 5 scrapes.
    """
    window = rows[(rows["timestamp"] >= at - pd.Timedelta(seconds=WINDOW))]
    window = window[window["timestamp"] <= at]
    if len(window) < 2:
        return None
    seconds = window["timestamp"].astype("int64").to_numpy() / 1e9
    weights = np.diff(seconds)
    mean = float(np.sum(window["cpu_utilization"].to_numpy()[1:] * weights) / weights.sum())
    sampled = seconds[-1] - seconds[0]
    average = sampled / (len(seconds) - 1)
    extrapolated = sampled
    for edge in (seconds[0] - (at.timestamp() - WINDOW), at.timestamp() - seconds[-1]):
        extrapolated += edge if edge < 1.1 * average else average / 2
    return 1 - (1 - mean) * extrapolated / WINDOW


def test_collected_values_match_the_generated_history(served_history, full):
    dataset, _ = served_history
    report, collected = full
    generated = read_node_metrics(dataset.node_metrics)
    assert report.rows_added == report.rows_total == len(collected) > 0.95 * NODES * 2880
    assert report.nodes == tuple(sorted(generated["node"].unique()))
    assert set(report.series.values()) == {NODES}
    assert report.warnings == ()
    assert {"cpu_requested_ratio", "memory_requested_ratio", "pod_count"} <= set(collected)
    assert collected.duplicated(["node", "timestamp"]).sum() == 0

    # Memory is a gauge: the value at t is the scrape at t, and a missed scrape stays missing
    # (the query drops samples older than one step; Prometheus would look back 5 minutes and
    # repeat the previous value).
    memory = _on_grid(generated, "memory_utilization")
    got = collected.pivot(index="timestamp", columns="node", values="memory_utilization")
    expected = memory.reindex(got.index)[got.columns]
    assert np.nanmax(np.abs(got.to_numpy() - expected.to_numpy())) < 1e-6
    missed = expected.isna().to_numpy()
    assert missed.sum() > 0 and got.notna().to_numpy()[missed].sum() == 0

    # CPU is 1 - rate(idle[2m]): with the five scrapes of the window [t - 2m, t] present, the
    # interval-weighted mean over its four intervals, i.e. the plain mean of the last four values.
    cpu = _on_grid(generated, "cpu_utilization")
    complete = cpu.notna().rolling(5).sum() == 5
    mean = cpu.rolling(4).mean()
    got = collected.pivot(index="timestamp", columns="node", values="cpu_utilization")
    complete, mean = complete.reindex(got.index)[got.columns], mean.reindex(got.index)[got.columns]
    gaps = np.abs(got.to_numpy() - mean.to_numpy())[complete.to_numpy()]
    assert len(gaps) > 0.9 * NODES * 2880
    assert gaps.max() < 0.01, "more than 1 percentage point off the generated utilisation"

    # Windows with missing scrapes follow rate()'s extrapolation.
    incomplete = got.where(~complete).stack()
    assert len(incomplete) > 0
    for (at, node), value in incomplete.items():
        expected_value = _rate_semantics(generated[generated["node"] == node], at)
        if expected_value is not None:
            assert value == pytest.approx(max(expected_value, 0.0), abs=0.01)


def test_requested_ratios_at_a_coarser_resolution_equal_the_full_resolution_query(
    served_history, full
):
    _, stack = served_history
    _, collected = full
    spec = next(q for q in load_collect_config().queries if q.column == "cpu_requested_ratio")
    assert spec.hold_steps(STEP) == 4
    at = END - pd.Timedelta(hours=3)
    response = requests.get(
        f"{stack.prometheus_url}/api/v1/query_range",
        params={
            "query": spec.promql,
            "start": (at - pd.Timedelta(hours=1)).timestamp(),
            "end": at.timestamp(),
            "step": STEP,
        },
        timeout=30,
    ).json()
    served_values = {
        (result["metric"]["node"], pd.Timestamp(float(stamp), unit="s", tz="UTC")): float(value)
        for result in response["data"]["result"]
        for stamp, value in result["values"]
    }
    rows = collected.set_index(["node", "timestamp"])["cpu_requested_ratio"]
    pairs = [(rows[key], value) for key, value in served_values.items() if key in rows.index]
    assert len(pairs) > NODES * 100
    # At multiples of 2m the coarse query is the full-resolution one; in between it holds the
    # value, which differs only while a pod's series starts between two 2m points.
    coarse = [
        (rows[key], value)
        for key, value in served_values.items()
        if key in rows.index and key[1].timestamp() % 120 == 0
    ]
    assert coarse and all(got == pytest.approx(value) for got, value in coarse)
    same = sum(got == pytest.approx(value) for got, value in pairs)
    assert same > 0.9 * len(pairs)
    for node, group in collected.groupby("node"):
        seconds = group["timestamp"].astype("int64").to_numpy() // 10**9
        values = group["cpu_requested_ratio"].to_numpy()
        held = pd.Series(values, index=seconds)
        anchors = seconds // 120 * 120
        present = np.isin(anchors, seconds)
        assert np.array_equal(
            values[present], held.loc[anchors[present]].to_numpy(), equal_nan=True
        ), node


def test_reruns_fetch_only_what_is_missing(served_history, full, tmp_path):
    _, stack = served_history
    _, everything = full
    output = tmp_path / "node_metrics"
    url = stack.prometheus_url
    middle = END - pd.Timedelta(hours=6)

    first = collect_node_metrics(url, START, middle, STEP, output, progress=False)
    assert first.rows_added > 0
    assert read_node_metrics(output)["timestamp"].max() <= middle

    later = collect_node_metrics(url, START, END, STEP, output, progress=False)
    assert [(a, b) for a, b in later.fetched] == [(middle + pd.Timedelta(seconds=STEP), END)]
    added = read_node_metrics(output)
    assert later.rows_added == len(added) - first.rows_added
    assert later.rows_added == (everything["timestamp"] > middle).sum()
    pd.testing.assert_frame_equal(added, everything)

    # Coverage ends at the last sample held; the grid points after it are asked again (data may
    # still arrive there), and the run adds nothing.
    last = everything["timestamp"].max()
    tail = () if last == END else ((last + pd.Timedelta(seconds=STEP), END),)
    before = _snapshot(output)
    again = collect_node_metrics(url, START, END, STEP, output, progress=False)
    assert again.rows_added == 0 and again.fetched == tail
    assert (again.requests == 0) == (not tail)
    assert {k: v for k, v in _snapshot(output).items() if not k.startswith("_")} == {
        k: v for k, v in before.items() if not k.startswith("_")
    }

    # An earlier start fetches only the part before what is there; the data holds no row there.
    earlier = collect_node_metrics(
        url, START - pd.Timedelta(hours=2), END, STEP, output, progress=False
    )
    before_start = (START - pd.Timedelta(hours=2), START - pd.Timedelta(seconds=30))
    assert earlier.fetched == (before_start, *tail)
    assert earlier.rows_added == 0
    assert "no series" in " ".join(earlier.warnings)
    data_files = {k: v for k, v in before.items() if not k.startswith("_")}
    assert {k: v for k, v in _snapshot(output).items() if not k.startswith("_")} == data_files
    assert (
        collect_node_metrics(
            url, START - pd.Timedelta(hours=2), END, STEP, output, progress=False
        ).fetched
        == tail
    )

    # Without the state file the data's own span counts as collected: still no duplicate.
    (output / "_collect_state.json").unlink()
    lost = collect_node_metrics(url, START, END, STEP, output, progress=False)
    assert lost.rows_added == 0 and lost.fetched == ((START, START), *tail)
    assert {k: v for k, v in _snapshot(output).items() if not k.startswith("_")} == data_files
    pd.testing.assert_frame_equal(read_node_metrics(output), everything)


def test_prometheus_stopped_mid_run_leaves_the_output_as_it_was(served_history, tmp_path):
    _, stack = served_history
    output = tmp_path / "node_metrics"
    url = stack.prometheus_url
    collect_node_metrics(url, START, END - pd.Timedelta(hours=12), STEP, output, progress=False)
    before = _snapshot(output)
    rows_before = len(read_node_metrics(output))

    # The tenth answer stops Prometheus before any other answer gets through, so the run has
    # many requests left and all of them meet a dead server.
    answered = 0
    stopped = threading.Event()
    gate = threading.Lock()

    def stop_after_some_answers(response, *args, **kwargs):
        nonlocal answered
        with gate:
            answered += 1
            if answered == 10:
                stack.prometheus.stop()
                stopped.set()
        return response

    client = PrometheusConnect(url=url, retry=Retry(total=0))
    client._session.hooks["response"].append(stop_after_some_answers)
    settings = FetchSettings(max_points=20, workers=2, attempts=3, backoff_seconds=0.05)
    try:
        with pytest.raises(MlschedError) as error:
            collect_node_metrics(
                client, START, END, STEP, output, settings=settings, progress=False
            )
        message = str(error.value)
        assert url in message and "after 3 attempt(s)" in message
        assert "query '" in message
        assert stopped.is_set()
        assert _snapshot(output) == before
        assert len(read_node_metrics(output)) == rows_before
        assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]
    finally:
        stack_up(stack)


def test_a_required_query_without_series_is_named(served_history, tmp_path):
    _, stack = served_history
    config = parse_collect_config(
        """
queries:
  cpu_utilization: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idel"}[$window]))
  memory_utilization: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
""",
        "typo.yaml",
    )
    with pytest.raises(MlschedError) as error:
        collect_node_metrics(
            stack.prometheus_url, START, END, STEP, tmp_path / "out", config, progress=False
        )
    message = str(error.value)
    assert "query 'cpu_utilization' returned no series" in message
    assert 'mode="idel"' in message and "typo.yaml" in message
    assert not (tmp_path / "out").exists()


def test_an_optional_query_without_series_warns_and_is_left_out(served_history, tmp_path):
    _, stack = served_history
    config = parse_collect_config(
        """
queries:
  cpu_utilization: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[$window]))
  memory_utilization: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
  gpu_utilization: avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) / 100
""",
        "gpu.yaml",
    )
    end = START + pd.Timedelta(hours=2)
    report = collect_node_metrics(
        stack.prometheus_url, START, end, STEP, tmp_path / "out", config, progress=False
    )
    assert report.rows_added > 0
    assert len(report.warnings) == 1
    assert "query 'gpu_utilization' returned no series" in report.warnings[0]
    assert "DCGM_FI_DEV_GPU_UTIL" in report.warnings[0]
    assert "gpu_utilization" not in read_node_metrics(tmp_path / "out")


@pytest.mark.parametrize(
    ("memory_query", "expected"),
    [
        (
            "{promql: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes, "
            "strip_port: false}",
            "have no name in common",
        ),
        (
            "{promql: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes, "
            "node_label: job}",
            "more than one series for node 'node-exporter'",
        ),
        (
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
            "is the query a percentage?",
        ),
        ("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes[", "rejected"),
    ],
)
def test_label_and_query_mistakes_are_explained(served_history, tmp_path, memory_query, expected):
    _, stack = served_history
    config = parse_collect_config(
        "queries:\n"
        '  cpu_utilization: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))\n'
        f"  memory_utilization: {memory_query}\n",
        "mine.yaml",
    )
    end = START + pd.Timedelta(hours=1)
    with pytest.raises(MlschedError, match=expected.replace("?", r"\?")):
        collect_node_metrics(
            stack.prometheus_url, START, end, STEP, tmp_path / "out", config, progress=False
        )
    assert not (tmp_path / "out").exists()


def test_command_line(served_history, tmp_path, capsys):
    import argparse

    _, stack = served_history
    parser = argparse.ArgumentParser(prog="mlsched")
    add_collect_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "collect",
            "--prometheus",
            stack.prometheus_url,
            "--start",
            START.isoformat(),
            "--end",
            (START + pd.Timedelta(hours=1)).isoformat(),
            "--output",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "rows added" in out and "series per query: cpu_utilization=4" in out
    assert len(read_node_metrics(tmp_path / "out")) > 0
