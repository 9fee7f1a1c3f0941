"""Contract tests of the scheduler extender: the JSON of k8s.io/kube-scheduler/extender/v1 as
kube-scheduler sends and reads it (both nodeCacheCapable modes), the quantity parser, pod
requests, and the decisions (ML, fallback, staleness, shadow, rollout, circuit breaker)."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from components.errors import MlschedError
from components.placement.kube_scores import kube_default_scores
from scheduler_client.api import (
    ExtenderRequestError,
    NodeAllocatable,
    filter_error,
    filter_result,
    host_priority_list,
    parse_extender_args,
    parse_host_priority_list,
)
from scheduler_client.dqn_scorer import PER_REQUEST_COLUMNS, DQNPodScorer
from scheduler_client.extender import Extender, ScoringConfig
from scheduler_client.inventory import NodeInventory
from scheduler_client.predictions import NodePredictions, PredictionCache
from scheduler_client.quantity import QuantityError, cpu_cores, parse_quantity, whole_units
from scheduler_client.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RolloutPolicy,
    fallback_priorities,
    rollout_bucket,
)
from tests.support.standins import PolicyPodScorer, QNetworkPodScorer, StandInQNetwork

GIB = 2**30

# A pod as kube-scheduler's informer cache holds it (API-server defaults applied), serialised the
# way client-go serialises v1.Pod.
POD = {
    "metadata": {
        "name": "web-7d9f8c6b5-x2x7q",
        "generateName": "web-7d9f8c6b5-",
        "namespace": "shop",
        "uid": "6f1b1c2e-3d4a-4b5c-8d9e-0f1a2b3c4d5e",
        "resourceVersion": "481516",
        "creationTimestamp": "2026-11-25T10:00:00Z",
        "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5"},
        "annotations": {"ml-scheduler.io/horizon": "10m"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9f8c6b5",
                "uid": "a1b2c3d4-0000-4000-8000-000000000001",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": []}}],
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "250m", "memory": "512Mi"},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            },
            {
                "name": "log-shipper",
                "image": "fluent-bit:3.1",
                "resources": {"requests": {"cpu": "0.1", "memory": "64M"}},
            },
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    },
    "status": {"phase": "Pending", "qosClass": "Burstable"},
}
POD_CPU = 0.35
POD_MEMORY = 512 * 2**20 + 64_000_000


def node_object(name: str, cpu: str, memory: str, gpus: str | None = None) -> dict:
    """A v1.Node as client-go serialises it."""
    allocatable = {
        "cpu": cpu,
        "ephemeral-storage": "94318340369",
        "hugepages-2Mi": "0",
        "memory": memory,
        "pods": "110",
    }
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1001",
            "creationTimestamp": "2026-11-01T00:00:00Z",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "capacity": {**allocatable, "cpu": "8", "memory": "32863280Ki"},
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2026-11-25T09:59:00Z",
                    "lastTransitionTime": "2026-11-01T00:01:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": "v1.31.2", "architecture": "amd64"},
            "images": [{"names": ["nginx:1.27"], "sizeBytes": 71_000_000}],
        },
    }


NODES = [
    node_object("node-a", "7910m", "31712304Ki"),
    node_object("node-b", "8", "32Gi"),
    node_object("node-c", "16", "64Gi", gpus="2"),
    node_object("node-d", "4", "16G"),
]
NAMES = [n["metadata"]["name"] for n in NODES]
FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def cache_capable_body(names=NAMES, pod=POD) -> bytes:
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": list(names)})


def full_nodes_body(nodes=NODES, pod=POD) -> bytes:
    return orjson.dumps({"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("1", Decimal(1)),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+2", Decimal(2)),
        ("100n", Decimal("1e-7")),
        ("10u", Decimal("1e-5")),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("2Ti", Decimal(2 * 2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1G", Decimal(10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1E3", Decimal(1000)),
        ("2e3", Decimal(2000)),
        ("12e-3", Decimal("0.012")),
        ("1e+2", Decimal(100)),
        (4, Decimal(4)),
        (0.5, Decimal("0.5")),
    ],
)
def test_quantity_parser_follows_kubernetes_grammar(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "1.2.3", "1Kb", "1ki", "Mi", "1e", "abc", "1mi", "--1", "0x10", None],
)
def test_quantity_parser_rejects_what_kubernetes_rejects(text):
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(text, what="cpu")


def test_quantity_units():
    assert cpu_cores("7910m") == pytest.approx(7.91)
    assert whole_units("31712304Ki") == 31712304 * 1024
    assert whole_units("1500m") == 2  # Value() rounds up
    assert isinstance(QuantityError("x"), MlschedError)


# --------------------------------------------------------------------------- requests


def test_cache_capable_request_is_parsed_from_node_names():
    args = parse_extender_args(cache_capable_body())
    assert args.node_cache_capable and args.node_names == NAMES and args.nodes is None
    assert args.pod.uid == POD["metadata"]["uid"] and args.pod.namespace == "shop"
    assert args.pod.cpu_cores == pytest.approx(POD_CPU)
    assert args.pod.memory_bytes == POD_MEMORY
    assert args.pod.horizon_seconds == 600


def test_full_nodes_request_carries_node_objects_and_allocatable():
    args = parse_extender_args(full_nodes_body())
    assert not args.node_cache_capable and args.node_names == NAMES
    assert args.nodes == NODES
    assert args.allocatable[0] == NodeAllocatable("node-a", 7.91, 31712304 * 1024, 0)
    assert args.allocatable[2] == NodeAllocatable("node-c", 16.0, 64 * GIB, 2)
    assert args.allocatable[3].memory_bytes == 16 * 10**9


def test_pod_requests_follow_kube_scheduler_rules():
    pod = copy.deepcopy(POD)
    pod["spec"]["initContainers"] = [
        {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
        {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
        {"name": "late-init", "resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}}},
    ]
    pod["spec"]["overhead"] = {"cpu": "50m", "memory": "10Mi"}
    pod["spec"]["containers"].append({"name": "limits-only", "resources": {"limits": {"cpu": "1"}}})
    args = parse_extender_args(cache_capable_body(pod=pod))
    # containers 0.25 + 0.1 + 1 (limit as request) + sidecar 0.1 = 1.45; init peak 2 (migrate);
    # max(1.45, 2) + overhead 0.05
    assert args.pod.cpu_cores == pytest.approx(2.05)
    assert args.pod.memory_bytes == max(POD_MEMORY, GIB) + 10 * 2**20
    assert args.pod.gpus == 1


def test_best_effort_pod_has_zero_requests():
    pod = {"metadata": {"name": "be"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    args = parse_extender_args(cache_capable_body(pod=pod))
    assert (args.pod.cpu_cores, args.pod.memory_bytes, args.pod.gpus) == (0.0, 0, 0)
    assert args.pod.key == "default/be"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "ExtenderArgs object"),
        (orjson.dumps({"NodeNames": ["a"]}), "Pod: missing"),
        (orjson.dumps({"Pod": "x", "NodeNames": ["a"]}), "Pod: missing"),
        (orjson.dumps({"Pod": POD, "Nodes": None, "NodeNames": None}), "neither NodeNames nor"),
        (orjson.dumps({"Pod": POD, "NodeNames": "node-a"}), "NodeNames: expected a list"),
        (orjson.dumps({"Pod": POD, "Nodes": {"items": [{"metadata": {}}]}}), "metadata.name"),
        (orjson.dumps({"Pod": POD, "Nodes": {"items": "x"}}), "Nodes.items"),
        (
            orjson.dumps({"Pod": POD, "Nodes": {"items": [{"metadata": {"name": "n"}}]}}),
            "lacks cpu or memory",
        ),
    ],
)
def test_unusable_requests_raise_a_clear_error(body, message):
    with pytest.raises(ExtenderRequestError, match=message):
        parse_extender_args(body)


def test_bad_quantity_names_the_field():
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    with pytest.raises(MlschedError, match=r"containers\[0\]\.resources\.requests\.cpu"):
        parse_extender_args(cache_capable_body(pod=pod))


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("cpu", "lots", "cpu"), ("memory", "1 Gi", "memory"), ("nvidia.com/gpu", "-", "GPUs")],
)
def test_bad_node_allocatable_names_the_node_and_field(field, value, named):
    node = copy.deepcopy(NODES[1])
    node["status"]["allocatable"][field] = value
    body = orjson.dumps({"Pod": POD, "Nodes": {"items": [NODES[0], node]}})
    with pytest.raises(MlschedError, match=rf"node 'node-b' allocatable {named}: '{value}'"):
        parse_extender_args(body)
    # the same text is still refused after a valid one went through the quantity cache
    assert parse_extender_args(full_nodes_body()).allocatable[1].name == "node-b"
    with pytest.raises(MlschedError, match=rf"allocatable {named}"):
        parse_extender_args(body)


# --------------------------------------------------------------------------- answers


def test_filter_answer_shapes_for_both_modes():
    cache_capable = filter_result(
        parse_extender_args(cache_capable_body()), [0, 2], {"node-b": "why"}
    )
    assert set(cache_capable) == FILTER_KEYS
    assert cache_capable["NodeNames"] == ["node-a", "node-c"] and cache_capable["Nodes"] is None
    assert cache_capable["FailedNodes"] == {"node-b": "why"} and cache_capable["Error"] == ""
    full = filter_result(parse_extender_args(full_nodes_body()), [1])
    assert full["NodeNames"] is None and full["Nodes"]["items"] == [NODES[1]]
    error = filter_error("boom")
    assert set(error) == FILTER_KEYS and error["Error"] == "boom"


def test_host_priority_list_shape():
    answer = orjson.loads(orjson.dumps(host_priority_list(["a", "b"], [10, 0])))
    assert answer == [{"Host": "a", "Score": 10}, {"Host": "b", "Score": 0}]
    assert parse_host_priority_list(answer) == {"a": 10, "b": 0}
    with pytest.raises(ExtenderRequestError, match="not in 0..10"):
        parse_host_priority_list([{"Host": "a", "Score": 11}])


# --------------------------------------------------------------------------- decisions


class TableSnapshot:
    """A snapshot source over a fixed frame (the shape read_node_state_snapshot returns)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.fail = False

    def __call__(self, nodes):
        if self.fail:
            raise ConnectionError("online store down")
        return self.frame.reindex(pd.Index(list(nodes), name="node"))


class ColumnPredictor:
    """Predictions read from the snapshot's own columns (p90_cpu, p90_memory, anomaly)."""

    horizons = (300.0, 900.0, 1800.0)

    def predict(self, snapshot: pd.DataFrame) -> NodePredictions:
        n = len(snapshot)
        ramp = np.array([0.0, 0.02, 0.05])
        cpu = snapshot["p90_cpu"].to_numpy()[:, None] + ramp
        memory = np.repeat(snapshot["p90_memory"].to_numpy()[:, None], 3, axis=1)
        score = snapshot["anomaly"].to_numpy(dtype=float)
        assert cpu.shape == (n, 3)
        return NodePredictions(tuple(snapshot.index), self.horizons, cpu, memory, score, score >= 1)


class Clock:
    """Seconds, monotonic and epoch alike (the snapshot's features are stamped 10 s before)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([990] * 4, unit="s", utc=True),
            "p90_cpu": [0.20, 0.50, 0.10, 0.85],
            "p90_memory": [0.30, 0.30, 0.20, 0.40],
            "anomaly": [0.1, 0.2, 1.4, 0.0],
            "cpu_requested_ratio": [0.5, 0.2, 0.1, 0.9],
            "memory_requested_ratio": [0.4, 0.2, 0.3, 0.8],
            "cpu_utilization": [0.2, 0.5, 0.1, 0.8],
            "memory_utilization": [0.3, 0.3, 0.2, 0.4],
        },
        index=pd.Index(NAMES, name="node"),
    )


def make_extender(*, predictor=True, rollout=None, pod_scorer=None, clock=None, config=None):
    clock = clock or Clock()
    inventory = NodeInventory(parse_extender_args(full_nodes_body()).allocatable)
    source = TableSnapshot(snapshot_frame())
    cache = PredictionCache(
        inventory,
        source,
        ColumnPredictor() if predictor else None,
        pod_scorer=pod_scorer,
        breaker=CircuitBreaker("predictors", clock=clock),
        clock=clock,
    )
    cache.refresh()
    extender = Extender(
        inventory, cache, config=config, rollout=rollout, pod_scorer=pod_scorer, clock=clock
    )
    return extender, source, clock


GPU_NODE_KEPT = "ml-scheduler: GPU node kept for GPU pods (nodes without GPUs are left)"


def test_ml_filter_removes_anomalous_and_overloaded_nodes():
    extender, _, _ = make_extender()
    decision = extender.filter(parse_extender_args(cache_capable_body()))
    answer = decision.body
    assert decision.mode == "ml"
    # node-c is flagged; node-d: P90 0.85 (+0.02 at the 10m horizon) + 0.35/4 cores > 0.90
    assert answer["NodeNames"] == ["node-a", "node-b"]
    assert "anomalous" in answer["FailedNodes"]["node-c"]
    assert "CPU" in answer["FailedNodes"]["node-d"] and "15m" in answer["FailedNodes"]["node-d"]


def test_ml_filter_never_removes_every_candidate():
    extender, _, _ = make_extender(config=ScoringConfig(cpu_threshold=0.05))
    answer = extender.filter(parse_extender_args(cache_capable_body())).body
    # ML fails none; the GPU rules keep node-c (2 GPUs) for GPU pods, as in every mode
    assert answer["NodeNames"] == [n for n in NAMES if n != "node-c"]
    assert answer["FailedNodes"] == {"node-c": GPU_NODE_KEPT}


def test_ml_filter_answers_with_node_objects_when_not_cache_capable():
    extender, _, _ = make_extender()
    answer = extender.filter(parse_extender_args(full_nodes_body())).body
    assert answer["NodeNames"] is None
    assert answer["Nodes"]["items"] == [NODES[0], NODES[1]]
    assert set(answer["FailedNodes"]) == {"node-c", "node-d"}


def test_ml_priorities_prefer_cool_healthy_nodes_and_match_across_modes():
    extender, _, _ = make_extender()
    names = extender.prioritize(parse_extender_args(cache_capable_body())).body
    nodes = extender.prioritize(parse_extender_args(full_nodes_body())).body
    assert names == nodes
    scores = parse_host_priority_list(names)
    assert set(scores) == set(NAMES) and all(0 <= s <= 10 for s in scores.values())
    assert scores["node-a"] > scores["node-b"] > scores["node-d"]
    assert scores["node-c"] < scores["node-a"]  # coolest, but flagged anomalous


def test_fallback_without_predictor_is_kube_default_scaled():
    extender, _, _ = make_extender(predictor=False)
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert decision.mode == "fallback" and decision.reason == "no_predictions"
    frame = snapshot_frame()
    alloc = parse_extender_args(full_nodes_body()).allocatable
    cpu = np.array([a.cpu_cores for a in alloc])
    memory = np.array([a.memory_bytes for a in alloc], dtype=float)
    requested_cpu = frame["cpu_requested_ratio"].to_numpy() * cpu
    requested_memory = frame["memory_requested_ratio"].to_numpy() * memory
    kube = kube_default_scores(
        cpu,
        memory,
        requested_cpu,
        requested_memory,
        requested_cpu,
        requested_memory,
        POD_CPU,
        POD_MEMORY,
    )
    expected = np.floor(kube / 20 + 0.5).astype(int)
    assert int(np.argmax(expected)) == 1  # node-b: 20 % CPU and memory requested
    # the GPU rules keep node-c (2 GPUs) for GPU pods: 0 for this CPU pod, the others as
    # kube-default scores them (at least 1)
    gpu_node = np.array([a.gpus > 0 for a in alloc])
    assert gpu_node.tolist() == [False, False, True, False]
    expected = np.where(gpu_node, 0, np.maximum(expected, 1))
    assert [e["Score"] for e in decision.body] == expected.tolist()
    filtered = extender.filter(parse_extender_args(cache_capable_body())).body
    assert filtered["NodeNames"] == [n for n in NAMES if n != "node-c"]
    assert filtered["FailedNodes"] == {"node-c": GPU_NODE_KEPT}


def test_fallback_priorities_hand_worked():
    # 4 cores / 8 GiB, nothing requested, pod 1 core / 2 GiB: LeastAllocated (75 + 75) / 2 = 75,
    # Balanced 100 -> 175 of 200 -> 8.75 -> 9
    scores = fallback_priorities(
        np.array([4.0]), np.array([8.0 * GIB]), np.zeros(1), np.zeros(1), 1.0, 2 * GIB
    )
    assert scores.tolist() == [9]


def test_stale_predictions_fall_back_and_recover():
    extender, source, clock = make_extender()
    source.fail = True
    clock.now += 61
    assert not extender.cache.refresh()
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert (decision.mode, decision.reason) == ("fallback", "stale")
    source.fail = False
    assert extender.cache.refresh()
    assert extender.prioritize(parse_extender_args(cache_capable_body())).mode == "ml"


def test_nodes_without_predictions_get_fallback_scores_beside_the_ml_ones():
    extender, _, _ = make_extender()
    ml = parse_host_priority_list(
        extender.prioritize(parse_extender_args(cache_capable_body())).body
    )
    extender.inventory.update([NodeAllocatable("node-new", 8.0, 32 * GIB, 0)])
    body = cache_capable_body([*NAMES, "node-new"])
    decision = extender.prioritize(parse_extender_args(body))
    assert (decision.mode, decision.reason, decision.details["fallback_nodes"]) == ("ml", None, 1)
    scores = parse_host_priority_list(decision.body)
    assert {name: scores[name] for name in NAMES} == ml
    assert min(ml.values()) <= scores["node-new"] <= max(ml.values())
    filtered = extender.filter(parse_extender_args(body)).body
    assert filtered["NodeNames"] == ["node-a", "node-b", "node-new"]


def test_unknown_nodes_get_an_answer_never_an_error(caplog):
    extender, _, _ = make_extender()
    args = parse_extender_args(cache_capable_body(["node-a", "ghost"]))
    with caplog.at_level("WARNING", logger="scheduler_client.inventory"):
        assert extender.filter(args).body["NodeNames"] == ["node-a", "ghost"]
        scores = parse_host_priority_list(extender.prioritize(args).body)
    assert set(scores) == {"node-a", "ghost"}
    assert [r.fields["node"] for r in caplog.records] == ["ghost"]  # one warning per name


def test_node_objects_update_the_inventory():
    extender, _, _ = make_extender()
    extra = node_object("node-e", "2", "4Gi")
    extender.filter(parse_extender_args(full_nodes_body([*NODES, extra])))
    assert "node-e" in extender.inventory.names()
    assert extender.inventory.view.node("node-e").cpu_cores == 2.0


def test_shadow_mode_returns_fallback_and_records_the_ml_decision():
    extender, _, _ = make_extender(rollout=RolloutPolicy(shadow=True))
    fallback, _, _ = make_extender(predictor=False)
    args = parse_extender_args(cache_capable_body())
    decision = extender.prioritize(args)
    assert decision.mode == "shadow"
    assert decision.body == fallback.prioritize(args).body
    assert decision.details["ml_top"] == "node-a" and decision.details["fallback_top"] == "node-b"
    filtered = extender.filter(args)
    assert filtered.body == fallback.filter(args).body  # the GPU rules apply in every mode
    assert filtered.body["NodeNames"] == [n for n in NAMES if n != "node-c"]
    assert set(filtered.details["ml_failed_nodes"]) == {"node-c", "node-d"}


def test_rollout_is_deterministic_by_pod_uid():
    policy = RolloutPolicy(percent=30)
    uids = [f"uid-{i}" for i in range(4000)]
    chosen = [policy.selects(uid) for uid in uids]
    assert chosen == [policy.selects(uid) for uid in uids]
    assert 0.27 < np.mean(chosen) < 0.33
    assert rollout_bucket("uid-1") == rollout_bucket("uid-1")
    assert not RolloutPolicy(percent=0).selects("x") and RolloutPolicy(percent=100).selects("x")
    extender, _, _ = make_extender(rollout=RolloutPolicy(percent=0))
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert (decision.mode, decision.reason) == ("fallback", "rollout")
    with pytest.raises(MlschedError):
        RolloutPolicy(percent=150)


def test_circuit_breaker_states():
    clock = Clock()
    breaker = CircuitBreaker("t", failure_threshold=2, reset_timeout_seconds=5, clock=clock)
    assert breaker.state is CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    clock.now += 5
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.now += 5
    assert breaker.call(lambda: 7) == 7
    assert breaker.state is CircuitState.CLOSED


def test_slow_calls_open_the_breaker():
    clock = Clock()
    breaker = CircuitBreaker("slow", failure_threshold=1, slow_call_seconds=0.05, clock=clock)

    def slow():
        clock.now += 0.1
        return 1

    assert breaker.call(slow) == 1
    assert breaker.state is CircuitState.OPEN


def test_dqn_scores_enter_the_priorities_and_a_failing_scorer_degrades():
    network = StandInQNetwork()
    extender, _, _ = make_extender(pod_scorer=QNetworkPodScorer(network))
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert decision.mode == "ml" and decision.details["dqn"] is True

    class Broken(QNetworkPodScorer):
        def q_values(self, pod, prepared, positions):
            raise TimeoutError("placement-dqn timed out")

    extender, _, _ = make_extender(pod_scorer=Broken(network))
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert decision.mode == "ml" and decision.details["dqn"] is False
    assert extender.metrics.scorer_failures._value.get() == 1


def test_the_dqn_network_scores_in_process():
    import torch

    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
    from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork

    torch.manual_seed(0)
    network = NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES))
    scorer = DQNPodScorer(network)
    extender, _, _ = make_extender(pod_scorer=scorer)
    state = extender.cache.state
    q = scorer.q_values(
        parse_extender_args(cache_capable_body()).pod, state.prepared, np.array([3, 0])
    )
    assert q.shape == (2,) and np.isfinite(q).all()
    assert state.prepared.nodes["cpu_util_p90"][0] == pytest.approx(0.25)  # forecast, 30m
    decision = extender.prioritize(parse_extender_args(cache_capable_body()))
    assert decision.mode == "ml" and decision.details["dqn"] is True


def _random_node_state(n: int, seed: int = 0):
    from components.model_contracts import NODE_STATE_COLUMNS
    from components.placement.dqn.inputs import NodeState

    rng = np.random.default_rng(seed)
    values = {name: rng.uniform(0.0, 1.3, n) for name in NODE_STATE_COLUMNS}
    values["cpu_capacity_cores"] = rng.choice([2.0, 8.0, 64.0], n)
    values["memory_capacity_bytes"] = rng.choice([4.0, 32.0, 512.0], n) * 2**30
    values["gpu_capacity"] = rng.integers(0, 4, n)
    values["gpus_requested"] = np.zeros(n, dtype=np.int64)
    values["cpu_requested_cores"] = rng.uniform(0, 1.1, n) * values["cpu_capacity_cores"]
    values["memory_requested_bytes"] = rng.uniform(0, 1.1, n) * values["memory_capacity_bytes"]
    values["pod_count"] = rng.integers(0, 40, n).astype(np.float64)
    values["cpu_pending_cores"] = rng.uniform(0, 4, n)
    values["memory_pending_bytes"] = rng.uniform(0, 2**33, n)
    return NodeState.from_columns(**values)


@pytest.mark.parametrize(
    "cpu, memory, gpus",
    [(0.0, 0.0, 0), (0.25, 2**28, 0), (48.0, 2**39, 2), (0.1, 0.0, 0), (0.0, 2**30, 1)],
)
def test_precomputed_dqn_node_features_equal_the_dqn_features(cpu, memory, gpus):
    from components.placement.dqn.inputs import (
        POD_DEPENDENT_COLUMNS,
        node_features,
        pod_dependent_features,
    )
    from components.placement.policy import PodSpec

    nodes = _random_node_state(400)
    base = node_features(nodes, PodSpec("", 0.0, 0.0, 0))
    rows = np.random.default_rng(1).permutation(400)[:250]
    subset = nodes.rows(rows)
    pod = PodSpec("p", cpu, memory, gpus)
    got = base[rows]
    got[:, POD_DEPENDENT_COLUMNS] = pod_dependent_features(subset, pod)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, node_features(subset, pod))
    assert node_features(nodes.rows(rows[:0]), pod).shape == (0, got.shape[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_the_split_numpy_forward_pass_equals_the_dqn_network(seed):
    import torch

    from components.placement.dqn.inputs import (
        N_NODE_FEATURES,
        N_POD_FEATURES,
        node_features,
        pod_features,
    )
    from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
    from components.placement.dqn.policy import q_values
    from components.placement.policy import PodSpec

    torch.manual_seed(seed)
    network = NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES)).eval()
    nodes = _random_node_state(300, seed)
    scorer = DQNPodScorer(network)
    prepared = scorer.prepare_nodes(nodes).layers
    split = scorer._split
    rows = np.random.default_rng(seed).permutation(300)[:120]
    subset = nodes.rows(rows)
    for pod in (PodSpec("p", 0.5, 2**30, 0), PodSpec("g", 8.0, 2**36, 1)):
        expected = q_values(network, pod_features(pod), node_features(subset, pod))
        per_request = node_features(subset, pod)[:, PER_REQUEST_COLUMNS]
        got = split.q_values(prepared, rows, per_request, pod_features(pod))
        assert got.shape == (120,) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_node_positions_are_remembered_per_name_list():
    from scheduler_client.inventory import POSITIONS_MEMO_SIZE

    extender, _, _ = make_extender()
    view, state = extender.inventory.view, extender.cache.state
    names = [NAMES[2], NAMES[0]]
    first = view.positions(names)
    assert first.tolist() == [2, 0] and not first.flags.writeable
    assert view.positions(list(names)) is first
    assert state.positions([NAMES[1], "nowhere"]).tolist() == [1, -1]
    for i in range(2 * POSITIONS_MEMO_SIZE):
        view.positions(NAMES[: 1 + i % len(NAMES)] + [NAMES[-1]] * i)
    assert len(view._positions) <= POSITIONS_MEMO_SIZE
    assert view.positions(names).tolist() == [2, 0]
    assert view.positions(["nowhere"]).tolist() == [-1]


def test_placement_policies_plug_in_as_pod_scorers():
    from components.placement.policy import make_policy

    extender, _, _ = make_extender(
        pod_scorer=PolicyPodScorer(make_policy("least-allocated")),
        config=ScoringConfig(load_weight=0.01, anomaly_weight=0.0, q_weight=1.0),
    )
    scores = parse_host_priority_list(
        extender.prioritize(parse_extender_args(cache_capable_body())).body
    )
    # LeastAllocated on the snapshot's requests: node-b (20 % of CPU and memory requested)
    assert max(scores, key=scores.get) == "node-b"
    # node-c has GPUs: kept for GPU pods, below every node without GPUs for this CPU pod
    assert scores["node-c"] < min(scores[n] for n in ("node-a", "node-b", "node-d"))
    assert min((n for n in scores if n != "node-c"), key=scores.get) == "node-d"


def test_example_kube_scheduler_configuration_matches_the_server():
    import yaml

    from scheduler_client.cli import ExtenderOptions

    path = (
        Path(__file__).resolve().parents[2] / "scheduler_client/examples/kube-scheduler-config.yaml"
    )
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    (extender,) = config["extenders"]
    v1_fields = {
        "urlPrefix", "filterVerb", "preemptVerb", "prioritizeVerb", "bindVerb", "weight",
        "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources",
        "ignorable",
    }  # fmt: skip
    assert set(extender) <= v1_fields
    assert extender["ignorable"] is True and extender["nodeCacheCapable"] is True
    assert (extender["filterVerb"], extender["prioritizeVerb"]) == ("filter", "prioritize")
    assert extender["urlPrefix"].endswith(ExtenderOptions().url_prefix)
    assert isinstance(extender["weight"], int) and extender["weight"] > 0
    assert re.fullmatch(r"\d+(ms|s)", extender["httpTimeout"])


def test_cli_parser_and_option_errors(tmp_path):
    import argparse

    from scheduler_client.cli import ExtenderOptions, add_extender_parser, build_extender_app

    parser = argparse.ArgumentParser()
    add_extender_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["extender", "--port", "9999", "--shadow", "--rollout-percent", "25", "--refresh", "5s"]
    )
    assert (args.port, args.shadow, args.rollout_percent, args.refresh_seconds) == (
        9999,
        True,
        25.0,
        5.0,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["extender", "--rollout-percent", "120"])
    with pytest.raises(MlschedError, match="need node state"):
        build_extender_app(ExtenderOptions(predictors="recent-usage"))
    with pytest.raises(MlschedError, match="needs --predictors URL"):
        build_extender_app(ExtenderOptions(pod_scorer="remote"))
    with pytest.raises(MlschedError, match="use http://host:port"):
        build_extender_app(ExtenderOptions(predictors="ftp://x"))
    with pytest.raises(MlschedError):
        args = parser.parse_args(["extender", "--tls-cert", str(tmp_path / "missing.crt")])
        args.handler(args)
    app = build_extender_app(ExtenderOptions(url_prefix="/ml/"))
    assert set(app.routes) == {"/ml/filter", "/ml/prioritize"}
