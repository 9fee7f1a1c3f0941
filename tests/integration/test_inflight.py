"""The herding burst (issue 15): 20 replicas of one ReplicaSet (2 cores, 4 GiB each) prioritized
one after another over HTTP by the real extender app (every node a candidate, as in the
issue's reproduction), with no node state refresh between calls,
on a 12-node synthetic cluster; each call's top node is the placement.

With the ledger of pods in flight the burst spreads at least as evenly as kube-scheduler's
LeastAllocated does from requests alone (computed here with ``kube_scores``); without it every
replica sees the same coolest node (herding)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import requests

from components.placement.kube_scores import least_allocated_scores
from scheduler_client.cli import STAND_IN, ExtenderOptions, build_extender_app
from scheduler_client.server import build_uvicorn_server
from tests.support.node_state import synthetic_node_state

GIB = 2**30
REPLICAS, POD_CPU, POD_MEMORY = 20, 2.0, 4 * GIB


@dataclass(frozen=True)
class Cluster:
    snapshot: str
    nodes_csv: str
    nodes: pd.DataFrame
    requested_cpu: np.ndarray
    requested_memory: np.ndarray


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    folder = tmp_path_factory.mktemp("burst")
    snapshot, nodes = synthetic_node_state(12)
    # the latest features a scrape ago, as a live online store holds them
    snapshot["timestamp"] = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=30)
    snapshot.to_parquet(folder / "snapshot.parquet")
    nodes.to_csv(folder / "nodes.csv", index=False)
    state = snapshot.reindex(nodes["node"])
    return Cluster(
        str(folder / "snapshot.parquet"),
        str(folder / "nodes.csv"),
        nodes,
        state["cpu_requested_ratio"].to_numpy() * nodes["cpu_cores"].to_numpy(),
        state["memory_requested_ratio"].to_numpy() * nodes["memory_bytes"].to_numpy(),
    )


def replica(i: int) -> dict:
    return {
        "metadata": {
            "name": f"web-5d8f7-{i:05d}",
            "namespace": "shop",
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f7", "controller": True}],
        },
        "spec": {
            "containers": [
                {"name": "web", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}
            ]
        },
    }


def least_allocated_burst(cluster: Cluster) -> Counter:
    """Where LeastAllocated puts the replicas from requests alone."""
    placed: Counter = Counter()
    ties = np.random.default_rng(0)
    names = cluster.nodes["node"].tolist()
    for _ in range(REPLICAS):
        count = np.array([placed[name] for name in names], dtype=np.float64)
        scores = least_allocated_scores(
            cluster.nodes["cpu_cores"].to_numpy(),
            cluster.nodes["memory_bytes"].to_numpy(),
            cluster.requested_cpu + count * POD_CPU,
            cluster.requested_memory + count * POD_MEMORY,
            POD_CPU,
            POD_MEMORY,
        )
        placed[select_host(dict(zip(names, scores.tolist(), strict=True)), ties)] += 1
    return placed


def select_host(scores: dict[str, int], ties: np.random.Generator) -> str:
    """kube-scheduler's selectHost: one of the best-scored nodes, uniformly at random."""
    best = max(scores.values())
    return str(ties.choice([host for host, score in scores.items() if score == best]))


@contextmanager
def serving(options: ExtenderOptions) -> Iterator[tuple[str, object]]:
    app = build_extender_app(options)
    server = build_uvicorn_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and app.extender.cache.refreshes):
        assert time.monotonic() < deadline and thread.is_alive(), "the extender did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/scheduler", app
    finally:
        server.should_exit = True
        thread.join(10)


def burst(cluster: Cluster, options: ExtenderOptions) -> tuple[Counter, set[str], int]:
    """(Replicas per node, the decision modes, how many different answers) of the burst through
    a served extender."""
    placed: Counter = Counter()
    answers = set()
    names = cluster.nodes["node"].tolist()
    ties = np.random.default_rng(0)
    with serving(options) as (url, app), requests.Session() as session:
        for i in range(REPLICAS):
            body = {"Pod": replica(i), "NodeNames": names}
            answer = session.post(f"{url}/prioritize", json=body, timeout=10)
            answer.raise_for_status()
            scores = {entry["Host"]: entry["Score"] for entry in answer.json()}
            answers.add(tuple(scores.items()))
            placed[select_host(scores, ties)] += 1
        assert app.extender.cache.refreshes == 1, "the node state was refreshed during the burst"
        modes = {labels[1] for labels in _decision_labels(app)}
    return placed, modes, len(answers)


def _decision_labels(app) -> list[tuple[str, ...]]:
    family = app.extender.metrics.decisions
    return [key for key, child in family._metrics.items() if child._value.get() > 0]


@pytest.mark.parametrize("predictors", [STAND_IN, None], ids=["ml", "fallback"])
def test_the_ledger_spreads_a_burst_like_least_allocated_and_without_it_the_burst_herds(
    cluster, predictors
):
    reference = least_allocated_burst(cluster)
    options = ExtenderOptions(
        predictors=predictors,
        nodes=cluster.nodes_csv,
        snapshot=cluster.snapshot,
        pod_scorer="none",
        refresh_seconds=3600.0,
    )
    with_ledger, modes, _ = burst(cluster, options)
    without, _, answers = burst(cluster, ExtenderOptions(**{**options.__dict__, "inflight": False}))
    assert modes == {"ml" if predictors else "fallback"}
    most = {
        name: max(counts.values())
        for name, counts in (("kube", reference), ("ledger", with_ledger), ("none", without))
    }
    print(
        f"largest share of the burst on one node ({predictors or 'fallback'}): "
        + ", ".join(f"{name} {count / REPLICAS:.0%}" for name, count in most.items())
    )
    assert sum(with_ledger.values()) == sum(without.values()) == REPLICAS
    assert most["ledger"] <= most["kube"]
    # without it, every replica got the same answer: the burst herds onto its best nodes
    assert answers == 1
    assert most["none"] > max(most["kube"], most["ledger"])
