"""The live path with a real scrape: the simulated cluster's exporter, a real Prometheus scraping
it every second, the node-state loop feeding Feast every 2 s, an extender process refreshing
every 500 ms and deciding every pod; the node state it decides on is fresh and its decisions are
ML decisions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from components.contracts import validate_nodes_table, validate_workload_trace, write_nodes_table
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.harness.replay.live import LiveTiming, freshness_seconds, run_live_check
from components.placement.workload import cluster_from_nodes, workload_from_trace

START = 1_767_225_600
STEPS = 45


@pytest.fixture(scope="module")
def live_report(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("live")
    nodes = validate_nodes_table(nodes_table(make_nodes(5, seed=1)))
    config = WorkloadConfig(START, days=STEPS * 60 / 86_400, step_seconds=60, seed=3)
    trace = validate_workload_trace(generate_workload(config, nodes))
    write_nodes_table(nodes, folder / "nodes.csv")
    workload = workload_from_trace(trace)
    return run_live_check(
        workload.window(0, STEPS), cluster_from_nodes(nodes), folder / "nodes.csv", folder / "run"
    )


def test_every_pod_is_decided_by_the_extender_on_ml_predictions(live_report):
    assert live_report["decisions"] >= 10
    assert live_report["http_errors"] == 0
    assert live_report["fallback_rate"] == 0.0
    assert live_report["loop"]["writes"] >= STEPS // 3


def test_node_state_is_fresh_from_sample_to_decision(live_report):
    fresh = live_report["freshness_seconds"]
    bound = LiveTiming().bound
    assert live_report["freshness_bound_seconds"] == bound
    assert fresh["p99"] <= bound, live_report
    assert 0 < fresh["p50"] <= fresh["p99"]


def test_freshness_counts_only_writes_a_refresh_before_the_decision():
    writes = [(10.0, 8.0), (12.0, 10.0), (14.0, 12.0)]
    ages = freshness_seconds([9.0, 12.4, 12.6, 20.0], writes, refresh=0.5)
    np.testing.assert_allclose(ages, [np.nan, 4.4, 2.6, 8.0])


def test_the_loop_outlives_a_prometheus_restart(tmp_path):
    from components.collect import FetchSettings, load_collect_config
    from components.features.live import LoopStatus, NodeHistory, prometheus_fetch, run_loop
    from components.harness.replay.exporter import ClusterExporter, serve_exporter
    from components.harness.replay.live import free_port, start_scraping_prometheus
    from components.harness.stack.processes import terminate

    exporter = ClusterExporter(["node-a", "node-b"], np.array([4.0, 8.0]), np.array([2e10, 4e10]))
    exporter.update(time.time(), np.array([0.3, 0.6]), np.array([0.5, 0.2]), {})
    server = serve_exporter(exporter, free_port())
    written: list[float] = []
    history, status = NodeHistory(1), LoopStatus()
    prometheus, url = start_scraping_prometheus(tmp_path, server.server_address[1], 1.0)
    config = load_collect_config().with_window(None, 1.0)
    fetch = prometheus_fetch(url, 1, config, FetchSettings(attempts=2, timeout_seconds=2))

    def write(features) -> int:
        written.append(features["timestamp"].max().timestamp())
        return len(features)

    try:
        run_loop(
            history, fetch, write, 1.0, status=status, periods=15, stopped=lambda: bool(written)
        )
        assert written, "no period succeeded against the running Prometheus"
        warm = status.periods
        run_loop(history, fetch, write, 1.0, status=status, periods=warm + 2)
        failures = status.failures
        terminate(prometheus.pid)
        prometheus.wait()
        run_loop(history, fetch, write, 1.0, status=status, periods=warm + 4)
        assert status.failures == failures + 2
        before = len(written)
        prometheus, _ = start_scraping_prometheus(
            tmp_path, server.server_address[1], 1.0, port=int(url.rsplit(":", 1)[1])
        )
        run_loop(
            history,
            fetch,
            write,
            1.0,
            status=status,
            periods=warm + 20,
            stopped=lambda: len(written) > before,
        )
        assert len(written) > before and written[-1] > written[before - 1]
    finally:
        terminate(prometheus.pid)
        prometheus.wait()
        server.shutdown()
