"""The extender against the real KServe predictors: tiny real models (forecaster, anomaly
detector, DQN) served by ``python -m serving serve`` in a subprocess, node state from a real
Feast store (the forecaster features and the anomaly group), the extender with ``--feast-repo``
and ``--predictors``. Prioritize answers come from the ML path (no fallback), and killing the
model server costs no scheduling call."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
import requests

from components.contracts import NODE, write_node_metrics, write_nodes_table
from components.features.anomaly_group import anomaly_feature_names
from components.features.cli import build_features
from components.features.definitions import FEATURE_NAMES
from scheduler_client.client import extender_args, make_pod
from tests.code.test_serving_models import END_EPOCH, save_tiny_models, tiny_models
from tests.integration.processes import (
    launch_model_server,
    metric_total,
    predictions_usable,
    scheduling,
    stop_process,
    wait_for_metric,
    wait_until,
)

feast_store = pytest.importorskip("components.features.feast_store")

PREFIX = "/scheduler"


def build_cluster(folder) -> dict:
    """The tiny models' cluster: its nodes table and a materialised Feast store of its metrics."""
    from components.generate.cluster import make_nodes, nodes_table
    from components.generate.history import (
        HistoryConfig,
        generate_node,
        latent_factors,
        node_metrics_frame,
    )

    config = HistoryConfig(nodes=4, days=2, step_seconds=300, seed=1, end_epoch=END_EPOCH)
    made = make_nodes(4, config.seed)
    factors = latent_factors(config)
    metrics = node_metrics_frame(config, [generate_node(config, node, factors) for node in made])
    write_nodes_table(nodes_table(made), folder / "nodes.csv")
    write_node_metrics(metrics, folder / "metrics.parquet")
    report = build_features(
        folder / "metrics.parquet",
        folder / "features.parquet",
        folder / "feast",
        step_seconds=300,
        anomaly=True,
    )
    assert (folder / "features_anomaly.parquet").is_file() and report.materialized_until
    return {
        "store": feast_store.open_feature_store(folder / "feast"),
        "names": sorted(str(n) for n in metrics[NODE].unique()),
        "nodes": folder / "nodes.csv",
        "feast": folder / "feast",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory, free_ports, start_extender) -> Iterator[dict]:
    """Model server, Feast store and extender; the model server starts while the store is built."""
    folder = tmp_path_factory.mktemp("real-predictors")
    root = save_tiny_models(folder / "models")
    model_port, extender_port = free_ports(2)
    log = folder / "server.log"
    model = launch_model_server(model_port, root, log)
    url = f"http://127.0.0.1:{model_port}"
    try:
        cluster = build_cluster(folder)
        wait_until(f"{url}/v2/health/ready", model, timeout=120, log=log)
        start_extender(
            extender_port,
            folder / "extender.log",
            *("--nodes", str(cluster["nodes"]), "--feast-repo", str(cluster["feast"])),
            *("--predictors", url, "--refresh", "500ms", "--max-staleness", "3s"),
            *("--timeout", "2s", "--max-feature-age", "0"),  # a history of fixed past days
            ready=predictions_usable,
            timeout=90,
        )
        yield {**cluster, "url": url, "model": model, "base": f"http://127.0.0.1:{extender_port}"}
    finally:
        stop_process(model)


def test_snapshot_carries_the_anomaly_group_and_the_detector_scores_it(stack):
    from scheduler_client.remote import RemoteNodePredictor, V2Client
    from serving.predictors import NodeAnomalyModel

    snapshot = feast_store.read_node_state_snapshot(stack["store"], stack["names"])
    assert list(snapshot.columns) == ["timestamp", *FEATURE_NAMES, *anomaly_feature_names()]
    assert np.isfinite(snapshot[list(anomaly_feature_names())].to_numpy()).all()

    remote = RemoteNodePredictor(V2Client(stack["url"], timeout_seconds=10))
    declared = remote.anomaly_inputs()
    detector = tiny_models().detector
    assert declared == tuple(detector.ensemble.feature_names)
    predictions = remote.predict(snapshot)
    served = NodeAnomalyModel(model=detector).infer(
        {
            "features": snapshot[list(declared)].to_numpy(np.float32),
            "node": np.array(stack["names"], dtype=object),
        },
        {"features": "FP32", "node": "BYTES"},
    )
    np.testing.assert_allclose(predictions.anomaly_score, served["score"], rtol=1e-5, atol=1e-6)
    assert (predictions.anomalous == served["alarm"]).all()
    partial = snapshot.copy()
    partial.iloc[0, partial.columns.get_loc(declared[0])] = np.nan  # node 0 has no anomaly state
    unscored = remote.predict(partial)
    assert np.isnan(unscored.anomaly_score[0]) and not unscored.anomalous[0]
    np.testing.assert_allclose(unscored.anomaly_score[1:], served["score"][1:], rtol=1e-5)

    pushed = snapshot.reset_index()
    pushed.loc[0, declared[0]] = 0.125  # the online path writes the anomaly view too
    assert feast_store.write_online_features(stack["store"], pushed) == len(pushed)
    again = feast_store.read_node_state_snapshot(stack["store"], stack["names"])
    assert again.loc[stack["names"][0], declared[0]] == np.float32(0.125)
    assert np.isfinite(predictions.cpu_p90).all() and predictions.cpu_p90.shape == (4, 3)


def test_the_columnar_form_is_all_or_nothing():
    from kserve.errors import InvalidInput

    from serving.predictors import NodeAnomalyModel

    served = NodeAnomalyModel(model=tiny_models().detector)
    names = served.feature_names
    columns = {name: np.zeros(2, np.float32) for name in names}
    kinds = dict.fromkeys(names, "FP32")
    assert served.infer(columns, kinds)["score"].shape == (2,)
    inputs = [spec.name for spec in served.input_specs()]
    assert inputs == ["features", "node", "timestamp", *names]
    with pytest.raises(InvalidInput, match=f"missing feature input.*{names[-1]}"):
        served.infer({name: columns[name] for name in names[:-1]}, kinds)
    with pytest.raises(InvalidInput, match="not both"):
        served.infer({**columns, "features": np.zeros((2, len(names)), np.float32)}, kinds)
    with pytest.raises(InvalidInput, match="different lengths"):
        served.infer({**columns, names[0]: np.zeros(3, np.float32)}, kinds)


def test_prioritize_uses_the_served_models_and_survives_their_death(stack):
    """Runs last in this module: it kills the model server."""
    extender, names = stack["base"], stack["names"]
    pod = make_pod("web-1", cpu="500m", memory="1Gi")
    for _ in range(5):
        response = requests.post(
            f"{extender}{PREFIX}/prioritize",
            data=orjson.dumps(extender_args(pod, names)),
            timeout=10,
        )
        assert response.status_code == 200
        assert sorted(entry["Host"] for entry in response.json()) == names
    decisions = "mlsched_extender_decisions_total"
    assert metric_total(extender, decisions, mode="ml", verb="prioritize") >= 5
    assert metric_total(extender, "mlsched_extender_fallback_total") == 0

    with scheduling(extender, names, 0.02, cpu="250m") as replies:
        time.sleep(0.5)
        stack["model"].kill()
        stack["model"].wait()
        wait_for_metric(extender, "mlsched_extender_fallback_total", verb="prioritize")
        time.sleep(0.3)
    assert replies and {reply.status_code for reply in replies} == {200}
    assert metric_total(extender, "mlsched_extender_fallback_total", verb="prioritize") > 0
