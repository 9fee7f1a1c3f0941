"""``mlsched replay`` against a real extender process on a free port: a few hours of a small
synthetic workload on a few nodes, every placement asked over HTTP, and the summary's numbers
checked against the logs, the extender's own counters and a recomputation of overload."""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
import requests

from components.contracts import (
    read_nodes_table,
    read_workload_trace,
    validate_nodes_table,
    validate_workload_trace,
    write_nodes_table,
    write_workload_trace,
)
from components.errors import MlschedError
from components.features.feast_store import open_feature_store, read_node_state_snapshot
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.harness.replay.cli import add_replay_parser
from components.harness.replay.prometheus import parse_counters
from components.harness.replay.run import day_window, overload_from_assignments, run_replay
from components.placement.workload import cluster_from_nodes, workload_from_trace
from tests.integration.processes import (
    launch_extender,
    predictions_usable,
    stop_process,
    wait_until,
)
from tests.support.replay_history import history_in_feast

START = 1_767_225_600


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlsched")
    add_replay_parser(parser.add_subparsers())
    return parser


def _mlsched(*argv: str) -> int:
    args = _parser().parse_args(["replay", *argv])
    return args.handler(args)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("replay")
    nodes = validate_nodes_table(nodes_table(make_nodes(5, seed=1)))
    config = WorkloadConfig(START, days=0.125, step_seconds=60, seed=3, target_request_ratio=0.9)
    trace = validate_workload_trace(generate_workload(config, nodes))
    write_nodes_table(nodes, folder / "nodes.csv")
    write_workload_trace(trace, folder / "workload.parquet")
    history_in_feast(folder, 5, START)
    return {
        "folder": folder,
        "nodes": folder / "nodes.csv",
        "workload": folder / "workload.parquet",
        "feast": folder / "feast",
    }


def start_extender(inputs: dict, port: int, name: str) -> subprocess.Popen:
    process = launch_extender(
        port,
        inputs["folder"] / f"{name}.log",
        *("--nodes", str(inputs["nodes"]), "--feast-repo", str(inputs["feast"])),
        *("--predictors", "recent-usage", "--refresh", "200ms"),
        *("--max-feature-age", "0"),  # the replay stamps node state with the simulated time
    )
    try:
        wait_until(f"http://127.0.0.1:{port}/healthz", process, predictions_usable)
    except AssertionError:
        stop_process(process)
        raise
    return process


@pytest.fixture(scope="module")
def extender(inputs, free_ports) -> Iterator[str]:
    (port,) = free_ports(1)
    process = start_extender(inputs, port, "extender")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def replayed(inputs, extender) -> dict:
    output = inputs["folder"] / "out" / "report.json"
    code = _mlsched(
        "--extender",
        extender,
        "--nodes",
        str(inputs["nodes"]),
        "--workload",
        str(inputs["workload"]),
        "--feast-home",
        str(inputs["feast"]),
        "--snapshot-every",
        "10",
        "--output",
        str(output),
        "--quiet",
    )
    assert code == 0
    report = json.loads(output.read_text())
    return {
        "report": report,
        "assignments": pd.read_csv(output.parent / report["assignment_log"]),
        "decisions": pd.read_csv(output.parent / report["decision_log"]),
    }


def test_every_placement_was_decided_over_http(replayed):
    report, decisions = replayed["report"], replayed["decisions"]
    replay = report["replay"]
    log = replayed["assignments"]
    placed = log[(log["policy"] == "extender") & log["node"].notna()]
    assert replay["placements"] == len(placed) > 50
    assert replay["decided_over_http"] == replay["placements"]
    assert replay["http_errors"] == 0
    assert replay["pods"] == replay["placements"] + replay["pods_never_placed"]
    assert sorted(decisions["pod"]) == sorted(placed["pod"])
    assert decisions["over_http"].all()
    top = dict(zip(decisions["pod"], decisions["top_nodes"].str.split(" "), strict=True))
    assert all(node in top[pod] for pod, node in zip(placed["pod"], placed["node"], strict=True))
    assert replay["placed_on_top_scored_node"] == replay["placements"]


def test_extender_counters_match_the_calls(replayed):
    replay = replayed["report"]["replay"]
    counters = replay["extender_counters"]
    placements = replay["placements"]
    assert counters["filter"]["decisions"] == counters["prioritize"]["decisions"] == placements
    assert counters["requests_by_code"] == {"200": 2 * placements}
    assert replay["latency"]["filter"]["calls"] == replay["latency"]["prioritize"]["calls"]
    assert replay["latency"]["per_pod"]["calls"] == placements
    rate = replay["fallback_rate"]
    assert rate == counters["prioritize"]["fallbacks"] / placements
    assert 0 <= rate < 1, "the ML path was never used: snapshots did not reach the extender"
    latency = replay["latency"]["prioritize"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    snapshots = replay["snapshots"]
    assert snapshots["written"] == 1 + replayed["report"]["window"]["steps"] // 10
    assert snapshots["sync_waits"] >= 1


def test_overload_recomputed_from_the_assignment_log(replayed, inputs):
    report, log = replayed["report"], replayed["assignments"]
    workload = day_window(workload_from_trace(read_workload_trace(inputs["workload"])), 1)
    cluster = cluster_from_nodes(read_nodes_table(inputs["nodes"]))
    assert set(report["policies"]) == {"extender", "kube-default", "random"}
    for policy, metrics in report["policies"].items():
        rows = log[log["policy"] == policy].fillna({"node": ""})
        rows = rows.assign(placed_time=pd.to_datetime(rows["placed_time"], utc=True))
        recomputed = overload_from_assignments(workload, cluster, rows)
        assert recomputed["overload_node_minutes"] == metrics["overload_node_minutes"], policy
    replay = report["replay"]
    assert (
        replay["overload_node_minutes_recomputed"]
        == (report["policies"]["extender"]["overload_node_minutes"])
    )


def test_the_last_snapshot_is_the_simulated_cluster(replayed, inputs):
    nodes = read_nodes_table(inputs["nodes"])
    store = open_feature_store(inputs["feast"])
    snapshot = read_node_state_snapshot(store, list(nodes["node"])).reset_index()
    assert list(snapshot["node"]) == list(nodes["node"])
    last = pd.Timestamp(replayed["report"]["window"]["start"]) + pd.Timedelta(
        minutes=replayed["report"]["window"]["steps"] // 10 * 10 - 1
    )
    assert (snapshot["timestamp"] == last).all(), "stamped with the simulated time"
    assert snapshot["cpu_utilization"].between(0, 1).all()
    assert snapshot["pod_count"].sum() > 0
    assert (snapshot["cpu_requested_ratio"] <= 1 + 1e-6).all()
    assert snapshot["cpu_mean_1h"].notna().all()


def test_an_unreachable_extender_is_a_clear_error(inputs, free_ports):
    (port,) = free_ports(1)
    workload = day_window(workload_from_trace(read_workload_trace(inputs["workload"])), 1)
    cluster = cluster_from_nodes(read_nodes_table(inputs["nodes"]))
    with pytest.raises(MlschedError, match="not reachable"):
        run_replay(workload, cluster, f"http://127.0.0.1:{port}", baselines=())


def test_the_same_replay_places_every_pod_the_same_way(inputs, extender, replayed):
    workload = day_window(workload_from_trace(read_workload_trace(inputs["workload"])), 1)
    cluster = cluster_from_nodes(read_nodes_table(inputs["nodes"]))
    again = run_replay(
        workload,
        cluster,
        extender,
        feast_home=inputs["feast"],
        snapshot_every=10,
        baselines=(),
    )
    first = replayed["assignments"]
    first = first[first["policy"] == "extender"].fillna({"node": ""})
    second = again.results["extender"].assignments
    assert list(second["pod"]) == list(first["pod"])
    assert list(second["node"]) == list(first["node"])
    assert again.report["replay"]["snapshots"]["sync_timeouts"] == 0


def _decisions(base: str) -> float:
    try:
        text = requests.get(f"{base}/metrics", timeout=1).text
    except requests.RequestException:
        return 0.0
    counters = parse_counters(text)
    return sum(v for (name, _), v in counters.items() if name.endswith("_decisions_total"))


def test_killing_the_extender_mid_run_costs_no_placement(inputs, replayed, free_ports):
    (port,) = free_ports(1)
    process = start_extender(inputs, port, "extender-killed")
    base = f"http://127.0.0.1:{port}"

    def kill_after_some_decisions() -> None:
        deadline = time.monotonic() + 120
        while _decisions(base) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()

    killer = threading.Thread(target=kill_after_some_decisions, daemon=True)
    killer.start()
    workload = day_window(workload_from_trace(read_workload_trace(inputs["workload"])), 1)
    cluster = cluster_from_nodes(read_nodes_table(inputs["nodes"]))
    try:
        result = run_replay(
            workload,
            cluster,
            base,
            feast_home=inputs["feast"],
            snapshot_every=10,
            baselines=(),
            timeout_seconds=2.0,
        )
    finally:
        killer.join(10)
        stop_process(process)
    replay = result.report["replay"]
    assert replay["placements"] + replay["pods_never_placed"] == replay["pods"]
    assert replay["placements"] >= replayed["report"]["replay"]["placements"] - 5
    assert replay["http_errors"] > 0 and replay["decided_over_http"] >= 20
    assert replay["decided_over_http"] + replay["http_errors"] == replay["placements"]
    assert replay["fallback_rate"] is None and "error" in result.report["extender"]["health_after"]
