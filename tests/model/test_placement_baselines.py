"""Behaviour of the baselines on a synthetic cluster: what each published rule is meant to do."""

import pytest

from components.contracts import validate_nodes_table, validate_workload_trace
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.model_contracts import PLACEMENT_HEURISTICS
from components.placement.policy import make_policy
from components.placement.simulator import simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace

START = 1_767_225_600
POLICIES = ("random", *PLACEMENT_HEURISTICS)


@pytest.fixture(scope="module")
def runs():
    nodes = validate_nodes_table(nodes_table(make_nodes(16, seed=9)))
    trace = generate_workload(WorkloadConfig(START, days=0.5, step_seconds=60, seed=9), nodes)
    workload = workload_from_trace(validate_workload_trace(trace))
    _, test = workload.split(0.5)
    cluster = cluster_from_nodes(nodes)
    return {name: simulate(test, cluster, make_policy(name), seed=0).metrics for name in POLICIES}


def test_bin_packing_uses_fewer_nodes_than_spreading(runs):
    assert runs["most-allocated"]["mean_nodes_used"] < runs["least-allocated"]["mean_nodes_used"]
    assert runs["most-allocated"]["load_imbalance"] > runs["least-allocated"]["load_imbalance"]


@pytest.mark.parametrize("name", ["trimaran-lvrb", "greedy-predictive", "trimaran-tlp"])
def test_load_aware_policies_overload_less_than_random(runs, name):
    assert runs[name]["overload_node_minutes"] < runs["random"]["overload_node_minutes"]


def test_load_aware_policies_overload_less_than_request_based_ones(runs):
    load_aware = min(
        runs[n]["overload_node_minutes"] for n in ("trimaran-lvrb", "greedy-predictive")
    )
    request_based = min(
        runs[n]["overload_node_minutes"] for n in ("kube-default", "least-allocated")
    )
    assert load_aware < request_based


def test_every_policy_serves_the_same_pods(runs):
    never = {name: m["pods_never_placed"] for name, m in runs.items()}
    assert max(never.values()) - min(never.values()) <= 2
    assert len({m["pods"] for m in runs.values()}) == 1
