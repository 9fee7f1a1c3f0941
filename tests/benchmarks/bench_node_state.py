"""One period of ``mlsched node-state`` at 1,000 nodes: under 5 s on this machine.

Three parts, each measured at 1,000 nodes:

* query: a real Prometheus scrapes the simulated cluster's exporter (1,000 nodes in
  node_exporter and kube-state-metrics names, a few pods each) every second for a while, then the
  loop's query (the collector's shipped queries, ``fetch_node_metrics``) asks for the last
  ``--window`` seconds at a 1 s step, as the loop does each period;
* far query: the samples the lags and seasonal leads beyond the buffer read, 2 to 7 days back
  (``NodeHistory.far_lag_ranges``, one fetch per range as ``far_samples`` does). Prometheus here
  holds only the last minute, so the same pattern of grid points (at a 30 s step: 4 points in
  30 minutes on each of 6 days) is asked of that minute at a 1 s step; beside it, the one range
  per day that the loop fetched before (every step of those 30 minutes);
* features: the latest features of every node from a full node history (26 h at a 30 s step,
  random values) and its far samples, after shifting in one period's new samples
  (``NodeHistory.add`` + ``latest_features``);
* write: those 1,000 rows into a sqlite Feast online store (``write_online_features``).

Run from the repository root: ``.venv/bin/python -m tests.benchmarks.bench_node_state``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from components.collect import FetchSettings, fetch_node_metrics, load_collect_config
from components.collect.prometheus_range import connect
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.features import definitions as d
from components.features.engineering import write_feature_table
from components.features.feast_store import apply_feature_repo, write_online_features
from components.features.live import NodeHistory
from components.harness.replay.exporter import ClusterExporter, serve_exporter
from components.harness.replay.live import free_port, start_scraping_prometheus
from components.harness.stack.processes import terminate

TARGET_SECONDS = 5.0
STEP = 30
END = 1_767_225_600


def _history(nodes: int, end: int, steps: int, rng) -> pd.DataFrame:
    seconds = np.arange(end - (steps - 1) * STEP, end + 1, STEP)
    names = np.array([f"node-{i:04d}" for i in range(nodes)], dtype=object)
    frame = pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(np.repeat(seconds, nodes), unit="s", utc=True),
            NODE: np.tile(names, len(seconds)),
        }
    )
    for column in (CPU_UTILIZATION, MEMORY_UTILIZATION, *d.EXTRA_COLUMNS):
        frame[column] = rng.uniform(0, 1, len(frame))
    return frame


def far_pattern(step: int) -> list[list[int]]:
    """Per day back, the loop's far grid points for nodes that scraped together, in steps after
    that day's first point."""
    history = NodeHistory(step)
    history.add(_history(1, END, 1, np.random.default_rng(2)))
    by_day: dict[int, list[int]] = {}
    for start, end in history.far_lag_ranges():
        for seconds in range(start, end + 1, step):
            by_day.setdefault(-(-(END - seconds) // 86_400), []).append(seconds // step)
    return [
        [point - min(points) for point in sorted(points)] for _, points in sorted(by_day.items())
    ]


def _time_fetches(client, config, ranges: list[tuple[int, int]]) -> tuple[float, int]:
    began, rows = time.perf_counter(), 0
    for start, end in ranges:  # one fetch per range, as far_samples does
        rows += len(
            fetch_node_metrics(
                client, config, [(start, end)], 1, FetchSettings(), had_rows=True
            ).frame
        )
    return time.perf_counter() - began, rows


def time_query(nodes: int, scrape_seconds: float, window: int, pods_per_node: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"node-{i:04d}" for i in range(nodes)]
    exporter = ClusterExporter(names, np.full(nodes, 16.0), np.full(nodes, 64 * 2.0**30))
    pods = {f"pod-{i}-{j}": (i, 0.5, 2.0**30) for i in range(nodes) for j in range(pods_per_node)}
    exporter.update(time.time(), rng.uniform(0, 1, nodes), rng.uniform(0, 1, nodes), pods)
    server = serve_exporter(exporter, free_port())
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_scraping_prometheus(
            Path(tmp), server.server_address[1], scrape_seconds
        )
        try:
            pattern = far_pattern(STEP)
            span = max(max(points) for points in pattern)
            time.sleep(max(window, span) + 4 * scrape_seconds + 2)
            config = load_collect_config().with_window(None, scrape_seconds)
            end = int(time.time()) - 1
            began = time.perf_counter()
            fetched = fetch_node_metrics(
                connect(url), config, [(end - window, end)], 1, FetchSettings()
            )
            seconds = time.perf_counter() - began
            first = end - span
            points = [(first + p, first + p) for day in pattern for p in day]
            far_seconds, far_rows = _time_fetches(connect(url), config, points)
            spans = [(first, first + max(day)) for day in pattern]
            spans_seconds, spans_rows = _time_fetches(connect(url), config, spans)
        finally:
            terminate(process.pid)
            process.wait()
            server.shutdown()
    frame = fetched.frame
    return {
        "seconds": seconds,
        "rows": len(frame),
        "nodes": frame[NODE].nunique(),
        "far_seconds": far_seconds,
        "far_rows": far_rows,
        "far_requests": len(points),
        "spans_seconds": spans_seconds,
        "spans_rows": spans_rows,
    }


def time_features_and_write(nodes: int) -> dict:
    rng = np.random.default_rng(1)
    end = END
    history = NodeHistory(STEP)
    steps = history.n_steps
    history.add(_history(nodes, end, steps, rng))
    new = _history(nodes, end + STEP, 1, rng)
    began = time.perf_counter()
    history.add(new)
    ranges = history.far_lag_ranges()
    features_seconds = time.perf_counter() - began
    # what the far query returns (its time is the far query's, measured above)
    points = [t for start, end in ranges for t in range(start, end + 1, STEP)]
    far = pd.concat([_history(nodes, t, 1, rng) for t in points], ignore_index=True)
    began = time.perf_counter()
    features = history.latest_features(far)
    features_seconds += time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "features.parquet"
        write_feature_table(features, table)
        store = apply_feature_repo(Path(tmp) / "feast", table)
        began = time.perf_counter()
        written = write_online_features(store, features)
        write_seconds = time.perf_counter() - began
    return {
        "history_steps": steps,
        "features_seconds": features_seconds,
        "rows": len(features),
        "write_seconds": write_seconds,
        "written": written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--scrape", type=float, default=1.0, help="scrape interval, seconds")
    parser.add_argument("--window", type=int, default=10, help="seconds of new samples queried")
    parser.add_argument("--pods-per-node", type=int, default=5)
    args = parser.parse_args()
    query = time_query(args.nodes, args.scrape, args.window, args.pods_per_node)
    print(
        f"query: {query['seconds']:.2f} s for the last {args.window} s of {query['nodes']} nodes "
        f"({query['rows']:,} rows) from a real Prometheus scraping every {args.scrape:g} s"
    )
    work = time_features_and_write(args.nodes)
    print(
        f"features: {work['features_seconds']:.2f} s for {work['rows']} nodes' latest row from "
        f"{work['history_steps']} steps of {STEP} s history (shift in + compute)"
    )
    print(f"online write: {work['write_seconds']:.2f} s for {work['written']} rows (sqlite)")
    print(
        f"far query: {query['far_seconds']:.2f} s for {query['far_requests']} grid points of "
        f"{query['nodes']} nodes ({query['far_rows']:,} rows); one range per day as before: "
        f"{query['spans_seconds']:.2f} s ({query['spans_rows']:,} rows)"
    )
    total = (
        query["seconds"] + query["far_seconds"] + work["features_seconds"] + work["write_seconds"]
    )
    verdict = "met" if total < TARGET_SECONDS else "NOT met"
    print(
        f"one period at {args.nodes} nodes: {total:.2f} s "
        f"(target < {TARGET_SECONDS:g} s: {verdict})"
    )


if __name__ == "__main__":
    main()
