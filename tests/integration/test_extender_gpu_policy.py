"""The extender as a real process serving a registered heuristic champion (``policy.json``, no
DQN) on GPU nodes: the whole-GPU filter from ``nvidia.com/gpu`` in the Nodes and the pods, GPUs in
use from the node state and in flight from the ledger, and the GPU packing rules in its scores,
over HTTP in both nodeCacheCapable modes."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import requests

from components.contracts import write_nodes_table
from components.placement.policy_spec import PolicySpec, save_policy_spec
from scheduler_client.client import extender_args, make_pod
from tests.support.node_state import synthetic_node_state

pytestmark = pytest.mark.integration

PREFIX = "/scheduler"
END = 1_767_225_600
GPU_NODES = {"busy": 3, "idle": 0}  # role -> GPUs requested by bound pods (4 allocatable)


@pytest.fixture(scope="module")
def served(tmp_path_factory, free_ports, start_extender) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("gpu")
    snapshot, nodes = synthetic_node_state(6, end_epoch=END)
    names = list(nodes["node"])
    busy, idle = names[4], names[5]
    nodes["gpus"] = [0, 0, 0, 0, 4, 4]
    snapshot["gpus_requested"] = [0, 0, 0, 0, GPU_NODES["busy"], GPU_NODES["idle"]]
    snapshot.to_parquet(folder / "snapshot.parquet")
    write_nodes_table(nodes, folder / "nodes.csv")
    save_policy_spec(PolicySpec("greedy-predictive", reason="test champion"), folder / "policy")
    (port,) = free_ports(1)
    start_extender(
        port,
        folder / "extender.log",
        *("--nodes", str(folder / "nodes.csv"), "--snapshot", str(folder / "snapshot.parquet")),
        *("--max-feature-age", "0", "--predictors", "recent-usage", "--refresh", "500ms"),
        *("--placement-model", str(folder / "policy")),
        ready=lambda r: r.json().get("predictions_usable"),
    )
    yield {
        "base": f"http://127.0.0.1:{port}",
        "names": names,
        "busy": busy,
        "idle": idle,
        "cpu_nodes": names[:4],
        "nodes": nodes,
    }


def post(base: str, verb: str, body) -> dict | list:
    response = requests.post(f"{base}{PREFIX}/{verb}", data=orjson.dumps(body), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def node_objects(served: dict) -> list[dict]:
    objects = []
    for row in served["nodes"].itertuples():
        allocatable = {"cpu": f"{int(row.cpu_cores)}", "memory": f"{int(row.memory_bytes)}"}
        if row.gpus:
            allocatable["nvidia.com/gpu"] = str(row.gpus)
        objects.append({"metadata": {"name": row.node}, "status": {"allocatable": allocatable}})
    return objects


def gpu_pod(name: str, gpus: int) -> dict:
    return make_pod(name, cpu="2", memory="8Gi", gpus=gpus, uid=f"uid-{name}")


def test_the_registered_heuristic_is_the_pod_scorer(served):
    health = requests.get(f"{served['base']}/healthz", timeout=5).json()
    assert health["pod_scorer"] == "greedy-predictive"


def test_whole_gpu_filter_in_both_modes(served):
    pod = gpu_pod("train-2", 2)
    by_name = post(served["base"], "filter", extender_args(pod, served["names"]))
    assert by_name["NodeNames"] == [served["idle"]]
    assert by_name["FailedNodes"] == {
        served["busy"]: "ml-scheduler: pod requests 2 nvidia.com/gpu, node has 1 free "
        "(4 allocatable, 3 requested by bound pods or in flight)"
    }
    assert set(by_name["FailedAndUnresolvableNodes"]) == set(served["cpu_nodes"])
    assert "node has 0 allocatable" in by_name["FailedAndUnresolvableNodes"][served["names"][0]]
    by_object = post(served["base"], "filter", extender_args(pod, node_objects(served)))
    kept = [node["metadata"]["name"] for node in by_object["Nodes"]["items"]]
    assert kept == [served["idle"]] and by_object["FailedNodes"] == by_name["FailedNodes"]
    cpu_pod = make_pod("web", cpu="500m", memory="1Gi", uid="uid-web")
    everyone = post(served["base"], "filter", extender_args(cpu_pod, served["names"]))
    assert not everyone["FailedAndUnresolvableNodes"]
    assert set(everyone["NodeNames"]) | set(everyone["FailedNodes"]) == set(served["names"])


def test_gpu_pods_pack_and_other_pods_keep_off_gpu_nodes(served):
    gpu_nodes = [served["busy"], served["idle"]]
    filtered = post(served["base"], "filter", extender_args(gpu_pod("train-0", 1), served["names"]))
    # both GPU nodes fit one GPU; the one already running GPU pods takes it, the idle one
    # keeps its 4 GPUs whole
    assert filtered["NodeNames"] == [served["busy"]]
    assert "stays whole" in filtered["FailedNodes"][served["idle"]]
    pod = gpu_pod("train-1", 1)
    ranked = post(served["base"], "prioritize", extender_args(pod, gpu_nodes))
    scores = {e["Host"]: e["Score"] for e in ranked}
    assert scores[served["busy"]] >= 1 and scores[served["idle"]] == 0
    web = make_pod("web-2", cpu="500m", memory="1Gi", uid="uid-web-2")
    filtered = post(served["base"], "filter", extender_args(web, served["names"]))
    kept = {n: r for n, r in filtered["FailedNodes"].items() if "GPU node kept" in r}
    assert set(kept) == set(gpu_nodes) and set(filtered["NodeNames"]) <= set(served["cpu_nodes"])
    scores = {
        e["Host"]: e["Score"]
        for e in post(served["base"], "prioritize", extender_args(web, served["names"]))
    }
    assert min(scores[n] for n in served["cpu_nodes"]) >= 1
    assert scores[served["busy"]] == scores[served["idle"]] == 0
    # nothing else left: the GPU nodes take the pod rather than none
    only_gpu = post(served["base"], "filter", extender_args(web, gpu_nodes))
    assert only_gpu["NodeNames"] == gpu_nodes


def test_gpus_in_flight_count_until_the_node_state_shows_them(served):
    """Runs after the packing test, whose top node holds its 1-GPU pod in the ledger."""
    names = [served["busy"], served["idle"]]
    filtered = post(served["base"], "filter", extender_args(gpu_pod("train-3", 1), names))
    assert filtered["NodeNames"] == [served["idle"]]
    assert "0 free (4 allocatable, 4 requested" in filtered["FailedNodes"][served["busy"]]
    # the pod that holds it, scheduled again, does not count itself: 1 free, packed there
    again = post(served["base"], "filter", extender_args(gpu_pod("train-1", 1), names))
    assert again["NodeNames"] == [served["busy"]]
