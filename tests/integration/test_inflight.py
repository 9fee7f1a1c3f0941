"""The herding burst (issue 15): 20 replicas of one ReplicaSet (2 cores, 4 GiB each) prioritized
one after another over HTTP by the real extender app (every node a candidate, as in the
issue's reproduction), with no node state refresh between calls,
on a 12-node synthetic cluster; each call's top node is the placement.

With the ledger of pods in flight the burst spreads at least as evenly as kube-scheduler's
LeastAllocated does from requests alone (computed here with ``kube_scores``); without it every
replica sees the same coolest node (herding)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import requests

from components.placement.kube_scores import least_allocated_scores
from scheduler_client.cli import STAND_IN, ExtenderOptions, build_extender_app
from scheduler_client.kube import PodWatch, core_api
from scheduler_client.ledger import InflightLedger
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
    # CPU nodes only: the GPU rules (test_extender_gpu_policy.py) would keep the GPU node for
    # GPU pods, and the burst is about load
    nodes["gpus"] = 0
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
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-5d8f7",
                    "uid": "00000000-0000-4000-8000-0000000000ff",
                    "controller": True,
                }
            ],
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


def test_the_spread_term_lowers_a_node_holding_replicas_of_the_same_owner_only(cluster):
    options = ExtenderOptions(
        nodes=cluster.nodes_csv,
        snapshot=cluster.snapshot,
        pod_scorer="none",
        refresh_seconds=3600.0,
        spread_weight=3.0,
    )
    names = cluster.nodes["node"].tolist()
    other = replica(99)
    other["metadata"]["ownerReferences"][0]["uid"] = "another-replicaset"
    with serving(options) as (url, app), requests.Session() as session:

        def scores(pod: dict) -> dict[str, int]:
            answer = session.post(f"{url}/prioritize", json={"Pod": pod, "NodeNames": names})
            answer.raise_for_status()
            return {entry["Host"]: entry["Score"] for entry in answer.json()}

        first = scores(replica(0))
        held = max(first, key=first.get)  # the ledger now expects replica 0 there
        of_another = scores(other)
        app.extender.ledger.forget(other["metadata"]["uid"])
        of_the_same = scores(replica(1))
    assert of_another[held] >= 3, "pick a node whose score the term can lower in full"
    assert of_the_same == {**of_another, held: of_another[held] - 3}


# --------------------------------------------------------------------------- Kubernetes API


class KubeApi(ThreadingHTTPServer):
    """The two Kubernetes API endpoints the extender calls, as the API server answers them:
    ``POST /api/v1/namespaces/{ns}/pods/{name}/binding`` (201 and a Status; 404 for a pod
    named ``gone``) and ``GET /api/v1/pods?watch=true`` (the events in ``self.events``, one JSON
    object a line, then the stream ends)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _KubeHandler)
        self.bindings: list[tuple[str, dict]] = []
        self.watches: list[str] = []
        self.events: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _KubeHandler(BaseHTTPRequestHandler):
    server: KubeApi

    def log_message(self, *args) -> None:
        pass

    def _reply(self, code: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bindings.append((self.path, body))
        if "/pods/gone/" in self.path:
            status = {"status": "Failure", "reason": "NotFound", "code": 404}
            self._reply(404, {"kind": "Status", "apiVersion": "v1", **status})
        else:
            self._reply(
                201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
            )

    def do_GET(self) -> None:
        self.server.watches.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        for event in self.server.events:
            self.wfile.write(json.dumps(event).encode() + b"\n")
        self.close_connection = True


@pytest.fixture
def kube_api(tmp_path) -> Iterator[tuple[KubeApi, str]]:
    """(The API, a kubeconfig pointing at it)."""
    api = KubeApi()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": api.url}}],
                "users": [{"name": "extender", "user": {}}],
                "contexts": [
                    {"name": "local", "context": {"cluster": "local", "user": "extender"}}
                ],
                "current-context": "local",
            }
        )
    )
    yield api, str(kubeconfig)
    api.shutdown()
    thread.join(5)


def test_the_bind_verb_binds_through_the_kubernetes_api_and_moves_the_pod_in_the_ledger(
    cluster, kube_api
):
    api, kubeconfig = kube_api
    options = ExtenderOptions(nodes=cluster.nodes_csv, bind=True, kubeconfig=kubeconfig)
    pod = replica(1)
    metadata = pod["metadata"]
    binding = {
        "PodName": metadata["name"],
        "PodNamespace": metadata["namespace"],
        "PodUID": metadata["uid"],
        "Node": "node-07",
    }
    with serving(options) as (url, app), requests.Session() as session:
        answer = session.post(
            f"{url}/prioritize", json={"Pod": pod, "NodeNames": ["node-01", "node-02"]}
        )
        top = max(answer.json(), key=lambda entry: entry["Score"])["Host"]
        ledger = app.extender.ledger
        assert [(e.node, e.source) for e in ledger.entries()] == [(top, "prioritize")]
        answer = session.post(f"{url}/bind", json=binding)
        assert answer.status_code == 200 and answer.json() == {"Error": ""}
        assert [(e.node, e.source) for e in ledger.entries()] == [("node-07", "bind")]
        # the API refuses: the answer says why and the pod leaves the ledger
        refused = {**binding, "PodName": "gone"}
        answer = session.post(f"{url}/bind", json=refused)
        assert "binding shop/gone to node-07: HTTP 404" in answer.json()["Error"]
        assert ledger.entries() == []
        bad = session.post(f"{url}/bind", json={"PodName": "web"})
        assert bad.status_code == 200
        assert bad.json() == {
            "Error": "ExtenderBindingArgs: PodNamespace must be a non-empty string"
        }
    path, body = api.bindings[0]
    assert path == f"/api/v1/namespaces/shop/pods/{metadata['name']}/binding"
    assert body["kind"] == "Binding" and body["target"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "node-07",
    }
    assert body["metadata"]["uid"] == metadata["uid"]


def _watched(pod: dict, node: str, scheduled_at: str) -> dict:
    condition = {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled_at}
    return {
        **pod,
        "spec": {**pod["spec"], "nodeName": node},
        "status": {"phase": "Running", "conditions": [condition]},
    }


def test_the_pod_watch_records_bound_pods_and_forgets_deleted_ones(kube_api):
    api, kubeconfig = kube_api
    now = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    bound, deleted, old = replica(1), replica(2), replica(3)
    api.events = [
        {"type": "ADDED", "object": _watched(bound, "node-03", now)},
        {"type": "ADDED", "object": _watched(deleted, "node-04", now)},
        {"type": "DELETED", "object": _watched(deleted, "node-04", now)},
        {"type": "ADDED", "object": _watched(old, "node-05", "2020-01-01T00:00:00Z")},
    ]
    ledger = InflightLedger()
    watch = PodWatch(core_api(kubeconfig), ledger, retry_seconds=0.2).start()
    try:
        deadline = time.monotonic() + 20
        while watch.events < len(api.events):
            assert time.monotonic() < deadline, "the watch saw no events"
            time.sleep(0.05)
    finally:
        watch.stop()
    assert [(e.key, e.node, e.source) for e in ledger.entries()] == [
        (bound["metadata"]["uid"], "node-03", "watch")
    ]
    assert "watch=True" in api.watches[0] and "fieldSelector=spec.nodeName%21%3D" in api.watches[0]
