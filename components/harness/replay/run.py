"""One replay of a day of pod arrivals through the extender, beside the simulator's baselines.

:func:`run_replay` replays the day's pods in the placement simulator with
:class:`~.extender_policy.ExtenderPolicy` (every placement asked of the running
extender over HTTP, the node state it reads from the Feast online store kept up to date from the
simulated cluster), reads the
extender's ``/metrics`` counters before and after, replays the same day with the baselines
(``kube-default``, ``random``), and builds the report: placements, pods pending and never placed,
the fallback rate, client-side latency P50/P99 of the HTTP calls, overload node-minutes of each
run (the replay's also recomputed from its assignment log).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from components.atomic import replace_path
from components.errors import MlschedError
from components.features.feast_store import open_feature_store
from components.harness.replay import prometheus
from components.harness.replay.extender_policy import ExtenderPolicy, SnapshotSync
from components.harness.replay.snapshot import (
    NodeMetricsRecorder,
    SnapshotWriter,
    empty_cluster_snapshot,
)
from components.placement.policy import make_policy
from components.placement.simulator import SimulationConfig, SimulationResult, simulate
from components.placement.workload import Cluster, Workload
from scheduler_client.client import ExtenderClient

DAY_SECONDS = 86_400
DEFAULT_BASELINES = ("kube-default", "random")
LAST_DAY = "last"
REPLAY_POLICY = "extender"


def day_window(workload: Workload, day: int | str) -> Workload:
    """Day ``day`` (1 = the first, ``"last"`` = the last) of the workload: pods alive at its
    start arrive at its first step (see :meth:`Workload.window`).

    Raises:
        MlschedError: when the workload has no such day.
    """
    per_day = max(1, DAY_SECONDS // workload.step_seconds)
    days = -(-workload.n_steps // per_day)
    if day == LAST_DAY:
        day = days
    if not isinstance(day, int) or not 1 <= day <= days:
        raise MlschedError(f"--day {day}: the workload has {days} day(s) (1..{days} or last)")
    return workload.window((day - 1) * per_day, day * per_day)


def overload_from_assignments(
    workload: Workload,
    cluster: Cluster,
    assignments: pd.DataFrame,
    config: SimulationConfig | None = None,
) -> dict[str, float]:
    """Overload node-minutes recomputed from an assignment log (``pod``, ``node``,
    ``placed_time``): each placed pod runs its recorded life from its placement step.

    Raises:
        MlschedError: for a pod or node the workload or cluster does not know.
    """
    config = config or SimulationConfig()
    pod_index = {str(name): i for i, name in enumerate(workload.pods)}
    node_index = {name: i for i, name in enumerate(cluster.nodes)}
    cpu = np.zeros((workload.n_steps, len(cluster.nodes)))
    memory = np.zeros_like(cpu)
    placed = assignments[assignments["node"].astype(str) != ""]
    for row in placed.itertuples(index=False):
        if row.pod not in pod_index or row.node not in node_index:
            raise MlschedError(f"assignment log: unknown pod {row.pod!r} or node {row.node!r}")
        pod, node = pod_index[row.pod], node_index[row.node]
        seconds = (pd.Timestamp(row.placed_time) - workload.start).total_seconds()
        first = int(round(seconds / workload.step_seconds))
        last = min(first + int(workload.length[pod]), workload.n_steps)
        rows = workload.offset[pod] + np.arange(last - first)
        cpu[first:last, node] += workload.cpu_usage[rows]
        memory[first:last, node] += workload.memory_usage[rows]
    over = (cpu / cluster.cpu_cores > config.cpu_overload) | (
        memory / cluster.memory_bytes > config.memory_overload
    )
    minutes = workload.step_seconds / 60.0
    return {
        "overload_node_minutes": float(over.sum() * minutes),
        "placements": int(len(placed)),
    }


def latency_summary(milliseconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, P50, P90, P99, mean and max of call latencies (ms)."""
    values = np.asarray(milliseconds, dtype=np.float64)
    if len(values) == 0:
        return {"calls": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "calls": int(len(values)),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(values.mean()),
        "max_ms": float(values.max()),
    }


@dataclass
class ReplayResult:
    """The report and the simulator's results (the replay's under ``extender``)."""

    report: dict
    results: dict[str, SimulationResult]
    decisions: pd.DataFrame


def _health(base: str, session: requests.Session, timeout: float) -> dict:
    url = f"{base}/healthz"
    try:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as error:
        raise MlschedError(f"extender {url}: not reachable ({error})") from None


def _pick(metrics: dict, names: Sequence[str]) -> dict:
    return {name: metrics[name] for name in names if name in metrics}


SUMMARY_METRICS = (
    "overload_node_minutes",
    "pods_pending",
    "pods_never_placed",
    "mean_pending_minutes",
    "max_pending_minutes",
    "mean_cpu_utilization_nonempty",
    "mean_nodes_used",
    "load_imbalance",
    "throttled_pod_steps",
    "simulation_seconds",
)


def run_replay(
    workload: Workload,
    cluster: Cluster,
    extender_url: str,
    *,
    url_prefix: str = "/scheduler",
    token: str | None = None,
    timeout_seconds: float = 5.0,
    feast_home: str | os.PathLike | None = None,
    snapshot_every: int = 15,
    sync_timeout_seconds: float | None = 5.0,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    seed: int = 0,
    config: SimulationConfig | None = None,
    session: requests.Session | None = None,
    progress: bool = False,
) -> ReplayResult:
    """Replay ``workload`` through the extender at ``extender_url`` and beside ``baselines``.

    Args:
        workload, cluster: the replay (e.g. :func:`day_window` of a trace) and the nodes.
        extender_url: ``http(s)://host:port`` of a running extender that knows the nodes
            (its ``--nodes``) and, with ``feast_home``, reads that Feast store (its
            ``--feast-repo``).
        feast_home: the applied Feast store (registry and online store folder,
            :func:`~components.features.feast_store.open_feature_store`) to write the simulated
            cluster's node state into, stamped with the simulated time (first the empty cluster,
            then every ``snapshot_every`` steps); None writes none.
        sync_timeout_seconds: after each write, wait up to this long (before the next pod is
            scored) for the extender to re-read the state; None does not wait.
        baselines: registered policies replayed on the same day in the simulator.

    Returns:
        The report, the simulator results and the per-pod decision log.

    Raises:
        MlschedError: when the extender is not reachable or nothing was applied at
            ``feast_home``.
    """
    config = config or SimulationConfig()
    session = session or requests.Session()
    base = extender_url.rstrip("/")
    store = None if feast_home is None else open_feature_store(feast_home)
    health_before = _health(base, session, timeout_seconds)
    client = ExtenderClient(
        base, url_prefix=url_prefix, token=token, timeout_seconds=timeout_seconds, session=session
    )
    writer = sync = None
    if store is not None:
        writer = SnapshotWriter(store, NodeMetricsRecorder(cluster.nodes), workload.step_seconds)
        start = empty_cluster_snapshot(cluster.nodes, workload.start, workload.step_seconds)
        writer.publish(start, workload.start)
        if sync_timeout_seconds is not None:
            sync = SnapshotSync(base, timeout_seconds=sync_timeout_seconds, session=session)
            sync.wait(sync.mark())
    policy = ExtenderPolicy(
        client,
        start=workload.start,
        step_seconds=workload.step_seconds,
        snapshot=writer,
        snapshot_every=snapshot_every,
        sync=sync,
    )
    counters_before = prometheus.scrape_counters(base, session=session)
    began = time.perf_counter()
    replayed = simulate(workload, cluster, policy, seed=seed, config=config, progress=progress)
    replay_seconds = time.perf_counter() - began
    try:
        counters_after = prometheus.scrape_counters(base, session=session)
        health_after = _health(base, session, timeout_seconds)
    except MlschedError as error:  # the extender went away during the replay
        counters_after, health_after = None, {"error": str(error)}

    results: dict[str, SimulationResult] = {REPLAY_POLICY: replayed}
    for name in dict.fromkeys(baselines):
        results[name] = simulate(
            workload, cluster, make_policy(name), seed=seed, config=config, progress=progress
        )

    counters = policy.counters
    decisions = pd.DataFrame([asdict(d) for d in counters.decisions])
    over_http = int(decisions["over_http"].sum()) if len(decisions) else 0
    assignments = replayed.assignments
    placed = assignments[assignments["node"] != ""]
    on_top = 0
    if len(decisions):
        top = dict(zip(decisions["pod"], decisions["top_nodes"], strict=True))
        on_top = int(
            sum(
                node in top.get(pod, ())
                for pod, node in zip(placed["pod"], placed["node"], strict=True)
            )
        )
    per_pod = [
        (d.filter_ms or 0.0) + (d.prioritize_ms or 0.0) for d in counters.decisions if d.over_http
    ]
    recomputed = overload_from_assignments(workload, cluster, assignments, config)
    fallback = None
    if counters_after is not None:
        delta = prometheus.counter_delta(counters_before, counters_after)
        fallback = prometheus.fallback_summary(delta)
    metrics = replayed.metrics
    report = {
        "extender": {
            "url": base,
            "url_prefix": url_prefix,
            "health_before": health_before,
            "health_after": health_after,
        },
        "window": {
            "start": workload.start.isoformat(),
            "steps": int(workload.n_steps),
            "step_seconds": int(workload.step_seconds),
            "pods": int(workload.n_pods),
            "nodes": len(cluster.nodes),
        },
        "seed": seed,
        "replay": {
            "placements": int(len(placed)),
            "pods": int(workload.n_pods),
            "pods_pending": int(metrics["pods_pending"]),
            "pods_never_placed": int(metrics["pods_never_placed"]),
            "decided_over_http": over_http,
            "http_errors": counters.http_errors,
            "filter_passed_none": counters.all_filtered_out,
            "placed_on_top_scored_node": on_top,
            "nodes_filtered_out": int(decisions["filtered_out"].sum()) if len(decisions) else 0,
            "fallback_rate": None if fallback is None else fallback["prioritize"]["fallback_rate"],
            "extender_counters": fallback,
            "latency": {
                "filter": latency_summary(counters.filter_ms),
                "prioritize": latency_summary(counters.prioritize_ms),
                "per_pod": latency_summary(per_pod),
            },
            "snapshots": {
                "feast_home": None if feast_home is None else str(Path(feast_home).resolve()),
                "every_steps": snapshot_every if writer is not None else None,
                "written": 0 if writer is None else writer.writes,
                "mean_write_seconds": (
                    float(np.mean(writer.seconds))
                    if writer is not None and writer.seconds
                    else None
                ),
                "sync_waits": 0 if sync is None else len(sync.waits),
                "sync_timeouts": 0 if sync is None else sync.timeouts,
                "mean_sync_wait_seconds": (
                    float(np.mean(sync.waits)) if sync is not None and sync.waits else None
                ),
            },
            "overload_node_minutes_recomputed": recomputed["overload_node_minutes"],
            "replay_seconds": replay_seconds,
        },
        "policies": {name: _pick(r.metrics, SUMMARY_METRICS) for name, r in results.items()},
    }
    return ReplayResult(report, results, decisions)


def write_outputs(result: ReplayResult, output: str | os.PathLike) -> dict[str, Path]:
    """The report JSON at ``output``, the assignment log (every run, a ``policy`` column) and
    the replay's per-pod decision log as CSVs beside it."""
    report_path = Path(output)
    if report_path.suffix.lower() != ".json":
        report_path = report_path / "report.json"
    stem = report_path.with_suffix("")
    paths = {
        "report": report_path,
        "assignments": stem.with_name(f"{stem.name}_assignments.csv"),
        "decisions": stem.with_name(f"{stem.name}_decisions.csv"),
    }
    log = pd.concat(
        [r.assignments.assign(policy=name) for name, r in result.results.items()],
        ignore_index=True,
    )
    decisions = result.decisions.copy()
    if "top_nodes" in decisions:
        decisions["top_nodes"] = decisions["top_nodes"].map(" ".join)
    report = {
        **result.report,
        "assignment_log": paths["assignments"].name,
        "decision_log": paths["decisions"].name,
    }
    replace_path(paths["assignments"], lambda p: log.to_csv(p, index=False))
    replace_path(paths["decisions"], lambda p: decisions.to_csv(p, index=False))
    replace_path(
        paths["report"],
        lambda p: Path(p).write_text(json.dumps(report, indent=2, default=_json_default) + "\n"),
    )
    result.report.update(assignment_log=report["assignment_log"])
    return paths


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_summary(report: dict) -> str:
    """The replay's summary as ``metric=value`` lines and a table beside the baselines."""
    replay = report["replay"]
    latency = replay["latency"]
    rate = replay["fallback_rate"]
    lines = [
        f"placements={replay['placements']}",
        f"pods={replay['pods']}",
        f"pods_pending={replay['pods_pending']}",
        f"pods_never_placed={replay['pods_never_placed']}",
        f"decided_over_http={replay['decided_over_http']}",
        f"http_errors={replay['http_errors']}",
        f"fallback_rate={'n/a' if rate is None else f'{rate:.4f}'}",
        f"filter_latency_p50_ms={_ms(latency['filter']['p50_ms'])}",
        f"filter_latency_p99_ms={_ms(latency['filter']['p99_ms'])}",
        f"prioritize_latency_p50_ms={_ms(latency['prioritize']['p50_ms'])}",
        f"prioritize_latency_p99_ms={_ms(latency['prioritize']['p99_ms'])}",
        f"overload_node_minutes={report['policies'][REPLAY_POLICY]['overload_node_minutes']:g}",
    ]
    for name, metrics in report["policies"].items():
        if name != REPLAY_POLICY:
            key = f"overload_node_minutes_{name.replace('-', '_')}"
            lines.append(f"{key}={metrics['overload_node_minutes']:g}")
    lines.append("")
    header = f"{'policy':<14}{'overload node-min':>18}{'pending':>9}{'never placed':>14}"
    lines.append(header + f"{'mean wait min':>15}")
    for name, metrics in report["policies"].items():
        lines.append(
            f"{name:<14}{metrics['overload_node_minutes']:>18.0f}{metrics['pods_pending']:>9}"
            f"{metrics['pods_never_placed']:>14}{metrics['mean_pending_minutes']:>15.2f}"
        )
    return "\n".join(lines)
