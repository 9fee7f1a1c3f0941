"""Servers the integration tests share, as real processes on free ports: an MLflow tracking
server, a model server of tiny real models, extenders, and a day of generated history in a real
Prometheus. Each is stopped, with its children, once the tests that use it are done."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.harness.stack import StackConfig, stack_down, stack_up
from components.harness.stack.mlflow_server import HEALTH_PATH, start_mlflow
from tests.integration.processes import (
    launch_extender,
    launch_model_server,
    serving,
    stop_process,
    wait_until,
)

HISTORY_END = pd.Timestamp("2026-01-01T00:00:00Z")
HISTORY_NODES = 4
HISTORY_STEP_SECONDS = 30


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, free_ports) -> Iterator[str]:
    """A tracking server (SQLite store, proxied artifacts), fresh for each test module: its URL."""
    home = tmp_path_factory.mktemp("mlflow")
    (port,) = free_ports(1)
    log = home / "mlflow.log"
    process = start_mlflow(
        db_file=home / "mlflow.db",
        artifacts_dir=home / "artifacts",
        host="127.0.0.1",
        port=port,
        log_file=log,
        pid_file=home / "mlflow.pid",
    )
    with serving(process, f"http://127.0.0.1:{port}", HEALTH_PATH, log, timeout=120) as url:
        yield url


@pytest.fixture(scope="module")
def model_server(tmp_path_factory, free_ports) -> Iterator[str]:
    """``python -m serving serve`` of the tiny real models (forecaster, anomaly detector, DQN):
    its URL."""
    from tests.code.test_serving_models import save_tiny_models

    root = save_tiny_models(tmp_path_factory.mktemp("models"))
    (port,) = free_ports(1)
    log = root / "server.log"
    process = launch_model_server(port, root, log)
    with serving(process, f"http://127.0.0.1:{port}", "/v2/health/ready", log, 120) as url:
        yield url


@pytest.fixture(scope="module")
def start_extender() -> Iterator[Callable[..., subprocess.Popen]]:
    """``start_extender(port, log, *flags, ready=None, scheme="http", timeout=60, **request
    options)``: an extender whose ``/healthz`` is ``ready`` (default: answers 200); every one
    still running is stopped after the module."""
    started: list[subprocess.Popen] = []

    def start(port, log, *flags, ready=None, scheme="http", timeout=60.0, **request_options):
        process = launch_extender(port, log, *flags)
        started.append(process)
        url = f"{scheme}://127.0.0.1:{port}/healthz"
        wait_until(url, process, ready, timeout, log, **request_options)
        return process

    yield start
    for process in started:
        stop_process(process)


@pytest.fixture(scope="session")
def served_history(tmp_path_factory, free_ports) -> Iterator[tuple[SyntheticDataset, StackConfig]]:
    """A generated day of 4 nodes at a 30 s step, backfilled into the local stack's Prometheus:
    the data set and the stack (MLflow runs too, unused)."""
    root = tmp_path_factory.mktemp("history")
    config = HistoryConfig(
        nodes=HISTORY_NODES,
        days=1,
        step_seconds=HISTORY_STEP_SECONDS,
        seed=11,
        end_epoch=int(HISTORY_END.timestamp()),
    )
    generate_synthetic_cluster(config, root / "data", workload_days=0.1, progress=False)
    dataset = SyntheticDataset(root / "data")
    prometheus_port, mlflow_port = free_ports(2)
    stack = StackConfig(
        home=root / "stack", prometheus_port=prometheus_port, mlflow_port=mlflow_port
    )
    try:
        stack_up(stack, openmetrics=dataset.openmetrics)
        yield dataset, stack
    finally:
        stack_down(stack)
