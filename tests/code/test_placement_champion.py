"""The placement gate in the pipeline against a real MLflow store: a DQN that loses is registered
but not promoted and the best heuristic is registered and served; a DQN that wins is promoted; a
DQN champion stays unless beaten on the same cells. Validation reports are built from cell
figures with the evaluation's own summary (``summarise_family``)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from components.model_contracts import PLACEMENT_MODEL
from components.placement.champion import placement_decision, register_heuristic_champion
from components.placement.evaluate import REPORTED_METRICS, summarise_family
from components.placement.policy_spec import POLICY_TAG, PolicySpec, load_placement_model
from components.placement.selection import VALIDATION_FAMILY, champion_summary
from components.tracking.gate import alias_version, promote

HEURISTIC_MEANS = {
    "random": 300.0,
    "kube-default": 120.0,
    "least-allocated": 110.0,
    "most-allocated": 200.0,
    "trimaran-tlp": 80.0,
    "trimaran-lvrb": 90.0,
    "greedy-predictive": 95.0,
}
NOISE = (-4.0, 1.0, 3.0, -2.0, 2.0, 0.0)  # per (seed, window) cell; sums to 0


def report(dqn_mean: float, policies) -> dict:
    means = {"dqn": dqn_mean, **HEURISTIC_MEANS}
    rows = []
    for policy in policies:
        for cell, noise in enumerate(NOISE):
            figures = dict.fromkeys((*REPORTED_METRICS, "bursts"), 1.0)
            scale = 1 + 0.2 * (len(policy) % 3)  # the cells move the policies unequally
            figures["overload_node_minutes"] = means[policy] + noise * scale
            rows.append(
                {"policy": policy, "seed": cell // 3, "window": cell % 3, "metrics": figures}
            )
    family = summarise_family(rows, False, ({"pods": 10}, []))
    return {
        "metric": "overload_node_minutes",
        "reference_policy": "dqn",
        "families": {VALIDATION_FAMILY: family},
        "policy_params": {p: {} for p in policies},
    }


class Stand:
    """The validation evaluation and the DQN loader, with a DQN figure per model URI."""

    def __init__(self, dqn_means: dict[str, float]):
        self.dqn_means = dqn_means
        self.evaluated: list[str] = []

    def load(self, uri: str) -> str:
        return uri

    def evaluate(self, held_out, policy, policies) -> dict:
        self.evaluated.append(policy)
        return report(self.dqn_means[policy], policies)


@pytest.fixture
def client(tmp_path) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(PLACEMENT_MODEL)
    return client


def candidate(client: MlflowClient, tmp_path) -> dict:
    experiment = client.create_experiment(f"e{len(client.search_experiments())}", str(tmp_path))
    run_id = client.create_run(experiment).info.run_id
    source = str(tmp_path / "dqn")
    version = client.create_model_version(PLACEMENT_MODEL, source, run_id=run_id).version
    return {
        "registered_version": str(version),
        "model_uri": f"models:/{PLACEMENT_MODEL}/{version}",
        "held_out": {"workload": "w", "nodes": "n", "train_fraction": 0.5, "eval_seeds": 2},
        "run_id": run_id,
    }


def decide(client, result, stand):
    return placement_decision(client, result, evaluate=stand.evaluate, load_policy=stand.load)


def test_a_losing_dqn_stays_registered_and_the_best_heuristic_is_served(client, tmp_path, capsys):
    result = candidate(client, tmp_path)
    stand = Stand({result["model_uri"]: 160.0})
    decision = decide(client, result, stand)
    assert not decision.promoted and decision.serve_policy == "trimaran-tlp"
    assert decision.reason.startswith("dqn 160 [") and "vs trimaran-tlp 80 [" in decision.reason
    assert "dqn loses" in decision.reason and decision.beats_baselines is False
    served = promote(
        client, decision, result["run_id"], register_serving=register_heuristic_champion
    )
    assert served != result["registered_version"]
    assert alias_version(client, PLACEMENT_MODEL, "champion") == served
    version = client.get_model_version(PLACEMENT_MODEL, served)
    assert version.tags[POLICY_TAG] == "trimaran-tlp"
    assert version.tags["promotion.decision_run"] == result["run_id"]
    candidate_tags = client.get_model_version(PLACEMENT_MODEL, result["registered_version"]).tags
    assert candidate_tags["promotion.champion"] == decision.reason
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        model = load_placement_model(f"models:/{PLACEMENT_MODEL}@champion")
    finally:
        mlflow.set_tracking_uri(None)
    assert model == PolicySpec("trimaran-tlp", {}, decision.reason)
    summary = champion_summary(client)
    assert summary.startswith(f"placement champion: trimaran-tlp ({PLACEMENT_MODEL} version 2)")
    assert f"why: {decision.reason}" in summary
    assert "validation: 6 cells (seeds x windows), mean [95 % interval]" in summary
    assert "| **trimaran-tlp** (champion) | 80 [" in summary and "| dqn | 160 [" in summary
    from components.cli import main

    assert main(["serving", "placement-champion", "--tracking-uri", client.tracking_uri]) == 0
    assert capsys.readouterr().out.strip() == summary.strip()  # the last line of make run
    # the next losing candidate finds the heuristic already served: no new version
    again = candidate(client, tmp_path)
    stand.dqn_means[again["model_uri"]] = 150.0
    second = decide(client, again, stand)
    assert second.serve_version == served and "already the champion" in second.reason
    assert promote(client, second, again["run_id"], register_serving=None) == served


def test_a_dqn_that_wins_distinguishably_is_promoted(client, tmp_path):
    result = candidate(client, tmp_path)
    decision = decide(client, result, Stand({result["model_uri"]: 50.0}))
    assert decision.promoted and decision.evaluated_policy == "dqn"
    assert "dqn wins distinguishably" in decision.reason
    assert promote(client, decision, result["run_id"]) == result["registered_version"]


def test_a_dqn_champion_stays_unless_beaten_on_the_same_cells(client, tmp_path):
    first = candidate(client, tmp_path)
    stand = Stand({first["model_uri"]: 50.0})
    promote(client, decide(client, first, stand), first["run_id"])
    # a new winner that is no better than the champion: the champion stays
    second = candidate(client, tmp_path)
    stand.dqn_means[second["model_uri"]] = 51.0
    stand.dqn_means[f"models:/{PLACEMENT_MODEL}/{first['registered_version']}"] = 50.0
    decision = decide(client, second, stand)
    assert not decision.promoted and not decision.serve_policy
    assert "champion version 1 stays" in decision.reason and "vs champion dqn 50" in decision.reason
    # a loser while the champion still wins: the champion stays, no heuristic
    third = candidate(client, tmp_path)
    stand.dqn_means[third["model_uri"]] = 400.0
    decision = decide(client, third, stand)
    assert not decision.promoted and not decision.serve_policy
    assert "champion version 1 (dqn) still wins" in decision.reason
    # a clearly better one replaces it
    fourth = candidate(client, tmp_path)
    stand.dqn_means[fourth["model_uri"]] = 20.0
    decision = decide(client, fourth, stand)
    assert decision.promoted and "vs champion dqn 50" in decision.reason
