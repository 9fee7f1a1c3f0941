"""The live path end to end with a real scrape, and how fresh the extender's node state is.

:func:`run_live_check` runs, for a short stretch of simulated time paced to the wall clock: the
simulator's cluster on a ``/metrics`` endpoint (:mod:`~components.harness.replay.exporter`), a
real Prometheus scraping it every ``scrape`` seconds, the node-state loop
(:mod:`components.features.live`) querying it every ``every`` seconds into a Feast online store,
an extender process reading that store every ``refresh`` and deciding every pod, and the
simulator placing the pods where the extender says. It starts all of these and stops them all.

Freshness of a decision: its wall time minus the sample time of the newest node state the
extender had surely read by then (the loop's newest write at least one refresh before the
decision), an upper bound of the state's age. The bound to meet is scrape + every + refresh (the
sample's age when the loop queries it, the loop's period, the extender's refresh).
"""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import yaml

from components.collect import FetchSettings, load_collect_config
from components.contracts import NODE, TIMESTAMP
from components.features.engineering import write_feature_table
from components.features.feast_store import apply_feature_repo, write_online_features
from components.features.live import LoopStatus, NodeHistory, prometheus_fetch, run_loop
from components.harness.replay import prometheus as counters
from components.harness.replay.exporter import ClusterExporter, serve_exporter
from components.harness.replay.extender_policy import ExtenderPolicy
from components.harness.replay.snapshot import empty_cluster_snapshot
from components.harness.stack.processes import start_process, terminate, wait_until_ready
from components.harness.stack.prometheus import prometheus_command, require_binary
from components.placement.policy import ClusterState, PodSpec, StepFeedback
from components.placement.simulator import simulate
from components.placement.workload import Cluster, Workload
from scheduler_client.client import ExtenderClient

PREDICTORS = "recent-usage"


@dataclass(frozen=True)
class LiveTiming:
    """The periods of the live path, in seconds."""

    scrape: float = 1.0
    every: float = 2.0
    refresh: float = 0.5
    seconds_per_step: float = 1.0  # wall seconds per simulated step
    margin: float = 1.0

    @property
    def bound(self) -> float:
        return self.scrape + self.every + self.refresh + self.margin


class LivePolicy(ExtenderPolicy):
    """The extender's decisions, with the simulated cluster exported and paced to the clock."""

    def __init__(self, client, workload: Workload, exporter: ClusterExporter, timing: LiveTiming):
        super().__init__(client, start=workload.start, step_seconds=workload.step_seconds)
        self.workload, self.exporter, self.timing = workload, exporter, timing
        self.index = {str(pod): i for i, pod in enumerate(workload.pods)}
        self.running: dict[str, tuple[int, float, float, int]] = {}
        self.decided_at: list[float] = []
        self.began: float | None = None

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        scores = super().score(pod, state, feasible)
        if self.counters.decisions[-1].over_http:
            self.decided_at.append(time.time())
        return scores

    def observe(self, feedback: StepFeedback, state: ClusterState) -> None:
        w = self.workload
        for pod, node in feedback.placements:
            i = self.index[pod]
            end = feedback.step + int(w.length[i])
            self.running[pod] = (node, float(w.cpu_request[i]), float(w.memory_request[i]), end)
        self.running = {p: v for p, v in self.running.items() if v[3] > feedback.step}
        now = time.time()
        pods = {pod: value[:3] for pod, value in self.running.items()}
        self.exporter.update(now, feedback.cpu_utilization, feedback.memory_utilization, pods)
        self.began = self.began or now
        due = self.began + (feedback.step + 1) * self.timing.seconds_per_step
        time.sleep(max(0.0, due - time.time()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_scraping_prometheus(
    folder: Path, exporter_port: int, scrape: float, port: int | None = None
):
    """A Prometheus in ``folder`` (on ``port``, default a free one) scraping
    ``127.0.0.1:exporter_port`` every ``scrape`` seconds (``honor_labels``); returns the process
    and its URL."""
    port = port or free_port()
    config = folder / "prometheus.yml"
    interval = f"{int(scrape * 1000)}ms"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "scrape_configs": [
                    {
                        "job_name": "simulated-cluster",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    command = prometheus_command(
        require_binary("prometheus"), config, folder / "tsdb", "127.0.0.1", port
    )
    process = start_process(
        command, log_file=folder / "prometheus.log", pid_file=folder / "prometheus.pid"
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(
        f"{url}/-/ready", 60, process, log_file=folder / "prometheus.log", name="prometheus"
    )
    return process, url


def _start_extender(folder: Path, nodes_path: Path, feast: Path, refresh: float):
    port = free_port()
    command = [sys.executable, "-m", "scheduler_client", "extender", "--port", str(port)]
    command += ["--nodes", str(nodes_path), "--feast-repo", str(feast)]
    command += ["--predictors", PREDICTORS, "--refresh", f"{int(refresh * 1000)}ms"]
    log = folder / "extender.log"
    process = start_process(command, log_file=log, pid_file=folder / "extender.pid")
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{url}/healthz", 60, process, log_file=log, name="extender")
    return process, url


def _warm_up(url: str, writes: list, refresh: float, timeout: float) -> None:
    """Until the loop's first write and two extender refreshes after it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if writes:
            time.sleep(2 * refresh + 0.2)
            if requests.get(f"{url}/healthz", timeout=2).json().get("predictions_usable"):
                return
        time.sleep(0.2)
    raise TimeoutError(f"no node state reached the extender at {url} in {timeout:.0f} s")


def freshness_seconds(decided_at, writes: list[tuple[float, float]], refresh: float):
    """Per decision, its time minus the sample time of the newest write at least ``refresh``
    before it (NaN before the first such write)."""
    written = np.array([w for w, _ in writes])
    samples = np.array([s for _, s in writes])
    ages = []
    for decided in decided_at:
        before = np.flatnonzero(written <= decided - refresh)
        ages.append(decided - samples[before].max() if len(before) else np.nan)
    return np.array(ages)


def run_live_check(
    workload: Workload,
    cluster: Cluster,
    nodes_path: Path,
    folder: Path,
    timing: LiveTiming | None = None,
    *,
    seed: int = 0,
) -> dict:
    """Run the live path for ``workload``'s steps (see the module docstring); return the
    report: decisions, freshness P50/P90/P99/max against the bound, the extender's fallback rate
    over the run, the loop's periods, failures and period times."""
    timing = timing or LiveTiming()
    feast = folder / "feast"
    for previous in (feast, folder / "tsdb"):  # a run starts from an empty store and TSDB
        shutil.rmtree(previous, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, int(round(timing.scrape)))
    table = folder / "features.parquet"
    write_feature_table(empty_cluster_snapshot(cluster.nodes, pd.Timestamp.now("UTC"), step), table)
    store = apply_feature_repo(feast, table)
    exporter = ClusterExporter(cluster.nodes, cluster.cpu_cores, cluster.memory_bytes)
    exporter_port = free_port()
    server = serve_exporter(exporter, exporter_port)
    started: list = []
    stop = threading.Event()
    writes: list[tuple[float, float]] = []
    status = LoopStatus()
    loop = None
    try:
        prometheus, prometheus_url = start_scraping_prometheus(folder, exporter_port, timing.scrape)
        started.append(prometheus)
        extender, extender_url = _start_extender(folder, nodes_path, feast, timing.refresh)
        started.append(extender)
        config = load_collect_config().with_window(None, timing.scrape)
        fetch = prometheus_fetch(prometheus_url, step, config, FetchSettings(timeout_seconds=5))

        def write(features: pd.DataFrame) -> int:
            rows = write_online_features(store, features)
            writes.append((time.time(), features[TIMESTAMP].min().value / 1e9))
            return rows

        loop = threading.Thread(
            target=run_loop,
            args=(NodeHistory(step), fetch, write, timing.every),
            kwargs={"status": status, "stopped": stop.is_set, "sleep": stop.wait},
            daemon=True,
        )
        exporter.update(time.time(), np.zeros(len(cluster.nodes)), np.zeros(len(cluster.nodes)), {})
        loop.start()
        _warm_up(extender_url, writes, timing.refresh, 60)
        before = counters.scrape_counters(extender_url)
        client = ExtenderClient(extender_url, timeout_seconds=5.0)
        policy = LivePolicy(client, workload, exporter, timing)
        result = simulate(workload, cluster, policy, seed=seed)
        after = counters.scrape_counters(extender_url)
    finally:
        stop.set()
        if loop is not None:
            loop.join(timeout=30)
        server.shutdown()
        for process in reversed(started):
            if process.poll() is None:
                terminate(process.pid)
            process.wait()
    ages = freshness_seconds(policy.decided_at, writes, timing.refresh)
    known = ages[np.isfinite(ages)]
    fallback = counters.fallback_summary(counters.counter_delta(before, after))
    quantiles = (
        {f"p{q}": float(np.percentile(known, q)) for q in (50, 90, 99)} if len(known) else {}
    )
    placed = result.assignments[result.assignments[NODE] != ""]
    return {
        "nodes": len(cluster.nodes),
        "steps": int(workload.n_steps),
        "decisions": len(policy.decided_at),
        "placements": int(len(placed)),
        "http_errors": policy.counters.http_errors,
        "fallback_rate": fallback["prioritize"]["fallback_rate"],
        "extender_counters": fallback,
        "freshness_seconds": {**quantiles, "max": float(known.max()) if len(known) else None},
        "freshness_bound_seconds": timing.bound,
        "timing": {k: getattr(timing, k) for k in ("scrape", "every", "refresh", "margin")},
        "loop": {
            "periods": status.periods,
            "failures": status.failures,
            "writes": len(writes),
            "last_period_seconds": status.last_period_seconds,
        },
    }


def format_live_report(report: dict) -> str:
    """A few lines of the report."""
    fresh = report["freshness_seconds"]
    shown = ", ".join(f"{k} {v:.2f}s" for k, v in fresh.items() if v is not None)
    return (
        f"live path: {report['decisions']} decisions on {report['nodes']} nodes over "
        f"{report['steps']} steps, fallback rate {report['fallback_rate']}\n"
        f"  sample time to decision: {shown} (bound {report['freshness_bound_seconds']:.1f}s = "
        f"scrape + loop period + refresh + margin)\n"
        f"  node-state loop: {report['loop']['periods']} periods, {report['loop']['failures']} "
        f"failed, {report['loop']['writes']} writes"
    )
