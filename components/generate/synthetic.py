"""``mlsched generate``: the project's default data set, written as one atomic folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from components.atomic import replace_path
from components.contracts import (
    write_anomaly_labels,
    write_node_metrics,
    write_nodes_table,
    write_table,
    write_workload_trace,
)
from components.generate.cluster import make_nodes, nodes_table
from components.generate.history import (
    HistoryConfig,
    NodeHistory,
    anomaly_windows,
    generate_node,
    latent_factors,
    node_metrics_frame,
)
from components.generate.openmetrics import write_openmetrics
from components.generate.workload import WorkloadConfig, generate_workload


@dataclass(frozen=True)
class SyntheticDataset:
    """Where each part of a generated data set lives under its root folder."""

    root: Path

    @property
    def node_metrics(self) -> Path:
        return self.root / "node_metrics"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes.csv"

    @property
    def anomaly_labels(self) -> Path:
        return self.root / "anomaly_labels.json"

    @property
    def anomaly_events(self) -> Path:
        return self.root / "anomaly_events.csv"

    @property
    def workload(self) -> Path:
        return self.root / "workload.parquet"

    @property
    def node_pods(self) -> Path:
        return self.root / "node_pods.parquet"

    @property
    def openmetrics(self) -> Path:
        return self.root / "prometheus_history.om"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


def _pods_table(config: HistoryConfig, histories: list[NodeHistory]) -> pd.DataFrame:
    axis = config.axis
    frames = []
    for history in histories:
        pods = history.pods
        frames.append(
            pd.DataFrame(
                {
                    "pod": pods["pod"],
                    "node": pods["node"],
                    "namespace": f"team-{history.node.role}",
                    "start": pd.to_datetime(
                        axis.start_epoch + pods["start_step"] * axis.step_seconds,
                        unit="s",
                        utc=True,
                    ),
                    "end": pd.to_datetime(
                        axis.start_epoch + pods["end_step"] * axis.step_seconds, unit="s", utc=True
                    ),
                    "cpu_request_cores": pods["cpu_request_cores"],
                    "memory_request_bytes": pods["memory_request_bytes"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def generate_synthetic_cluster(
    config: HistoryConfig,
    output: str | os.PathLike,
    *,
    workload_days: float = 2,
    workload_step_seconds: int = 60,
    openmetrics: bool = True,
    ksm_step_seconds: int = 120,
    progress: bool = True,
) -> dict:
    """Generate the synthetic cluster and write it under ``output``, replacing it only on success.

    Returns:
        The manifest written beside the data: the configuration, row counts, and timings.
    """
    timings: dict[str, float] = {}
    began = time.perf_counter()
    nodes = make_nodes(config.nodes, config.seed)
    factors = latent_factors(config)
    histories = [
        generate_node(config, node, factors)
        for node in tqdm(nodes, desc="nodes", unit="node", disable=not progress)
    ]
    metrics = node_metrics_frame(config, histories)
    labels, events = anomaly_windows(config, histories)
    table = nodes_table(nodes)
    pods = _pods_table(config, histories)
    workload_start = config.end_epoch - int(workload_days * 86_400)
    workload = generate_workload(
        WorkloadConfig(workload_start, workload_days, workload_step_seconds, config.seed), table
    )
    timings["generate_seconds"] = time.perf_counter() - began

    manifest: dict = {}

    def write(staging: Path) -> None:
        nonlocal manifest
        dataset = SyntheticDataset(staging)
        began = time.perf_counter()
        write_node_metrics(metrics, dataset.node_metrics)
        write_nodes_table(table, dataset.nodes)
        write_anomaly_labels(labels, dataset.anomaly_labels)
        write_table(events, dataset.anomaly_events)
        write_workload_trace(workload, dataset.workload)
        write_table(pods, dataset.node_pods)
        timings["write_seconds"] = time.perf_counter() - began
        samples = 0
        if openmetrics:
            began = time.perf_counter()
            samples = write_openmetrics(
                metrics, table, pods, dataset.openmetrics, ksm_step_seconds=ksm_step_seconds
            )
            timings["openmetrics_seconds"] = time.perf_counter() - began
        manifest = {
            "config": asdict(config),
            "start": pd.Timestamp(config.axis.start_epoch, unit="s", tz="UTC").isoformat(),
            "end": pd.Timestamp(config.end_epoch, unit="s", tz="UTC").isoformat(),
            "node_metrics_rows": len(metrics),
            "nodes": len(table),
            "anomalies": int(len(events)),
            "anomalies_by_kind": events["kind"].value_counts().sort_index().to_dict(),
            "workload_pods": int(workload["pod"].nunique()),
            "workload_rows": len(workload),
            "node_pods": len(pods),
            "openmetrics_samples": samples,
            "workload_days": workload_days,
            "workload_step_seconds": workload_step_seconds,
            "ksm_step_seconds": ksm_step_seconds,
            "timings": {k: round(v, 2) for k, v in timings.items()},
        }
        dataset.manifest.write_text(json.dumps(manifest, indent=2))

    replace_path(output, write, folder=True)
    return manifest
