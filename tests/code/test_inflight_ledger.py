"""The ledger of pods in flight: estimates, replacement, trust order, correction and expiry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.errors import MlschedError
from scheduler_client.api import parse_pod
from scheduler_client.extender import feature_times
from scheduler_client.ledger import InflightLedger

GIB = 2**30


class Clock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def pod(uid: str, requests: dict | None = None, limits: dict | None = None):
    resources = {"requests": requests or {}, "limits": limits or {}}
    return parse_pod(
        {
            "metadata": {"name": f"web-{uid}", "namespace": "shop", "uid": uid},
            "spec": {"containers": [{"name": "web", "resources": resources}]},
        }
    )


WEB = {"cpu": "2", "memory": "4Gi"}
NODES = ["a", "b", "c"]


def loads(ledger: InflightLedger, metrics_at: dict | None = None):
    load = ledger.load(NODES, metrics_at or {})
    return None if load is None else (load.cpu_cores.tolist(), load.memory_bytes.tolist())


def test_estimates_scale_requests_per_resource_and_use_limits_without_a_request():
    ledger = InflightLedger(cpu_scale=0.5, memory_scale=2.0, clock=Clock())
    ledger.record(pod("1", WEB), "a", "prioritize")
    ledger.record(pod("2", limits={"cpu": "1", "memory": "1Gi"}), "b", "prioritize")
    load = ledger.load(NODES, {})
    assert load.cpu_cores.tolist() == [1.0, 0.5, 0.0]
    assert load.memory_bytes.tolist() == [8 * GIB, 2 * GIB, 0.0]
    # the requests themselves stay unscaled (what kube-scheduler counts)
    assert load.cpu_request_cores.tolist() == [2.0, 1.0, 0.0]
    assert load.memory_request_bytes.tolist() == [4 * GIB, 1 * GIB, 0.0]


def test_a_pod_seen_again_replaces_its_own_entry():
    ledger = InflightLedger(clock=Clock())
    for node in ("a", "a", "b"):
        ledger.record(pod("1", WEB), node, "prioritize")
    assert len(ledger) == 1
    assert loads(ledger) == ([0.0, 2.0, 0.0], [0.0, 4 * GIB, 0.0])


def test_bind_moves_a_tentative_entry_and_weaker_sources_do_not_move_it_back():
    ledger = InflightLedger(clock=Clock())
    web = pod("1", WEB)
    ledger.remember(web)
    ledger.record(web, "a", "prioritize")
    assert ledger.bind(web.key, "c").source == "bind"
    assert ledger.record(web, "a", "prioritize") is None
    assert ledger.record(web, "a", "watch") is None
    assert loads(ledger) == ([0.0, 0.0, 2.0], [0.0, 0.0, 4 * GIB])
    assert ledger.bind("never-seen", "a") is None


def test_a_watch_corrects_a_tentative_placement_and_a_deletion_clears_it():
    ledger = InflightLedger(clock=Clock())
    web = pod("1", WEB)
    ledger.record(web, "a", "prioritize")
    ledger.record(web, "b", "watch")
    assert loads(ledger) == ([0.0, 2.0, 0.0], [0.0, 4 * GIB, 0.0])
    ledger.forget(web.key)
    assert loads(ledger) is None


def test_metrics_newer_than_the_placement_plus_the_margin_clear_the_entry():
    clock = Clock(1_000.0)
    ledger = InflightLedger(margin_seconds=30, clock=clock)
    ledger.record(pod("1", WEB), "a", "prioritize")
    ledger.record(pod("2", WEB), "b", "prioritize")
    clock.now = 1_100.0
    # node a's metrics are from before the placement plus the margin: still expected there
    assert loads(ledger, {"a": 1_030.0, "b": 1_031.0}) == ([2.0, 0.0, 0.0], [4 * GIB, 0.0, 0.0])
    assert len(ledger) == 1
    assert loads(ledger, {"a": 1_031.0}) is None


def test_entries_expire_after_their_ttl_and_old_placements_are_not_recorded():
    clock = Clock(1_000.0)
    ledger = InflightLedger(ttl_seconds=60, clock=clock)
    ledger.record(pod("1", WEB), "a", "watch")
    assert ledger.record(pod("2", WEB), "b", "watch", placed_at=900.0) is None
    clock.now = 1_059.0
    assert loads(ledger) == ([2.0, 0.0, 0.0], [4 * GIB, 0.0, 0.0])
    clock.now = 1_060.0
    assert loads(ledger) is None and len(ledger) == 0
    # a clock gone back (a replay started again): entries from its future go too
    ledger.record(pod("3", WEB), "a", "watch")
    clock.now = 1_001.0
    assert loads(ledger) is not None
    clock.now = 1_000.0
    assert loads(ledger) is None


def test_bad_settings_are_refused():
    with pytest.raises(MlschedError, match="scales"):
        InflightLedger(cpu_scale=-1)
    with pytest.raises(MlschedError, match="TTL"):
        InflightLedger(ttl_seconds=0)


def test_feature_times_read_each_nodes_timestamp():
    snapshot = pd.DataFrame(
        {"timestamp": pd.to_datetime([1_000, None, 2_000], unit="s", utc=True)},
        index=pd.Index(NODES, name="node"),
    )
    assert feature_times(snapshot) == {"a": 1_000.0, "c": 2_000.0}
    assert feature_times(None) == {}
    assert np.isnan(feature_times(snapshot).get("b", np.nan))


def _owned(metadata: dict):
    spec = {"containers": [{"name": "web", "resources": {"requests": WEB}}]}
    return parse_pod({"metadata": {"namespace": "shop", **metadata}, "spec": spec})


RS = {"kind": "ReplicaSet", "name": "web-5d8f7", "uid": "rs-uid"}


@pytest.mark.parametrize(
    "metadata, owner",
    [
        ({"ownerReferences": [{**RS, "controller": True}], "generateName": "web-"}, "rs-uid"),
        # a reference that is not the controller does not group replicas
        ({"ownerReferences": [RS], "labels": {"pod-template-hash": "5d8f7"}}, "shop/5d8f7"),
        ({"generateName": "web-5d8f7-"}, "shop/web-5d8f7-"),
        ({"name": "lonely"}, ""),
    ],
)
def test_the_owner_is_the_controller_uid_else_the_template_hash_else_the_generate_name(
    metadata, owner
):
    assert _owned(metadata).owner == owner


def test_the_load_counts_the_pods_of_the_scored_pods_owner_apart():
    ledger = InflightLedger(clock=Clock())
    for uid, node, generate_name in (("1", "a", "web-"), ("2", "a", "web-"), ("3", "b", "db-")):
        ledger.record(_owned({"uid": uid, "generateName": generate_name}), node, "prioritize")
    assert ledger.load(NODES, {}, "shop/web-").same_owner.tolist() == [2.0, 0.0, 0.0]
    assert ledger.load(NODES, {}, "shop/db-").same_owner.tolist() == [0.0, 1.0, 0.0]
    assert ledger.load(NODES, {}, "").same_owner.tolist() == [0.0, 0.0, 0.0]
    assert ledger.load(NODES, {}).cpu_cores.tolist() == [4.0, 2.0, 0.0]
