"""The simulated cluster on a ``/metrics`` endpoint, in node_exporter and kube-state-metrics names.

A real Prometheus scrapes it like a cluster's exporters (with ``honor_labels``, so the series keep
the ``instance``, ``job`` and ``node`` labels written here): per node the ``node_cpu_seconds_total
{cpu, mode}`` counters, growing at the node's current CPU use per wall-clock second (so
``rate()`` over any window reads the use back), ``node_memory_MemTotal_bytes`` and
``node_memory_MemAvailable_bytes``; from kube-state-metrics
``kube_node_status_allocatable{resource, unit}`` and ``kube_pod_container_resource_requests`` per
running pod. Names, jobs and the node_exporter
target (``instance="<node>:9100"``) are those of the generator's OpenMetrics export
(:mod:`components.generate.openmetrics`), so the collector's shipped queries read both alike.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from components.generate.openmetrics import (
    CPU_MODES,
    EXPORTER_PORT,
    KSM_INSTANCE,
    KSM_JOB,
    NODE_EXPORTER_JOB,
)

CPUS_PER_NODE = 2
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    return ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))


class ClusterExporter:
    """The exposition of a simulated cluster, updated by the simulator and read by scrapes.

    Args:
        nodes: node names; cpu_cores and memory_bytes: their allocatable.
    """

    def __init__(self, nodes, cpu_cores: np.ndarray, memory_bytes: np.ndarray):
        self.nodes = [str(node) for node in nodes]
        self.cpu_cores = np.asarray(cpu_cores, dtype=float)
        self.memory_bytes = np.asarray(memory_bytes, dtype=float)
        n = len(self.nodes)
        self.cpu_seconds = {mode: 50_000.0 + 1_000.0 * np.arange(n) for mode in CPU_MODES}
        self.cpu_rates = {mode: np.zeros(n) for mode in CPU_MODES}
        self.memory_available = self.memory_bytes.copy()
        self.pods: dict[str, tuple[int, float, float]] = {}  # pod -> (node, cpu, memory)
        self.updated_at: float | None = None
        self._lock = threading.Lock()

    def update(
        self,
        now: float,
        cpu_utilization: np.ndarray,
        memory_utilization: np.ndarray,
        pods: dict[str, tuple[int, float, float]],
    ) -> None:
        """The state from wall time ``now`` on: the counters grow at the new use from then."""
        busy = np.clip(np.asarray(cpu_utilization, dtype=float), 0.0, 1.0)
        with self._lock:
            self.cpu_seconds = self._counters(now)
            for mode, share in CPU_MODES.items():
                self.cpu_rates[mode] = (1.0 - busy) if share is None else busy * share
            used = np.clip(np.asarray(memory_utilization, dtype=float), 0.0, 1.0)
            self.memory_available = np.round((1.0 - used) * self.memory_bytes)
            self.pods = dict(pods)
            self.updated_at = now

    def _counters(self, now: float) -> dict[str, np.ndarray]:
        elapsed = 0.0 if self.updated_at is None else max(0.0, now - self.updated_at)
        return {mode: self.cpu_seconds[mode] + self.cpu_rates[mode] * elapsed for mode in CPU_MODES}

    def render(self, now: float) -> str:
        """The Prometheus text exposition of the state at wall time ``now``."""
        lines: list[str] = []
        with self._lock:
            cpu_seconds = self._counters(now)
            families = [
                ("node_cpu_seconds_total", "counter"),
                ("node_memory_MemTotal_bytes", "gauge"),
                ("node_memory_MemAvailable_bytes", "gauge"),
                ("kube_node_status_allocatable", "gauge"),
                ("kube_pod_container_resource_requests", "gauge"),
            ]
            samples: dict[str, list[str]] = {name: [] for name, _ in families}
            for i, node in enumerate(self.nodes):
                target = {"instance": f"{node}:{EXPORTER_PORT}", "job": NODE_EXPORTER_JOB}
                for mode in CPU_MODES:
                    for cpu in range(CPUS_PER_NODE):
                        labels = _labels(cpu=str(cpu), mode=mode, **target)
                        value = cpu_seconds[mode][i]
                        samples["node_cpu_seconds_total"].append(f"{{{labels}}} {value:.3f}")
                memory = (
                    ("node_memory_MemTotal_bytes", self.memory_bytes[i]),
                    ("node_memory_MemAvailable_bytes", self.memory_available[i]),
                )
                for name, value in memory:
                    samples[name].append(f"{{{_labels(**target)}}} {value:.0f}")
                ksm = {"instance": KSM_INSTANCE, "job": KSM_JOB, "node": node}
                for resource, unit, value in (
                    ("cpu", "core", self.cpu_cores[i]),
                    ("memory", "byte", self.memory_bytes[i]),
                ):
                    labels = _labels(resource=resource, unit=unit, **ksm)
                    samples["kube_node_status_allocatable"].append(f"{{{labels}}} {value:g}")
            for pod, (index, cpu, memory) in sorted(self.pods.items()):
                ksm = {"instance": KSM_INSTANCE, "job": KSM_JOB, "node": self.nodes[index]}
                for resource, unit, value in (("cpu", "core", cpu), ("memory", "byte", memory)):
                    labels = _labels(
                        container="main",
                        namespace="replay",
                        pod=pod,
                        resource=resource,
                        unit=unit,
                        **ksm,
                    )
                    samples["kube_pod_container_resource_requests"].append(
                        f"{{{labels}}} {value:g}"
                    )
        for name, kind in families:
            family = name.removesuffix("_total") if kind == "counter" else name
            lines.append(f"# TYPE {family} {kind}")
            lines.extend(f"{name}{sample}" for sample in samples[name])
        return "\n".join(lines) + "\n"


def serve_exporter(exporter: ClusterExporter, port: int, host: str = "127.0.0.1"):
    """Serve ``exporter`` on ``http://host:port/metrics`` from a daemon thread; returns the
    server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server interface
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = exporter.render(time.time()).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every second would flood the output
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
