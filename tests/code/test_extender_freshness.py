"""Per-node freshness and partial predictions in the extender: each node's prediction is used
while its features (the snapshot's own timestamps) are recent, the other candidates get the
fallback score on the ML scale, nodes the inventory does not know are learned or scored
neutrally, never an Error, and the per-node fallback counters count them."""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson
import pandas as pd
import pytest

from scheduler_client.api import NodeAllocatable, parse_extender_args, parse_host_priority_list
from scheduler_client.inventory import api_node_reader
from scheduler_client.predictions import feature_times
from scheduler_client.resilience import fallback_on_ml_scale
from tests.code.test_extender_api import (
    GIB,
    NAMES,
    NODES,
    cache_capable_body,
    full_nodes_body,
    make_extender,
    node_object,
)


def stamp(*seconds: float) -> pd.Series:
    return pd.Series(pd.to_datetime(list(seconds), unit="s", utc=True), index=NAMES)


def scores_of(extender, names=NAMES) -> tuple[dict[str, int], object]:
    decision = extender.prioritize(parse_extender_args(cache_capable_body(names)))
    return parse_host_priority_list(decision.body), decision


def counted(extender, name: str, verb: str = "prioritize") -> float:
    value = extender.metrics.registry.get_sample_value(
        f"mlsched_extender_{name}_total", {"verb": verb}
    )
    return value or 0.0


def test_a_node_with_old_features_is_fallback_scored_while_the_others_keep_ml_scores():
    extender, source, _ = make_extender()
    fresh, _ = scores_of(extender)
    source.frame["timestamp"] = stamp(990, 990, 990, 1000 - 121)  # node-d's: 2 min 1 s old
    assert extender.cache.refresh()
    scores, decision = scores_of(extender)
    assert (decision.mode, decision.details["fallback_nodes"]) == ("ml", 1)
    assert {n: scores[n] for n in NAMES[:3]} == {n: fresh[n] for n in NAMES[:3]}
    assert min(fresh[n] for n in NAMES[:3]) <= scores["node-d"] <= max(fresh.values())
    # node-d's predicted CPU fails the ML filter; with old features the filter leaves it alone
    filtered = extender.filter(parse_extender_args(cache_capable_body())).body
    assert filtered["NodeNames"] == ["node-a", "node-b", "node-d"]
    assert set(filtered["FailedNodes"]) == {"node-c"}


def test_a_source_whose_data_stops_changing_goes_stale_node_by_node():
    extender, source, clock = make_extender()
    source.frame["timestamp"] = stamp(990, 960, 920, 900)  # the source never changes again
    modes = []
    for now in (1000.0, 1050.0, 1100.0, 1200.0):
        clock.now = now
        assert extender.cache.refresh()  # every read succeeds: the predictions stay fresh
        rows = extender.cache.state.positions(NAMES)
        usable = extender.cache.state.usable(rows, now, extender.config.max_feature_age_seconds)
        _, decision = scores_of(extender)
        modes.append((usable.tolist(), decision.mode, decision.reason))
    assert modes == [
        ([True, True, True, True], "ml", None),
        ([True, True, False, False], "ml", None),
        ([True, False, False, False], "ml", None),
        ([False, False, False, False], "fallback", "stale_features"),
    ]


def test_without_an_age_limit_old_features_stay_usable():
    from scheduler_client.extender import ScoringConfig

    extender, source, clock = make_extender(config=ScoringConfig(max_feature_age_seconds=None))
    source.frame["timestamp"] = stamp(0, 0, 0, 0)
    assert extender.cache.refresh()
    assert scores_of(extender)[1].mode == "ml"


def test_scale_up_node_names_with_an_unknown_node_get_a_valid_answer_no_error(caplog):
    looked_up: list[str] = []

    def read_node(name: str):
        looked_up.append(name)
        return NodeAllocatable(name, 8.0, 32 * GIB, 0) if name == "node-new" else None

    extender, _, _ = make_extender()
    extender.inventory.read_node = read_node
    names = [*NAMES, "node-new", "ghost"]
    with caplog.at_level("WARNING", logger="scheduler_client.inventory"):
        for _ in range(3):
            scores, decision = scores_of(extender, names)
            filtered = extender.filter(parse_extender_args(cache_capable_body(names))).body
    assert looked_up == ["node-new", "ghost"]  # once each, not per call
    assert extender.inventory.view.node("node-new").cpu_cores == 8.0
    assert "ghost" not in extender.inventory.names()
    assert [r.fields["node"] for r in caplog.records] == ["ghost"]
    assert set(scores) == set(names) and decision.details["fallback_nodes"] == 2
    assert filtered["Error"] == "" and {"node-new", "ghost"} <= set(filtered["NodeNames"])


def test_a_kubernetes_api_that_fails_leaves_the_node_neutral():
    def read_node(name: str):
        raise ConnectionError("API server down")

    extender, _, _ = make_extender(predictor=False)
    extender.inventory.read_node = read_node
    names = ["node-a", "node-b", "ghost"]
    scores, decision = scores_of(extender, names)
    assert (decision.mode, decision.reason) == ("fallback", "no_predictions")
    assert scores["ghost"] == int(np.rint(np.median([scores["node-a"], scores["node-b"]])))


def test_a_full_nodes_request_teaches_the_inventory():
    def read_node(name: str):
        raise AssertionError("a node sent as a Node object is never looked up")

    extender, _, _ = make_extender()
    extender.inventory.read_node = read_node
    extra = node_object("node-e", "2", "4Gi")
    extender.prioritize(parse_extender_args(full_nodes_body([*NODES, extra])))
    assert extender.inventory.view.node("node-e") == NodeAllocatable("node-e", 2.0, 4 * GIB, 0)
    scores, decision = scores_of(extender, [*NAMES, "node-e"])
    assert decision.details["fallback_nodes"] == 1 and 0 <= scores["node-e"] <= 10


def test_the_per_node_fallback_counters():
    extender, source, clock = make_extender()
    scores_of(extender)  # 4 nodes by ML
    extender.inventory.update([NodeAllocatable("node-new", 8.0, 32 * GIB, 0)])
    scores_of(extender, [*NAMES, "node-new"])  # 5 nodes, 1 by fallback
    clock.now += 61  # the predictions go stale: 4 nodes, all by fallback
    scores_of(extender)
    assert counted(extender, "candidate_nodes") == 13
    assert counted(extender, "fallback_nodes") == 5
    assert counted(extender, "fallback", "prioritize") == 0  # the reason label is required
    extender.filter(parse_extender_args(cache_capable_body()))
    assert (
        counted(extender, "candidate_nodes", "filter"),
        counted(extender, "fallback_nodes", "filter"),
    ) == (4, 4)


def test_fallback_scores_on_the_ml_scale_hand_worked():
    usable = np.array([True, True, True, False, False, False])
    # usable: ML 2, 4, 6 (mean 4) beside fallback 1, 2, 3 (mean 2): slope 2, within [2, 6]
    mixed = fallback_on_ml_scale(
        np.array([2.0, 4.0, 6.0, 0.0, 0.0, 0.0]), np.array([1, 2, 3, 2.5, 9, 0]), usable
    )
    assert mixed.tolist() == [2.0, 4.0, 6.0, 5.0, 6.0, 2.0]
    flat = fallback_on_ml_scale(np.array([3.0, 5.0, 0.0]), np.array([4, 4, 9]), usable[1:4])
    assert flat.tolist() == [3.0, 5.0, 4.0]  # no fallback spread to fit: the mean ML score
    assert fallback_on_ml_scale(np.zeros(2), np.array([3, 4]), np.zeros(2, bool)).tolist() == [3, 4]


def test_feature_times_read_the_snapshot_timestamps():
    frame = pd.DataFrame({"timestamp": pd.to_datetime([1_700_000_000, None], unit="s", utc=True)})
    times = feature_times(frame)
    assert times[0] == 1_700_000_000 and np.isnan(times[1])
    assert np.isnan(feature_times(pd.DataFrame({"x": [1.0]}))).all()


class _NodesAPI(BaseHTTPRequestHandler):
    """``GET /api/v1/nodes/{name}`` as the API server answers it (a Node, or a 404 Status)."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if name == "node-x":
            status, body = 200, node_object("node-x", "3500m", "8Gi", gpus="1")
        else:
            status = 404
            body = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        payload = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_nodes_are_read_from_the_kubernetes_api_with_the_official_client():
    from kubernetes import client

    server = ThreadingHTTPServer(("127.0.0.1", 0), _NodesAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        read_node = api_node_reader(client.CoreV1Api(client.ApiClient(configuration)))
        assert read_node("node-x") == NodeAllocatable("node-x", 3.5, 8 * GIB, 1)
        assert read_node("ghost") is None
    finally:
        server.shutdown()
        server.server_close()


def test_the_max_feature_age_flag():
    from scheduler_client.cli import ExtenderOptions, add_extender_parser, build_extender_app

    parser = argparse.ArgumentParser()
    add_extender_parser(parser.add_subparsers())
    assert parser.parse_args(["extender"]).max_feature_age_seconds == 120.0
    assert parser.parse_args(["extender", "--max-feature-age", "5m"]).max_feature_age_seconds == 300
    with pytest.raises(SystemExit):
        parser.parse_args(["extender", "--max-feature-age", "-1s"])
    off = build_extender_app(ExtenderOptions(max_feature_age_seconds=0))
    assert off.extender.config.max_feature_age_seconds is None
