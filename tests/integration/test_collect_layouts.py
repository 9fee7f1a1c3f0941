"""``mlsched collect`` with the shipped queries against a real Prometheus in each node layout.

One generated day of a few nodes, scraped every 30 s, is written in each layout of the
OpenMetrics export, backfilled into its own Prometheus with promtool, and collected at a 5-minute
step. The truth at a 5-minute step: CPU is the mean utilisation over the step (what a counter's
rate over the step measures), memory the gauge at the step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from components.collect import collect_node_metrics, load_collect_config
from components.collect.config import default_config_text, parse_collect_config
from components.collect.prometheus_range import connect, scrape_interval_seconds
from components.contracts import (
    CPU_UTILIZATION,
    MEMORY_UTILIZATION,
    NODE,
    TIMESTAMP,
    read_node_metrics,
    read_nodes_table,
)
from components.errors import MlschedError
from components.generate.history import HistoryConfig
from components.generate.openmetrics import LAYOUTS, write_openmetrics
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster
from components.harness.stack.prometheus import READY_PATH, backfill_prometheus, start_prometheus
from tests.conftest import find_free_ports
from tests.integration.processes import serving

pytestmark = pytest.mark.integration

END = pd.Timestamp("2026-01-01T00:00:00Z")
START = END - pd.Timedelta(days=1)
STEP = 300
NODES = 3
ERROR_P90 = 0.01
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> SyntheticDataset:
    """A generated day of a few nodes at a 30 s scrape (no OpenMetrics file: each test writes
    its layout)."""
    root = tmp_path_factory.mktemp("layouts") / "data"
    config = HistoryConfig(
        nodes=NODES, days=1, step_seconds=30, seed=5, end_epoch=int(END.timestamp())
    )
    generate_synthetic_cluster(config, root, workload_days=0.1, openmetrics=False, progress=False)
    return SyntheticDataset(root)


@contextmanager
def served(dataset: SyntheticDataset, layout: str, home: Path) -> Iterator[str]:
    """A Prometheus on a free port holding ``dataset`` written in ``layout``: its URL."""
    metrics = read_node_metrics(dataset.node_metrics)
    pods = pd.read_parquet(dataset.node_pods)
    write_openmetrics(
        metrics, read_nodes_table(dataset.nodes), pods, home / "history.om", layout=layout
    )
    backfill_prometheus(home / "history.om", home / "data")
    (port,) = find_free_ports(1)
    log = home / "prometheus.log"
    process = start_prometheus(
        binary="prometheus",
        config_file=home / "prometheus.yml",
        data_dir=home / "data",
        host="127.0.0.1",
        port=port,
        log_file=log,
        pid_file=home / "prometheus.pid",
    )
    with serving(process, f"http://127.0.0.1:{port}", READY_PATH, log, timeout=60) as url:
        yield url


def wait_for_targets(url: str, timeout: float = 30.0) -> None:
    """Wait until Prometheus lists its scrape target (a few seconds after it starts)."""
    deadline = time.monotonic() + timeout
    while not requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]:
        assert time.monotonic() < deadline, f"{url} lists no scrape target after {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def servers(history, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A Prometheus per layout, started together: layout -> URL, once each lists its scrape
    target, as a running Prometheus does."""
    with ExitStack() as stack:
        urls = {
            layout: stack.enter_context(served(history, layout, tmp_path_factory.mktemp(layout)))
            for layout in LAYOUTS
        }
        for url in urls.values():
            wait_for_targets(url)
        yield urls


def step_truth(generated: pd.DataFrame, step: int = STEP) -> pd.DataFrame:
    """The generated history at a ``step``: CPU averaged over each step ending at a grid point,
    memory as it was at the grid point."""
    frame = generated.set_index(TIMESTAMP)
    cpu = (
        frame.groupby(NODE)[CPU_UTILIZATION]
        .resample(f"{step}s", closed="right", label="right")
        .mean()
    )
    memory = frame.set_index(NODE, append=True)[MEMORY_UTILIZATION].swaplevel()
    return pd.concat([cpu, memory], axis=1, join="inner").rename_axis([NODE, TIMESTAMP])


def errors_p90(collected: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """The 90th percentile of |collected - truth| per utilisation, over the rows both hold."""
    joined = collected.set_index([NODE, TIMESTAMP]).join(truth, rsuffix="_true", how="inner")
    return {
        column: float(np.nanpercentile((joined[column] - joined[f"{column}_true"]).abs(), 90))
        for column in (CPU_UTILIZATION, MEMORY_UTILIZATION)
    } | {"rows": len(joined)}


def layout_errors(
    dataset: SyntheticDataset, url: str, output: Path, window: str | None = None
) -> dict[str, float]:
    """Collect ``dataset`` from Prometheus at ``url`` at a 5-minute step with the shipped
    queries (``window`` overrides the automatic ``$window``): the p90 errors against the
    truth."""
    config = load_collect_config()
    if window is not None:
        config = config.with_window(pd.Timedelta(window).total_seconds())
    report = collect_node_metrics(url, START, END, STEP, output, config, progress=False)
    assert report.warnings == (), report.warnings
    truth = step_truth(read_node_metrics(dataset.node_metrics))
    return errors_p90(read_node_metrics(output), truth) | {
        "nodes": len(report.nodes),
        "series": report.series,
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shipped_queries_reproduce_a_five_minute_history_in_every_layout(
    history, servers, tmp_path, layout
):
    errors = layout_errors(history, servers[layout], tmp_path / "collected")
    print(
        f"\n{layout}: cpu p90 {errors[CPU_UTILIZATION]:.4f}, "
        f"memory p90 {errors[MEMORY_UTILIZATION]:.4f} over {errors['rows']} rows"
    )
    assert scrape_interval_seconds(connect(servers[layout])) == 30  # from the targets API
    assert errors["nodes"] == NODES
    assert set(errors["series"].values()) == {NODES}, errors["series"]
    assert errors["rows"] >= 0.95 * NODES * 288
    assert errors[CPU_UTILIZATION] <= ERROR_P90
    assert errors[MEMORY_UTILIZATION] <= ERROR_P90


def test_a_window_of_four_steps_smooths_what_the_step_window_reads_exactly(
    history, servers, tmp_path
):
    """The former automatic window, max(4 x step, 2m), read 20 minutes at a 5-minute step."""
    smoothed = layout_errors(history, servers["instance-port"], tmp_path / "c", window="20m")
    print(f"\ninstance-port with a 20m window: cpu p90 {smoothed[CPU_UTILIZATION]:.4f}")
    assert smoothed[CPU_UTILIZATION] > 3 * ERROR_P90


def test_prometheus_killed_mid_collection_ends_with_one_clear_line(history, tmp_path):
    """``mlsched collect`` under many parallel requests when Prometheus dies: one error
    line (exit 2), no abort from threads torn down at exit, and no output written."""
    with served(history, "both", tmp_path) as url:
        # Just started, it lists no target yet: the interval comes from its loaded config.
        assert scrape_interval_seconds(connect(url)) == 30
        pid = int((tmp_path / "prometheus.pid").read_text())
        output = tmp_path / "collected"
        command = [
            sys.executable,
            "-m",
            "components.cli",
            "collect",
            "--prometheus",
            url,
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--step",
            "30s",
            "--chunk-points",
            "5",
            "--workers",
            "8",
            "--attempts",
            "2",
            "--quiet",
            "--output",
            str(output),
        ]
        run = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(2.0)
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 2, (stdout, stderr)  # a user-facing error
    assert "terminate called" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlsched"), stderr
    assert url in lines[0]
    assert not output.exists()


def test_a_cpu_query_by_instance_alone_names_other_nodes_than_memory(servers, tmp_path):
    """What the shipped CPU query did before it kept ``node``: where node_exporter carries both
    labels, CPU named nodes by IP and memory by name, and the run stopped."""
    text = default_config_text().replace("avg by (node, instance)", "avg by (instance)")
    config = parse_collect_config(text.replace("node_addresses: kube_node_info\n", ""))
    with pytest.raises(MlschedError, match="have no name in common"):
        collect_node_metrics(
            servers["both"], START, END, STEP, tmp_path / "c", config, progress=False
        )
