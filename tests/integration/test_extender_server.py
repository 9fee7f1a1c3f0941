"""The extender as a real process on a free port, fed by a real v2 model server (the stand-in
predictors, since the KServe predictors come later): filter/prioritize over HTTP in both
nodeCacheCapable modes, bad input that leaves the process up, the fallback when the model server
is killed mid-run, bearer token and TLS, and the thin client."""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from components.contracts import write_nodes_table
from scheduler_client.api import parse_host_priority_list
from scheduler_client.client import ExtenderClient, extender_args, make_pod
from tests.integration.processes import (
    launch,
    metric_total,
    predictions_usable,
    scheduling,
    stop_process,
    wait_for_metric,
    wait_until,
)
from tests.support.node_state import synthetic_node_state

PREFIX = "/scheduler"
END = 1_767_225_600
STALE = {"reason": "stale", "verb": "prioritize"}


@pytest.fixture(scope="module")
def node_state(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("extender")
    snapshot, nodes = synthetic_node_state(8, end_epoch=END)
    snapshot.to_parquet(folder / "snapshot.parquet")
    write_nodes_table(nodes, folder / "nodes.csv")
    return {
        "snapshot": folder / "snapshot.parquet",
        "nodes": folder / "nodes.csv",
        "names": list(nodes["node"]),
        "cpu": dict(zip(nodes["node"], nodes["cpu_cores"], strict=True)),
        "memory": dict(zip(nodes["node"], nodes["memory_bytes"], strict=True)),
        "gpus": dict(zip(nodes["node"], nodes["gpus"], strict=True)),
        "folder": folder,
    }


def node_state_flags(node_state: dict) -> tuple[str, ...]:
    # the snapshot is stamped END, a fixed past: no feature age limit
    nodes, snapshot = str(node_state["nodes"]), str(node_state["snapshot"])
    return ("--nodes", nodes, "--snapshot", snapshot, "--max-feature-age", "0")


@pytest.fixture(scope="module")
def served(node_state, free_ports, start_extender) -> Iterator[dict]:
    model_port, extender_port = free_ports(2)
    folder = node_state["folder"]
    model = launch(folder / "model.log", "tests.support.standin_server", "--port", f"{model_port}")
    try:
        wait_until(f"http://127.0.0.1:{model_port}/v2/health/ready", model)
        extender = start_extender(
            extender_port,
            folder / f"extender-{extender_port}.log",
            *node_state_flags(node_state),
            *("--predictors", f"http://127.0.0.1:{model_port}", "--refresh", "500ms"),
            *("--max-staleness", "2s", "--timeout", "1s", "--max-body-bytes", "300000"),
            ready=predictions_usable,
        )
        base = f"http://127.0.0.1:{extender_port}"
        yield {"base": base, "model": model, "extender": extender, **node_state}
    finally:
        stop_process(model)


def post(base: str, verb: str, body, **kwargs) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(f"{base}{PREFIX}/{verb}", data=data, timeout=10, **kwargs)


def node_objects(state: dict) -> list[dict]:
    """The nodes as kube-scheduler sends them (GPUs as the extended resource, where any)."""
    return [
        {
            "metadata": {"name": name},
            "status": {
                "allocatable": {
                    "cpu": f"{int(state['cpu'][name] * 1000)}m",
                    "memory": f"{int(state['memory'][name] // 1024)}Ki",
                    "pods": "110",
                    **({"nvidia.com/gpu": str(state["gpus"][name])} if state["gpus"][name] else {}),
                }
            },
        }
        for name in state["names"]
    ]


POD = make_pod("web-1", cpu="500m", memory="1Gi", uid="11111111-2222-3333-4444-555555555555")


def test_filter_and_prioritize_in_both_modes(served):
    names = served["names"]
    by_name = post(served["base"], "prioritize", extender_args(POD, names))
    by_object = post(served["base"], "prioritize", extender_args(POD, node_objects(served)))
    assert by_name.status_code == by_object.status_code == 200
    assert by_name.json() == by_object.json()
    assert [entry["Host"] for entry in by_name.json()] == names
    assert all(set(e) == {"Host", "Score"} and 0 <= e["Score"] <= 10 for e in by_name.json())
    filtered = post(served["base"], "filter", extender_args(POD, names)).json()
    assert filtered["Error"] == "" and filtered["Nodes"] is None
    assert sorted(filtered["NodeNames"] + list(filtered["FailedNodes"])) == sorted(names)
    objects = post(served["base"], "filter", extender_args(POD, node_objects(served))).json()
    assert objects["NodeNames"] is None
    assert [n["metadata"]["name"] for n in objects["Nodes"]["items"]] == filtered["NodeNames"]
    assert metric_total(
        served["base"], "mlsched_extender_decisions_total", mode="ml", verb="prioritize"
    )


def test_thin_client_picks_the_top_node(served):
    client = ExtenderClient(served["base"], url_prefix=PREFIX)
    best = client.best_node(POD, served["names"])
    scores = client.prioritize(POD, client.filter(POD, served["names"])["NodeNames"])
    assert scores[best] == max(scores.values())


@pytest.mark.parametrize(
    ("verb", "body", "status", "message"),
    [
        ("filter", b"{oops", 200, "not valid JSON"),
        ("prioritize", b"{oops", 400, "not valid JSON"),
        ("filter", orjson.dumps({"NodeNames": ["node-01"]}), 200, "Pod: missing"),
        ("prioritize", b"x" * 400_000, 413, "over 300000 bytes"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_process_stays_up(served, verb, body, status, message):
    response = post(served["base"], verb, body)
    assert response.status_code == status
    assert message in response.json()["Error"]
    assert served["extender"].poll() is None
    assert post(served["base"], verb, extender_args(POD, served["names"])).status_code == 200


def test_nodes_unknown_to_the_inventory_get_an_answer_never_an_error(served):
    """A scale-up: kube-scheduler would skip an extender whose every call is an Error."""
    names = [*served["names"], "ghost-1"]
    scores = parse_host_priority_list(
        post(served["base"], "prioritize", extender_args(POD, names)).json()
    )
    assert list(scores) == names
    filtered = post(served["base"], "filter", extender_args(POD, names)).json()
    assert filtered["Error"] == "" and "ghost-1" in filtered["NodeNames"]


def test_unknown_routes_and_methods(served):
    assert requests.get(f"{served['base']}{PREFIX}/filter", timeout=5).status_code == 405
    assert requests.post(f"{served['base']}/nowhere", data=b"{}", timeout=5).status_code == 404


def test_killing_the_model_server_mid_run_costs_no_call(served):
    """Runs last in this module: it kills the fixture's model server."""
    base, names = served["base"], served["names"]
    with scheduling(base, names, 0.01, cpu="250m", memory="256Mi") as replies:
        time.sleep(1.0)
        served["model"].kill()
        served["model"].wait()
        wait_for_metric(base, "mlsched_extender_fallback_total", **STALE)
        time.sleep(0.5)
    assert replies and {reply.status_code for reply in replies} == {200}
    assert not [
        r.json()["Error"] for r in replies if r.url.endswith("filter") and r.json()["Error"]
    ]
    assert metric_total(base, "mlsched_extender_fallback_total", **STALE) > 0
    assert metric_total(base, "mlsched_extender_circuit_state", breaker="predictors") == 2
    assert metric_total(base, "mlsched_extender_pod_scorer_failures_total") > 0
    assert metric_total(base, "mlsched_extender_prediction_staleness_seconds") > 2
    health = requests.get(f"{base}/healthz", timeout=5).json()
    assert health["predictions_usable"] is False and health["circuits"]["predictors"] == "open"
    assert served["extender"].poll() is None


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_bearer_token_and_tls(node_state, free_ports, start_extender):
    (port,) = free_ports(1)
    cert, key = _self_signed(node_state["folder"])
    process = start_extender(
        port,
        node_state["folder"] / f"extender-{port}.log",
        *node_state_flags(node_state),
        "--token",
        "s3cret",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        scheme="https",
        verify=str(cert),
    )
    try:
        base = f"https://127.0.0.1:{port}"
        body = extender_args(POD, node_state["names"])
        anonymous = post(base, "prioritize", body, verify=str(cert))
        assert anonymous.status_code == 401
        wrong = post(base, "prioritize", body, verify=str(cert), headers={"Authorization": "x"})
        assert wrong.status_code == 401
        client = ExtenderClient(base, url_prefix=PREFIX, token="s3cret", verify=str(cert))
        scores = client.prioritize(POD, node_state["names"])  # fallback: no predictors given
        assert set(scores) == set(node_state["names"])
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/healthz", timeout=5)  # not trusted without the certificate
    finally:
        stop_process(process)


@pytest.fixture
def standin_model_server(free_ports) -> Iterator[str]:
    from http.server import ThreadingHTTPServer

    from scheduler_client.recent_usage import RecentUsagePredictor
    from tests.support.standin_server import make_handler
    from tests.support.standins import StandInQNetwork

    (port,) = free_ports(1)
    server = ThreadingHTTPServer(
        ("127.0.0.1", port), make_handler(RecentUsagePredictor(), StandInQNetwork())
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def test_remote_predictions_match_the_v2_contract(node_state, standin_model_server):
    import numpy as np
    import pandas as pd

    from scheduler_client.recent_usage import RecentUsagePredictor
    from scheduler_client.remote import InferenceError, RemoteNodePredictor, V2Client

    snapshot = pd.read_parquet(node_state["snapshot"])
    client = V2Client(standin_model_server, timeout_seconds=5)
    assert client.ready() and client.ready("node-load-forecaster")
    remote = RemoteNodePredictor(client).predict(snapshot)
    local = RecentUsagePredictor().predict(snapshot)
    assert remote.nodes == tuple(snapshot.index)
    np.testing.assert_allclose(remote.cpu_p90, local.cpu_p90, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote.memory_p90, local.memory_p90, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote.anomaly_score, local.anomaly_score, rtol=1e-5, atol=1e-6)
    assert (remote.anomalous == local.anomalous).all()
    with pytest.raises(InferenceError, match="HTTP 404"):
        client.infer("no-such-model", {"features": np.zeros((1, 97), np.float32)})
    with pytest.raises(InferenceError, match="HTTP 400.*expected"):
        client.infer("node-load-forecaster", {"features": np.zeros((2, 5), np.float32)})
    with pytest.raises(InferenceError, match="has shape"):
        RemoteNodePredictor(client, horizons_seconds=(300, 900)).predict(snapshot)
