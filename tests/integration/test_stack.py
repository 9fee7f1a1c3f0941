"""The local stack against real Prometheus, promtool and MLflow server processes."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from components.errors import MlschedError
from components.harness.stack import StackConfig, port_is_free, stack_down, stack_status, stack_up

pytestmark = pytest.mark.integration

END = 1767225600  # 2026-01-01T00:00:00Z
STEP = 30
STEPS = 241  # two hours
IDLE_RATES = {("node-a", "0"): 0.5, ("node-a", "1"): 0.25, ("node-b", "0"): 0.9}
QUERY_TIME = END - 3600


def write_openmetrics(path: Path, rates: dict[tuple[str, str], float]) -> Path:
    lines = [
        "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
        "# TYPE node_cpu_seconds_total counter",
    ]
    start = END - (STEPS - 1) * STEP
    for (node, cpu), rate in rates.items():
        labels = f'cpu="{cpu}",mode="idle",instance="{node}:9100",node="{node}"'
        for i in range(STEPS):
            lines.append(f"node_cpu_seconds_total{{{labels}}} {i * STEP * rate} {start + i * STEP}")
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return path


def idle_rates(config: StackConfig) -> dict[tuple[str, str], float]:
    response = requests.get(
        f"{config.prometheus_url}/api/v1/query",
        params={"query": "rate(node_cpu_seconds_total[5m])", "time": QUERY_TIME},
        timeout=10,
    )
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return {(r["metric"]["node"], r["metric"]["cpu"]): float(r["value"][1]) for r in result}


def make_config(home: Path, free_ports, **overrides) -> StackConfig:
    prometheus_port, mlflow_port = free_ports(2)
    options = {"prometheus_port": prometheus_port, "mlflow_port": mlflow_port, **overrides}
    return StackConfig(home=home, **options)


@pytest.fixture
def scratch_config(tmp_path, free_ports) -> Iterator[StackConfig]:
    config = make_config(tmp_path / "stack", free_ports)
    yield config
    stack_down(config)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return write_openmetrics(tmp_path_factory.mktemp("history") / "history.om", IDLE_RATES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, free_ports, history) -> Iterator[StackConfig]:
    config = make_config(tmp_path_factory.mktemp("home") / ".stack", free_ports)
    try:
        status = stack_up(config, history)
        assert status.all_ready, status.format()
        yield config
    finally:
        stack_down(config)


def test_prometheus_serves_the_backfilled_history(stack):
    assert idle_rates(stack) == pytest.approx(IDLE_RATES)
    marker = json.loads(stack.backfill_marker.read_text())
    assert marker["size"] > 0 and len(marker["sha256"]) == 64


def test_mlflow_tracks_experiments_and_proxies_artifacts(stack):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    experiment_id = client.create_experiment("stack-test")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.25)
    client.log_text(run.info.run_id, "hello from the stack test", "notes/hello.txt")
    client.set_terminated(run.info.run_id)

    assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    stored = list(stack.mlflow_artifacts_dir.rglob("hello.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hello from the stack test"
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.25}
    page = requests.get(stack.mlflow_url, timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_stack_up_is_idempotent(stack, history):
    before = stack_status(stack)
    marker = stack.backfill_marker.read_text()
    blocks = sorted(p.name for p in stack.prometheus_data_dir.iterdir())

    os.utime(history)
    again = stack_up(stack, history)

    assert [s.pid for s in again.services] == [s.pid for s in before.services]
    assert (
        json.loads(stack.backfill_marker.read_text())["backfilled_at"]
        == (json.loads(marker)["backfilled_at"])
    )
    assert sorted(p.name for p in stack.prometheus_data_dir.iterdir()) == blocks
    assert "history:" in again.format() and "ready" in again.format()


def test_changed_history_is_backfilled_again(stack, tmp_path):
    mlflow_pid = stack_status(stack).service("mlflow").pid
    prometheus_pid = stack_status(stack).service("prometheus").pid
    changed = {**IDLE_RATES, ("node-c", "0"): 0.75}

    status = stack_up(stack, write_openmetrics(tmp_path / "changed.om", changed))

    assert status.service("mlflow").pid == mlflow_pid
    assert status.service("prometheus").pid != prometheus_pid
    assert idle_rates(stack) == pytest.approx(changed)


def test_stack_down_stops_both_services(stack):
    pids = [s.pid for s in stack_status(stack).services]

    assert sorted(stack_down(stack)) == ["mlflow", "prometheus"]

    status = stack_status(stack)
    assert not any(s.running or s.ready for s in status.services)
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert port_is_free(stack.host, stack.prometheus_port)
    assert port_is_free(stack.host, stack.mlflow_port)
    assert stack_down(stack) == []


@pytest.mark.parametrize(
    ("taken", "option"),
    [("prometheus_port", "--prometheus-port"), ("mlflow_port", "--mlflow-port")],
)
def test_a_port_held_by_another_process_is_refused(tmp_path, free_ports, taken, option):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        config = make_config(tmp_path / "stack", free_ports, **{taken: port})

        with pytest.raises(MlschedError) as error:
            stack_up(config)

    assert str(error.value) == (
        f"port {port} on 127.0.0.1 is already in use by another process; "
        f"choose another with {option}"
    )
    assert not any(s.running for s in stack_status(config).services)


def test_a_missing_binary_is_named(tmp_path, free_ports):
    config = make_config(tmp_path / "stack", free_ports, prometheus_binary="prometheus-missing")

    with pytest.raises(MlschedError, match="prometheus-missing not found on PATH; install"):
        stack_up(config)


def test_a_malformed_file_fails_the_backfill_and_leaves_no_blocks(scratch_config, tmp_path):
    broken = tmp_path / "broken.om"
    broken.write_text('node_cpu_seconds_total{cpu="0"} 1 1767225600\n\n# EOF\n')

    with pytest.raises(MlschedError, match="promtool could not backfill") as error:
        stack_up(scratch_config, broken)

    assert "not a valid start token" in str(error.value)
    assert list(scratch_config.prometheus_data_dir.iterdir()) == []
    assert not scratch_config.backfill_marker.exists()
    assert list(scratch_config.prometheus_dir.glob(".backfill-*")) == []
    assert not any(s.running for s in stack_status(scratch_config).services)


def test_a_server_that_exits_while_starting_shows_its_log(tmp_path, free_ports):
    fake = tmp_path / "fake-prometheus"
    fake.write_text("#!/bin/sh\necho 'boom: cannot open storage' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    config = make_config(tmp_path / "stack", free_ports, prometheus_binary=str(fake))

    try:
        with pytest.raises(MlschedError, match="prometheus exited with status 3") as error:
            stack_up(config)
        assert "boom: cannot open storage" in str(error.value)
        assert not any(s.running for s in stack_status(config).services)
    finally:
        stack_down(config)
