"""Units of the Prometheus collection: config loading, chunking, node naming, coverage, parsing."""

import argparse
import json

import numpy as np
import pytest

from components.collect.cli import add_collect_parser, cmd_collect
from components.collect.config import (
    REQUIRED_COLUMNS,
    QuerySpec,
    default_config_text,
    load_collect_config,
    parse_collect_config,
)
from components.collect.prometheus_range import (
    MAX_POINTS_PER_SERIES,
    FetchSettings,
    chunk_range,
    node_name,
    parse_matrix,
    plan_tasks,
)
from components.collect.state import merge_intervals, missing_ranges
from components.errors import MlschedError

MINIMAL = """
queries:
  cpu_utilization: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[$window]))
  memory_utilization: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
"""


# --------------------------------------------------------------------------- config


def test_default_config_loads_with_required_columns_first():
    config = load_collect_config()
    columns = [q.column for q in config.queries]
    assert columns[:2] == list(REQUIRED_COLUMNS)
    assert {"cpu_requested_ratio", "memory_requested_ratio", "pod_count"} <= set(columns)
    assert all(q.required for q in config.queries[:2])
    assert not any(q.required for q in config.queries[2:])
    assert config.queries[0].node_labels == ("node", "instance")
    assert config.source.endswith("queries.yaml")
    assert "cpu_utilization" in default_config_text()


def test_window_is_automatic_unless_set():
    config = load_collect_config()
    # The step and at least four scrapes (30 s unless Prometheus or the config says otherwise).
    assert config.window_for(30) == 120
    assert config.window_for(60) == 120
    assert config.window_for(300) == 300  # a 5-minute step reads exactly its 5 minutes
    assert config.window_for(30, 15) == 60 and config.window_for(300, 60) == 300
    assert config.window_for(60, 60) == 240
    paced = parse_collect_config(MINIMAL + "scrape_interval: 1m\n", "q.yaml")
    assert paced.window_for(60) == 240 and paced.window_for(60, 15) == 60
    assert config.with_window(None, 60).window_for(30) == 240
    cpu = config.queries[0]
    assert "[2m]" in cpu.render(config.window_for(30), 30)
    assert "$" not in cpu.render(300, 30)
    memory = next(q for q in config.queries if q.column == "memory_utilization")
    assert "[29s]" in memory.render(120, 30) and "[299s]" in memory.render(1200, 300)
    fixed = parse_collect_config(MINIMAL + "window: 5m\n", "q.yaml")
    assert fixed.window_for(30) == 300
    assert config.with_window(600).window_for(30) == 600


def test_per_query_node_label_and_strip_port_override_the_defaults():
    config = parse_collect_config(
        MINIMAL
        + """
  pods:
    promql: count by (host) (up)
    node_label: host
    strip_port: false
node_label: [kubernetes_node, instance]
""",
        "q.yaml",
    )
    by_column = {q.column: q for q in config.queries}
    assert by_column["pods"].node_labels == ("host",)
    assert by_column["pods"].strip_port is False
    assert by_column["cpu_utilization"].node_labels == ("kubernetes_node", "instance")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queries: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping with a 'queries' key"),
        (MINIMAL + "nodelabel: node\n", "nodelabel: unknown key"),
        (MINIMAL + "  pods:\n    promq: up\n", "queries.pods.promq: unknown key"),
        (MINIMAL + "  pods:\n    required: true\n", "queries.pods.promql: missing"),
        (MINIMAL + "  pods: {promql: '   '}\n", "queries.pods.promql: expected a non-empty"),
        (MINIMAL + "  pods: {promql: up, required: yes please}\n", "queries.pods.required"),
        (MINIMAL + "  pods: rate(x[$__rate_interval])\n", "unknown placeholder $__rate_interval"),
        (MINIMAL + "  bad-name: up\n", "queries.bad-name: column names"),
        (MINIMAL + "  timestamp: up\n", "queries.timestamp: 'timestamp' is not a metric column"),
        (MINIMAL + "  pods: {promql: up, node_label: 3}\n", "queries.pods.node_label"),
        (MINIMAL + "node_label: []\n", "node_label: expected a label name"),
        (MINIMAL + "window: soon\n", "window: cannot read 'soon'"),
        (MINIMAL + "scrape_interval: often\n", "scrape_interval: cannot read 'often'"),
        (MINIMAL + "node_addresses: [a]\n", "node_addresses: expected a metric name"),
        (MINIMAL + "strip_port: 1\n", "strip_port: expected true or false"),
        ("queries:\n  cpu_utilization: up\n", "queries: missing memory_utilization"),
        ("queries: {}\n", "queries: expected a mapping"),
        (
            MINIMAL.replace(
                "cpu_utilization: 1", "cpu_utilization:\n    required: false\n    promql: 1"
            ),
            "queries.cpu_utilization.required: must be true",
        ),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path, text, expected):
    path = tmp_path / "my-queries.yaml"
    path.write_text(text)
    with pytest.raises(MlschedError) as error:
        load_collect_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(MlschedError, match="nowhere.yaml: no such config file"):
        load_collect_config(tmp_path / "nowhere.yaml")


# --------------------------------------------------------------------------- chunking


def test_chunks_cover_the_range_once_and_stay_under_the_point_limit():
    step = 30
    start = 1_764_633_600
    end = start + 30 * 86_400
    chunks = chunk_range(start, end, step, MAX_POINTS_PER_SERIES)
    assert chunks[0][0] == start and chunks[-1][1] == end
    points = [(hi - lo) // step + 1 for lo, hi in chunks]
    assert max(points) <= MAX_POINTS_PER_SERIES
    assert sum(points) == (end - start) // step + 1
    for (_, previous_end), (next_start, _) in zip(chunks, chunks[1:], strict=False):
        assert next_start == previous_end + step


@pytest.mark.parametrize(
    ("start", "end", "max_points", "expected"),
    [
        (0, 0, 5, [(0, 0)]),
        (0, 120, 5, [(0, 120)]),
        (0, 150, 5, [(0, 120), (150, 150)]),
        (60, 300, 2, [(60, 90), (120, 150), (180, 210), (240, 270), (300, 300)]),
    ],
)
def test_chunk_edges(start, end, max_points, expected):
    assert chunk_range(start, end, 30, max_points) == expected


def test_chunk_range_rejects_nonsense():
    with pytest.raises(ValueError):
        chunk_range(100, 0, 30, 10)
    with pytest.raises(ValueError):
        chunk_range(0, 100, 0, 10)


def _grid_points(tasks, step):
    return [t for task in tasks for t in range(task.start, task.end + 1, step)]


@pytest.mark.parametrize(
    ("resolution", "chunk", "start", "end"),
    [
        (None, None, 0, 30 * 86_400),
        (None, 86_400, 90, 3 * 86_400 + 30),
        (120, 86_400, 30, 3 * 86_400 + 90),
        (120, None, 30, 30 * 86_400),
        (45, 3_600, 60, 7_200),
    ],
)
def test_planned_requests_fetch_every_grid_point_once(resolution, chunk, start, end):
    step = 30
    query = QuerySpec("x", "up", resolution_seconds=resolution, chunk_seconds=chunk)
    tasks = plan_tasks(query, "up", start, end, step, MAX_POINTS_PER_SERIES)
    assert _grid_points(tasks, step) == list(range(start, end + 1, step))
    for task in tasks:
        assert task.points <= MAX_POINTS_PER_SERIES
        assert task.query_step == step * query.hold_steps(step)
        assert task.query_start % task.query_step == 0
        assert task.query_start <= task.start < task.query_start + task.query_step
        if chunk is not None:
            assert task.query_end - task.query_start < chunk
    left, right = tasks[0].split()
    assert _grid_points([left, right], step) == _grid_points(tasks[:1], step)
    assert left.points + right.points == tasks[0].points


def test_held_values_spread_over_the_grid_points_of_the_task():
    query = QuerySpec("x", "up", resolution_seconds=120)
    [task] = plan_tasks(query, "up", 150, 420, 30, MAX_POINTS_PER_SERIES)
    assert (task.query_start, task.query_end, task.query_step) == (120, 360, 120)
    seconds, values = task.spread(np.array([120, 360]), np.array([1.0, 2.0]))
    assert seconds.tolist() == [150, 180, 210, 360, 390, 420]
    assert values.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_fetch_settings_are_checked():
    with pytest.raises(MlschedError, match="points per request"):
        FetchSettings(max_points=MAX_POINTS_PER_SERIES + 1)
    with pytest.raises(MlschedError, match="workers"):
        FetchSettings(workers=0)
    with pytest.raises(MlschedError, match="attempts"):
        FetchSettings(attempts=0)


# --------------------------------------------------------------------------- node names


@pytest.mark.parametrize(
    ("labels", "node_labels", "strip_port", "expected"),
    [
        ({"instance": "node-01:9100"}, ("node", "instance"), True, "node-01"),
        ({"node": "node-02", "instance": "ksm:8080"}, ("node", "instance"), True, "node-02"),
        ({"node": "", "instance": "node-03:9100"}, ("node", "instance"), True, "node-03"),
        ({"instance": "10.0.0.7:9100"}, ("instance",), True, "10.0.0.7"),
        ({"instance": "node-04:9100"}, ("instance",), False, "node-04:9100"),
        ({"instance": "node-05"}, ("instance",), True, "node-05"),
        ({"job": "x"}, ("node", "instance"), True, None),
    ],
)
def test_node_name(labels, node_labels, strip_port, expected):
    assert node_name(labels, node_labels, strip_port) == expected


# --------------------------------------------------------------------------- coverage


def test_missing_ranges_are_the_grid_points_outside_what_is_covered():
    assert missing_ranges((), 0, 300, 30) == [(0, 300)]
    assert missing_ranges(((0, 300),), 0, 300, 30) == []
    assert missing_ranges(((0, 150),), 0, 300, 30) == [(180, 300)]
    assert missing_ranges(((100, 200),), 0, 300, 30) == [(0, 90), (210, 300)]
    assert missing_ranges(((100, 200),), 0, 300, 60) == [(0, 60), (240, 300)]
    assert missing_ranges(((0, 60), (200, 240)), 0, 300, 30) == [(90, 180), (270, 300)]
    assert missing_ranges(((400, 500),), 0, 300, 30) == [(0, 300)]


def test_merge_intervals_joins_overlaps_and_small_gaps():
    assert merge_intervals([(50, 60), (0, 10), (5, 20)]) == ((0, 20), (50, 60))
    assert merge_intervals([(0, 30), (60, 90)], join_gap=30) == ((0, 90),)
    assert merge_intervals([(0, 30), (61, 90)], join_gap=30) == ((0, 30), (61, 90))


# --------------------------------------------------------------------------- parsing


def _matrix(series, **extra) -> bytes:
    document = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": v} for m, v in series],
        },
        **extra,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def test_parse_matrix_reads_labels_times_and_special_values():
    body = _matrix(
        [
            ({"instance": "a:9100", "odd": 'x"]],{}'}, [[1767225600, "0.5"], [1767225630, "NaN"]]),
            ({"node": "b"}, [[1767225600.5, "+Inf"]]),
            ({"node": "c"}, [[1767225600, "-Inf"], [1767225630, "1e+06"], [1767225660, "2"]]),
        ],
        warnings=["something"],
    )
    series = parse_matrix(body)
    assert [labels for labels, _, _ in series] == [
        {"instance": "a:9100", "odd": 'x"]],{}'},
        {"node": "b"},
        {"node": "c"},
    ]
    assert series[0][1].tolist() == [1767225600, 1767225630]
    assert series[0][2][0] == 0.5 and np.isnan(series[0][2][1])
    assert series[1][2].tolist() == [np.inf]
    assert series[2][2].tolist() == [-np.inf, 1e6, 2.0]
    assert series[2][1].dtype == np.int64


def test_parse_matrix_handles_empty_and_unusual_layouts_alike():
    assert parse_matrix(_matrix([])) == []
    pretty = json.dumps(
        {
            "status": "success",
            "data": {"result": [{"metric": {"node": "a"}, "values": [[1, "2"]]}]},
        },
        indent=2,
    ).encode()
    [(labels, seconds, values)] = parse_matrix(pretty)
    assert labels == {"node": "a"} and seconds.tolist() == [1] and values.tolist() == [2.0]


# --------------------------------------------------------------------------- command line


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlsched")
    add_collect_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["collect", *argv])


def test_collect_flags_and_defaults():
    args = _parse("--start", "2026-01-01T00:00:00Z")
    assert args.prometheus == "http://127.0.0.1:9090"
    assert args.step == "30s" and args.workers == 4 and args.chunk_points == 11_000
    assert args.handler is cmd_collect
    assert args.window is None and args.scrape_interval is None  # automatic


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--step", "1.5s"], "--step: must be whole seconds"),
        (["--step", "soon"], "--step: cannot read"),
        (["--end", "2026-01-02T00:00:00"], "--end: '2026-01-02T00:00:00' has no time zone"),
        (["--chunk-points", "20000"], "points per request must be within"),
        (["--window", "0s"], "--window: must be positive"),
        (["--scrape-interval", "often"], "--scrape-interval: cannot read 'often'"),
        (["--prometheus", "localhost:9090"], "expected an http(s) URL"),
    ],
)
def test_collect_cli_mistakes_are_user_errors(tmp_path, argv, expected):
    args = _parse("--start", "2026-01-01T00:00:00Z", "--output", str(tmp_path / "out"), *argv)
    if "--end" not in argv:
        args.end = "2026-01-01T01:00:00Z"
    with pytest.raises(MlschedError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        cmd_collect(args)
    assert not (tmp_path / "out").exists()


def test_collect_cli_names_a_bad_config(tmp_path):
    config = tmp_path / "queries.yaml"
    config.write_text(MINIMAL + "  pods: {promql: up, requird: true}\n")
    args = _parse("--start", "2026-01-01T00:00:00Z", "--config", str(config))
    with pytest.raises(MlschedError, match=r"queries\.yaml: queries\.pods\.requird: unknown key"):
        cmd_collect(args)


def test_a_closing_storage_block_is_retried_but_a_bad_query_is_not():
    from components.collect.prometheus_range import _HttpError, _retryable

    closing = "execution: open querier for block 01M90V: open index reader: block is closing"
    assert _retryable(_HttpError(422, closing))
    assert _retryable(_HttpError(503, "unavailable"))
    assert not _retryable(_HttpError(400, "bad_data: parse error at char 5"))
    assert not _retryable(_HttpError(422, "execution: many-to-many matching not allowed"))
