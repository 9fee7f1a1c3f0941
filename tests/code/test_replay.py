"""The replay's parts without a server: the Pod JSON, node metrics and node state (written to a
local Feast store) from the simulated cluster, the extender's counters, overload recomputed from
an assignment log, the CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from components.contracts import validate_nodes_table, validate_workload_trace
from components.errors import MlschedError
from components.features import FEATURE_NAMES, ONLINE_LOOKBACK_SECONDS
from components.features.anomaly_group import anomaly_feature_names, latest_anomaly_features
from components.features.anomaly_statistics import LOOKBACK_SECONDS as ANOMALY_LOOKBACK_SECONDS
from components.features.feast_store import apply_feature_repo, read_node_state_snapshot
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.harness.replay import prometheus
from components.harness.replay.cli import add_replay_parser
from components.harness.replay.extender_policy import ExtenderPolicy, pod_manifest
from components.harness.replay.run import (
    day_window,
    format_summary,
    latency_summary,
    overload_from_assignments,
)
from components.harness.replay.snapshot import (
    NodeMetricsRecorder,
    SnapshotWriter,
    empty_cluster_snapshot,
    snapshot_from_metrics,
)
from components.placement.policy import ClusterState, PodSpec, StepFeedback, make_policy
from components.placement.simulator import simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace
from scheduler_client.api import pod_requests
from scheduler_client.client import ExtenderClient
from scheduler_client.metrics import ExtenderMetrics

GIB = 1024**3
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def small():
    nodes = validate_nodes_table(nodes_table(make_nodes(6, seed=2)))
    config = WorkloadConfig(int(T0.timestamp()), days=0.2, seed=2, target_request_ratio=0.9)
    trace = validate_workload_trace(generate_workload(config, nodes))
    return workload_from_trace(trace), cluster_from_nodes(nodes)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (PodSpec("web-1", 0.5, 1.5 * GIB), (0.5, int(1.5 * GIB), 0)),
        (PodSpec("gpu-1", 4.0, 16 * GIB, gpus=2, cpu_limit_cores=8.0), (4.0, 16 * GIB, 2)),
        (PodSpec("besteffort-1", 0.0, 0.0), (0.0, 0, 0)),
        (PodSpec("odd-1", 0.1234, 1000.4), (0.123, 1000, 0)),
    ],
)
def test_pod_manifest_carries_the_workload_requests(spec, expected):
    manifest = pod_manifest(spec)
    assert manifest["metadata"]["name"] == spec.pod
    assert manifest["metadata"]["uid"]
    # the replicas of one workload share the name up to the last dash
    assert manifest["metadata"]["generateName"] == spec.pod.rsplit("-", 1)[0] + "-"
    assert pod_requests(manifest["spec"]) == pytest.approx(expected)
    resources = manifest["spec"]["containers"][0]["resources"]
    if spec.cpu_request_cores == 0:
        assert resources["requests"] == {}
    if spec.cpu_limit_cores:
        assert resources["limits"]["cpu"] == f"{int(spec.cpu_limit_cores * 1000)}m"


def _state(nodes=("a", "b")) -> ClusterState:
    state = ClusterState.empty(nodes, np.array([4.0, 8.0]), np.array([8.0, 16.0]) * GIB)
    state.place(PodSpec("p", 2.0, 4 * GIB), 0)
    return state


def test_recorder_rows_and_snapshot_features():
    recorder = NodeMetricsRecorder(("a", "b"))
    state = _state()
    for step in range(90):
        at = T0 + pd.Timedelta(minutes=step)
        recorder.record(at, np.array([0.25 + step / 1000, 1.7]), np.array([0.5, 0.1]), state)
    frame = recorder.frame()
    assert len(frame) == 180 and frame["timestamp"].is_monotonic_increasing
    b = frame[frame["node"] == "b"]
    assert (b["cpu_utilization"] == 1.0).all(), "use above capacity is reported as 100 %"
    a = frame[frame["node"] == "a"].iloc[-1]
    assert (a["cpu_requested_ratio"], a["memory_requested_ratio"]) == (0.5, 0.5)
    assert a["pod_count"] == 1
    assert len(recorder.frame(since=T0 + pd.Timedelta(minutes=79))) == 20

    at = T0 + pd.Timedelta(minutes=89)
    since = at - pd.Timedelta(seconds=ONLINE_LOOKBACK_SECONDS)
    snapshot = snapshot_from_metrics(recorder.frame(since), at, ("a", "b", "ghost"), 60)
    assert list(snapshot["node"]) == ["a", "b", "ghost"]
    row = snapshot.set_index("node").loc["a"]
    assert row["cpu_utilization"] == pytest.approx(0.25 + 89 / 1000)
    assert row["cpu_mean_1h"] == pytest.approx(np.mean(0.25 + np.arange(30, 90) / 1000), rel=1e-5)
    assert row["cpu_requested_ratio"] == pytest.approx(0.5)
    assert snapshot.set_index("node").loc["ghost"].drop("timestamp").isna().all()


def test_snapshot_carries_the_anomaly_group_the_served_detector_reads():
    recorder = NodeMetricsRecorder(("a", "b"))
    state = _state()
    rng = np.random.default_rng(0)
    for step in range(600):
        at = T0 + pd.Timedelta(minutes=step)
        cpu = np.array([0.3, 0.5]) + rng.normal(0, 0.02, 2)
        recorder.record(at, cpu, np.array([0.4, 0.2]) + step * 1e-4, state)
    at = T0 + pd.Timedelta(minutes=599)
    snapshot = snapshot_from_metrics(
        recorder.frame(at - pd.Timedelta(seconds=ANOMALY_LOOKBACK_SECONDS)),
        at,
        ("a", "b", "ghost"),
        60,
    ).set_index("node")
    names = list(anomaly_feature_names())
    expected = latest_anomaly_features(recorder.frame(), at, 60).set_index("node")[names]
    pd.testing.assert_frame_equal(
        snapshot.loc[["a", "b"], names], expected, check_names=False, check_dtype=False
    )
    assert snapshot.loc[["a", "b"], names].notna().all().all()
    assert snapshot.loc["ghost", names].isna().all()


def test_snapshot_writer_writes_the_state_into_the_feast_online_store(tmp_path):
    idle = empty_cluster_snapshot(("a", "b"), T0, 60)
    table, anomaly_table = tmp_path / "t.parquet", tmp_path / "t_anomaly.parquet"
    idle.to_parquet(table)  # apply needs the offline tables to exist
    idle.to_parquet(anomaly_table)
    store = apply_feature_repo(tmp_path / "feast", table, anomaly_table_path=anomaly_table)
    recorder = NodeMetricsRecorder(("a", "b"))
    for step in range(3):
        at = T0 + pd.Timedelta(minutes=step)
        recorder.record(at, np.array([0.2, 0.3 + step / 10]), np.array([0.1, 0.1]), _state())
    writer = SnapshotWriter(store, recorder, 60)
    writer.publish(idle, T0)
    written = writer.write(at).set_index("node")
    assert writer.writes == 2
    read = read_node_state_snapshot(store, ["a", "b"])
    assert (read["timestamp"] == at).all()
    names = [*FEATURE_NAMES, *anomaly_feature_names()]
    assert read.loc["b", "cpu_utilization"] == pytest.approx(0.5)
    np.testing.assert_array_equal(
        read[names].to_numpy(), written.loc[["a", "b"], names].to_numpy(np.float32)
    )


def test_replay_writes_the_lagged_use_a_live_cluster_shows_not_the_truth(tmp_path):
    idle = empty_cluster_snapshot(("a", "b"), T0, 60)
    table, anomaly_table = tmp_path / "t.parquet", tmp_path / "t_anomaly.parquet"
    idle.to_parquet(table)
    idle.to_parquet(anomaly_table)
    store = apply_feature_repo(tmp_path / "feast", table, anomaly_table_path=anomaly_table)
    writer = SnapshotWriter(store, NodeMetricsRecorder(("a", "b")), 60)
    policy = ExtenderPolicy(
        ExtenderClient("http://127.0.0.1:9"),
        start=T0,
        step_seconds=60,
        snapshot=writer,
        snapshot_every=2,
    )
    truth = np.array([0.9, 0.8])

    def feedback(step, observed):
        return StepFeedback(
            step=step,
            placements=(),
            overloaded=np.zeros(2, bool),
            cpu_utilization=truth,
            memory_utilization=truth,
            throttled_pods=np.zeros(2, int),
            pending=0,
            observed_cpu_utilization=observed,
            observed_memory_utilization=observed,
        )

    policy.observe(feedback(0, None), _state())  # nothing observable yet: nothing recorded
    policy.observe(feedback(1, None), _state())
    assert len(writer.recorder) == 0 and writer.writes == 0
    policy.observe(feedback(2, np.array([0.2, 0.3])), _state())
    policy.observe(feedback(3, np.array([0.25, 0.35])), _state())
    assert writer.writes == 1
    read = read_node_state_snapshot(store, ["a", "b"])
    assert read.loc["b", "cpu_utilization"] == pytest.approx(0.35)
    assert read.loc["a", "cpu_utilization"] == pytest.approx(0.25)


def test_empty_cluster_snapshot_is_idle():
    snapshot = empty_cluster_snapshot(("a", "b"), T0, 60)
    assert list(snapshot["node"]) == ["a", "b"]
    assert (snapshot[["cpu_utilization", "pod_count", "cpu_requested_ratio"]] == 0).all().all()


def test_counters_from_a_real_exposition():
    metrics = ExtenderMetrics()
    before = prometheus.parse_counters(metrics.exposition().decode())
    for _ in range(3):
        metrics.decisions.labels("prioritize", "ml").inc()
        metrics.decisions.labels("filter", "ml").inc()
        metrics.requests.labels("prioritize", "200").inc()
    metrics.decisions.labels("prioritize", "fallback").inc()
    metrics.fallbacks.labels("prioritize", "stale").inc()
    after = prometheus.parse_counters(metrics.exposition().decode())
    summary = prometheus.fallback_summary(prometheus.counter_delta(before, after))
    assert summary["prioritize"]["decisions"] == 4
    assert summary["prioritize"]["by_mode"] == {"fallback": 1, "ml": 3}
    assert summary["prioritize"]["fallback_reasons"] == {"stale": 1}
    assert summary["prioritize"]["fallback_rate"] == 0.25
    assert summary["filter"]["fallback_rate"] == 0.0
    assert summary["requests_by_code"] == {"200": 3}


def test_overload_recomputed_equals_the_simulator(small):
    workload, cluster = small
    for name in ("random", "most-allocated"):
        result = simulate(workload, cluster, make_policy(name), seed=1)
        log = result.assignments.assign(node=result.assignments["node"].astype(str))
        recomputed = overload_from_assignments(workload, cluster, log)
        assert recomputed["overload_node_minutes"] == result.metrics["overload_node_minutes"]
    assert result.metrics["overload_node_minutes"] > 0, "the check needs some overload"


def test_overload_recompute_names_an_unknown_node(small):
    workload, cluster = small
    log = pd.DataFrame({"pod": [workload.pods[0]], "node": ["ghost"], "placed_time": [T0]})
    with pytest.raises(MlschedError, match="ghost"):
        overload_from_assignments(workload, cluster, log)


def test_day_window(small):
    workload, _ = small
    day = day_window(workload, 1)
    assert day.n_steps == workload.n_steps and day.n_pods == workload.n_pods
    assert day_window(workload, "last").n_steps == day.n_steps
    with pytest.raises(MlschedError, match="--day 2"):
        day_window(workload, 2)


def test_latency_summary():
    summary = latency_summary(list(range(1, 101)))
    assert summary["calls"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert latency_summary([])["p99_ms"] is None


def test_summary_lists_the_replay_beside_the_baselines():
    policy = {"overload_node_minutes": 5.0, "pods_pending": 1, "pods_never_placed": 0}
    policy["mean_pending_minutes"] = 0.5
    latency = {"calls": 1, "p50_ms": 1.0, "p99_ms": 2.0}
    report = {
        "replay": {
            "placements": 3,
            "pods": 3,
            "pods_pending": 1,
            "pods_never_placed": 0,
            "decided_over_http": 3,
            "http_errors": 0,
            "fallback_rate": 0.5,
            "latency": {"filter": latency, "prioritize": latency},
        },
        "policies": {"extender": policy, "kube-default": {**policy, "overload_node_minutes": 7}},
    }
    text = format_summary(report)
    assert "fallback_rate=0.5000" in text and "prioritize_latency_p99_ms=2.00" in text
    assert "overload_node_minutes=5" in text and "overload_node_minutes_kube_default=7" in text


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlsched")
    add_replay_parser(parser.add_subparsers())
    return parser.parse_args(["replay", *argv])


def test_cli_flags_and_bad_input(tmp_path, small, capsys):
    args = _parse("--workload", "w.parquet", "--nodes", "n.csv")
    assert (args.day, args.snapshot_every, args.output) == (1, 15, "data/replay/report.json")
    with pytest.raises(SystemExit):
        _parse("--workload", "w", "--nodes", "n", "--snapshot-every", "0")
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse("--workload", "w", "--nodes", "n", "--day", "soon")
    assert "a day number (1 = the first) or 'last'" in capsys.readouterr().err
    assert _parse("--workload", "w", "--nodes", "n", "--day", "LAST").day == "last"
    workload_frame = validate_workload_trace(
        generate_workload(
            WorkloadConfig(int(T0.timestamp()), days=0.05, seed=1),
            nodes_table(make_nodes(3, seed=1)),
        )
    )
    workload_frame.to_parquet(tmp_path / "w.parquet")
    nodes_table(make_nodes(3, seed=1)).to_csv(tmp_path / "n.csv", index=False)
    base = ("--workload", str(tmp_path / "w.parquet"), "--nodes", str(tmp_path / "n.csv"))
    for argv, message in [
        ((), "--extender URL is required"),
        (("--extender", "http://x", "--baselines", "nope"), "unknown policy 'nope'"),
        (("--day", "3"), "--day 3"),
        (("--extender", "http://x", "--feast-home", str(tmp_path)), "no Feast registry"),
    ]:
        args = _parse(*base, *argv)
        with pytest.raises(MlschedError, match=message):
            args.handler(args)
