"""Node-metrics history as OpenMetrics text in node_exporter and kube-state-metrics names.

``promtool tsdb create-blocks-from openmetrics`` turns the file into TSDB blocks, so the history can
be queried with real PromQL (``rate`` over counters, staleness, gaps) like a live cluster's.

What is written, per node:
    node_exporter (``instance="<node>:9100"``, ``job="node-exporter"``, at the node's scrapes):
        ``node_cpu_seconds_total{cpu, mode}`` counters for a few CPUs and the modes idle, user and
        system, so that ``1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[W]))``
        gives back ``cpu_utilization``; ``node_memory_MemTotal_bytes`` and
        ``node_memory_MemAvailable_bytes``; ``node_network_receive_bytes_total{device="eth0"}``.
    kube-state-metrics (``node="<node>"``, ``job="kube-state-metrics"``, every ``ksm_step``):
        ``kube_node_status_allocatable{resource, unit}`` and, per pod that ran on the node,
        ``kube_pod_container_resource_requests{namespace, pod, container, node, resource, unit}``.

``layout`` names nodes on the node_exporter series as the clusters ``mlsched collect`` supports do:
    ``instance-port`` (the default above), ``instance-name`` (``instance="<node>"``, as
    kube-prometheus-stack relabels it), ``node`` (``node="<node>"`` alone), ``both``
    (``instance="<ip>:9100"`` and ``node="<node>"``) and ``ip`` (``instance="<ip>:9100"`` alone);
    the last two add kube-state-metrics' ``kube_node_info{node, internal_ip}``.

A node's ``cpu_utilization`` at a scrape is its mean over the interval since the previous scrape,
so counters grow by ``(1 - u) * dt`` (idle) and ``u * dt`` (busy) across gaps too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from components.atomic import replace_path
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP

CPU_MODES = {"idle": None, "user": 0.8, "system": 0.2}
NODE_EXPORTER_JOB = "node-exporter"
KSM_JOB = "kube-state-metrics"
KSM_INSTANCE = "kube-state-metrics:8080"
LAYOUTS = ("instance-port", "instance-name", "node", "both", "ip")
EXPORTER_PORT = 9100


def _labels(**labels: str) -> str:
    return ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))


def node_address(index: int) -> str:
    """The internal IP of the ``index``-th node in the ``both`` and ``ip`` layouts."""
    return f"10.1.{index // 250}.{index % 250 + 1}"


def _exporter_target(layout: str, node: str, index: int) -> dict[str, str]:
    """The labels that name ``node`` on its node_exporter series in ``layout``."""
    address = f"{node_address(index)}:{EXPORTER_PORT}"
    return {
        "instance-port": {"instance": f"{node}:{EXPORTER_PORT}"},
        "instance-name": {"instance": node},
        "node": {"node": node},
        "both": {"instance": address, "node": node},
        "ip": {"instance": address},
    }[layout]


def _series(out: TextIO, name: str, labels: str, values: np.ndarray, seconds: np.ndarray, fmt: str):
    np.savetxt(out, np.column_stack([values, seconds]), fmt=f"{name}{{{labels}}} {fmt} %d")
    return len(values)


class _Family:
    """Writes a metric family's descriptor once, before its first sample."""

    def __init__(self, out: TextIO, name: str, kind: str, help_text: str):
        self.out, self.name, self.kind, self.help_text = out, name, kind, help_text

    def __enter__(self):
        family = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        self.out.write(f"# HELP {family} {self.help_text}\n# TYPE {family} {self.kind}\n")
        return self

    def __exit__(self, *exc):
        return False


def write_openmetrics(
    metrics: pd.DataFrame,
    nodes: pd.DataFrame,
    node_pods: pd.DataFrame,
    path: str | os.PathLike,
    *,
    ksm_step_seconds: int = 120,
    cpus_per_node: int = 2,
    layout: str = "instance-port",
) -> int:
    """Write the OpenMetrics file atomically and return the number of samples in it.

    Args:
        metrics: node metrics (contract table; ``network_receive_bytes_per_second`` optional).
        nodes: the nodes table (capacities for the gauges and allocatable).
        node_pods: pods that ran on the nodes: ``pod, node, namespace, start, end,
            cpu_request_cores, memory_request_bytes``.
        path: where to write.
        ksm_step_seconds: scrape interval of the kube-state-metrics series.
        cpus_per_node: how many ``cpu`` label values to write per node (each carries the node's
            utilisation; a few keep the sample count sane).
        layout: how node_exporter series name their node, one of ``LAYOUTS`` (module docstring).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    capacity = nodes.set_index(NODE)
    by_node = {name: frame for name, frame in metrics.groupby(NODE, sort=True)}
    unknown = sorted(set(by_node) - set(capacity.index))
    if unknown:
        raise ValueError(f"nodes missing from the nodes table: {', '.join(unknown[:5])}")
    seconds = {
        n: f[TIMESTAMP].to_numpy("datetime64[ns]").astype(np.int64) // 10**9
        for n, f in by_node.items()
    }
    start = min(int(s[0]) for s in seconds.values())
    end = max(int(s[-1]) for s in seconds.values()) + 1
    samples = []
    position = {name: index for index, name in enumerate(capacity.index)}
    targets = {n: _exporter_target(layout, n, position[n]) for n in by_node}
    addresses = (
        {n: node_address(i) for n, i in position.items()} if layout in ("both", "ip") else {}
    )

    def write(tmp: Path) -> None:
        with open(tmp, "w") as out:
            samples.append(_node_exporter(out, by_node, seconds, capacity, cpus_per_node, targets))
            samples.append(
                _kube_state_metrics(
                    out, capacity, node_pods, start, end, ksm_step_seconds, addresses
                )
            )
            out.write("# EOF\n")

    replace_path(path, write)
    return sum(samples)


def _intervals(stamps: np.ndarray) -> np.ndarray:
    return np.diff(stamps, prepend=stamps[0]).astype(float)


def _node_exporter(out, by_node, seconds, capacity, cpus_per_node, targets) -> int:
    written = 0
    with _Family(out, "node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode."):
        for index, (node, frame) in enumerate(by_node.items()):
            dt = _intervals(seconds[node])
            busy = frame[CPU_UTILIZATION].to_numpy()
            origin = 50_000.0 + 1_000.0 * index
            for mode, share in CPU_MODES.items():
                rate = (1 - busy) if share is None else busy * share
                counter = origin + np.cumsum(rate * dt)
                for cpu in range(cpus_per_node):
                    labels = _labels(
                        cpu=str(cpu), job=NODE_EXPORTER_JOB, mode=mode, **targets[node]
                    )
                    written += _series(
                        out, "node_cpu_seconds_total", labels, counter, seconds[node], "%.3f"
                    )
    for name, help_text in (
        ("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes."),
        ("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes."),
    ):
        with _Family(out, name, "gauge", help_text):
            for node, frame in by_node.items():
                total = float(capacity.loc[node, "memory_bytes"])
                if name.endswith("MemTotal_bytes"):
                    values = np.full(len(frame), total)
                else:
                    values = np.round((1 - frame[MEMORY_UTILIZATION].to_numpy()) * total)
                labels = _labels(job=NODE_EXPORTER_JOB, **targets[node])
                written += _series(out, name, labels, values, seconds[node], "%d")
    network = "network_receive_bytes_per_second"
    if all(network in frame for frame in by_node.values()):
        name = "node_network_receive_bytes_total"
        with _Family(out, name, "counter", "Network device statistic receive_bytes."):
            for node, frame in by_node.items():
                received = np.nan_to_num(frame[network].to_numpy()) * _intervals(seconds[node])
                counter = 1e9 + np.cumsum(received)
                labels = _labels(device="eth0", job=NODE_EXPORTER_JOB, **targets[node])
                written += _series(out, name, labels, counter, seconds[node], "%d")
    return written


def _ksm_grid(start: int, end: int, step: int) -> np.ndarray:
    first = -(-start // step) * step
    return np.arange(first, end, step, dtype=np.int64)


def _kube_state_metrics(out, capacity, node_pods, start, end, step, addresses) -> int:
    written = 0
    grid = _ksm_grid(start, end, step)
    if addresses:
        with _Family(out, "kube_node_info", "gauge", "Information about a cluster node."):
            for node, address in addresses.items():
                labels = _labels(instance=KSM_INSTANCE, internal_ip=address, job=KSM_JOB, node=node)
                written += _series(out, "kube_node_info", labels, np.ones(len(grid)), grid, "%d")
    resources = (("cpu", "core", "cpu_cores", "%.3f"), ("memory", "byte", "memory_bytes", "%d"))
    gpu_nodes = capacity.index[capacity["gpus"] > 0] if "gpus" in capacity else []
    with _Family(out, "kube_node_status_allocatable", "gauge", "The allocatable for a node."):
        for resource, unit, column, fmt in resources:
            for node in capacity.index:
                labels = _labels(
                    instance=KSM_INSTANCE, job=KSM_JOB, node=node, resource=resource, unit=unit
                )
                values = np.full(len(grid), float(capacity.loc[node, column]))
                written += _series(out, "kube_node_status_allocatable", labels, values, grid, fmt)
        for node in gpu_nodes:
            labels = _labels(
                instance=KSM_INSTANCE,
                job=KSM_JOB,
                node=node,
                resource="nvidia_com_gpu",
                unit="integer",
            )
            values = np.full(len(grid), float(capacity.loc[node, "gpus"]))
            written += _series(out, "kube_node_status_allocatable", labels, values, grid, "%d")
    name = "kube_pod_container_resource_requests"
    pods = node_pods.sort_values([NODE, "pod"])
    pod_start = pods["start"].to_numpy("datetime64[ns]").astype(np.int64) // 10**9
    pod_end = pods["end"].to_numpy("datetime64[ns]").astype(np.int64) // 10**9
    with _Family(out, name, "gauge", "The number of requested request resource by a container."):
        for resource, unit, column, fmt in (
            ("cpu", "core", "cpu_request_cores", "%.3f"),
            ("memory", "byte", "memory_request_bytes", "%d"),
        ):
            requests = pods[column].to_numpy()
            lo = np.searchsorted(grid, pod_start, side="left")
            hi = np.searchsorted(grid, pod_end, side="left")
            for i, pod in enumerate(pods.itertuples(index=False)):
                stamps = grid[lo[i] : hi[i]]
                if len(stamps) == 0:
                    stamps = np.array([pod_start[i]])
                labels = _labels(
                    container="main",
                    instance=KSM_INSTANCE,
                    job=KSM_JOB,
                    namespace=pod.namespace,
                    node=pod.node,
                    pod=pod.pod,
                    resource=resource,
                    unit=unit,
                )
                values = np.full(len(stamps), requests[i])
                written += _series(out, name, labels, values, stamps, fmt)
    return written
