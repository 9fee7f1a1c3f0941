"""The promotion gate against a real local MLflow store (SQLite): a worse candidate never wins."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.tracking.gate import (
    PromotionDecision,
    evaluate_candidate,
    promote,
    registry_state,
)
from components.tracking.runs import dataset_digest, get_or_create_experiment, open_tracking


def promote_if_better(client, *, run_id=None, **kwargs) -> PromotionDecision:
    """The evaluate stage's decision, then the promote stage acting on it."""
    decision = evaluate_candidate(client, **kwargs)
    promote(client, decision, run_id)
    return decision


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return open_tracking(None, default_dir=tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def model(request) -> str:
    return f"gate-{request.node.name}"


def register(client, tmp_path, model: str, tag: str) -> tuple[str, str]:
    experiment = get_or_create_experiment(client, "gate-tests")
    run = client.create_run(experiment)
    source = tmp_path / f"model-{tag}"
    source.mkdir()
    if not client.search_registered_models(f"name='{model}'"):
        client.create_registered_model(model)
    version = client.create_model_version(model, source.as_uri(), run_id=run.info.run_id)
    return str(version.version), run.info.run_id


def champion(client, model: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model, "champion").version)
    except Exception:  # noqa: BLE001
        return None


def gate(
    client, model, version, run_id, candidate, scores, baselines=None, **kwargs
) -> PromotionDecision:
    return promote_if_better(
        client,
        model_name=model,
        candidate_version=version,
        metric="mae",
        higher_is_better=False,
        candidate=candidate,
        baselines=baselines if baselines is not None else {"persistence": 0.5},
        score_champion=kwargs.pop("score_champion", lambda uri: scores[uri.rsplit("/", 1)[1]]),
        run_id=run_id,
        **kwargs,
    )


def test_first_candidate_beating_baselines_is_promoted_and_logged(client, model, tmp_path):
    version, run_id = register(client, tmp_path, model, "a")
    decision = gate(client, model, version, run_id, 0.3, {})
    assert decision.promoted and champion(client, model) == version
    assert decision.champion is None and decision.champion_version is None
    run = client.get_run(run_id)
    assert run.data.tags["promotion.promoted"] == "true"
    path = client.download_artifacts(run_id, "promotion/champion.json", str(tmp_path))
    with open(path) as file:
        logged = json.load(file)
    assert logged["candidate"] == 0.3 and logged["baselines"] == {"persistence": 0.5}


def test_candidate_losing_to_a_baseline_is_not_promoted(client, model, tmp_path):
    version, run_id = register(client, tmp_path, model, "a")
    decision = gate(
        client, model, version, run_id, 0.3, {}, baselines={"persistence": 0.5, "naive": 0.2}
    )
    assert not decision.promoted and "naive" in decision.reason
    assert champion(client, model) is None
    assert client.get_run(run_id).data.tags["promotion.promoted"] == "false"


def test_worse_candidate_never_replaces_the_champion(client, model, tmp_path):
    first, run_a = register(client, tmp_path, model, "a")
    assert gate(client, model, first, run_a, 0.30, {}).promoted
    second, run_b = register(client, tmp_path, model, "b")
    scores = {first: 0.30}
    decision = gate(client, model, second, run_b, 0.31, scores)
    assert not decision.promoted and decision.champion == 0.30
    assert decision.champion_version == first
    for worse in (0.30, float("nan"), float("inf")):
        assert not gate(client, model, second, run_b, worse, scores).promoted
    assert champion(client, model) == first


def test_better_candidate_replaces_the_champion_rescored_on_the_same_data(client, model, tmp_path):
    first, run_a = register(client, tmp_path, model, "a")
    assert gate(client, model, first, run_a, 0.30, {}).promoted
    second, run_b = register(client, tmp_path, model, "b")
    # On today's data the champion scores 0.40, not the 0.30 it was promoted with.
    decision = gate(client, model, second, run_b, 0.35, {first: 0.40})
    assert decision.promoted and decision.champion == 0.40 and champion(client, model) == second


def test_min_improvement_and_an_unreachable_store_keep_the_champion(client, model, tmp_path):
    first, run_a = register(client, tmp_path, model, "a")
    assert gate(client, model, first, run_a, 0.30, {}).promoted
    second, run_b = register(client, tmp_path, model, "b")
    assert not gate(
        client, model, second, run_b, 0.29, {first: 0.30}, min_improvement=0.05
    ).promoted

    def unreachable(uri: str) -> float:
        raise OSError("connection refused")

    decision = gate(client, model, second, None, 0.01, {}, score_champion=unreachable)
    assert not decision.promoted and "connection refused" in decision.reason
    assert champion(client, model) == first


def test_a_champion_this_code_cannot_load_is_replaced(client, model, tmp_path):
    first, run_a = register(client, tmp_path, model, "a")
    assert gate(client, model, first, run_a, 0.30, {}).promoted
    second, run_b = register(client, tmp_path, model, "b")

    def incompatible(uri: str) -> float:
        raise AttributeError("'Member' object has no attribute 'node_ranges'")

    decision = gate(client, model, second, run_b, 0.01, {}, score_champion=incompatible)
    assert decision.promoted
    assert "cannot be loaded or scored by this code" in decision.reason
    assert "node_ranges" in decision.reason
    assert champion(client, model) == second


def test_higher_is_better_direction(client, model, tmp_path):
    first, _ = register(client, tmp_path, model, "a")

    def promoted(skill: float) -> bool:
        return promote_if_better(
            client,
            model_name=model,
            candidate_version=first,
            metric="skill",
            higher_is_better=True,
            candidate=skill,
            baselines={"persistence": 0.0},
            score_champion=None,
        ).promoted

    assert not promoted(-0.1)
    assert promoted(0.2)


def test_dataset_digest_is_stable_and_content_sensitive():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert dataset_digest(frame) == dataset_digest(frame.copy())
    assert len(dataset_digest(frame)) == 16
    changed = frame.assign(a=[1.0, 2.5])
    assert dataset_digest(changed) != dataset_digest(frame)
    assert dataset_digest(frame.rename(columns={"a": "c"})) != dataset_digest(frame)


def evaluate_only(client, model: str, version: str, **kwargs) -> PromotionDecision:
    """The evaluate stage alone, for a candidate MAE of 0.1 against persistence's 0.5."""
    return evaluate_candidate(
        client,
        model_name=model,
        candidate_version=version,
        metric="mae",
        higher_is_better=False,
        candidate=0.1,
        baselines={"persistence": 0.5},
        score_champion=None,
        **kwargs,
    )


def test_evaluating_alone_never_moves_the_alias(client, model, tmp_path):
    version, _ = register(client, tmp_path, model, "a")
    decision = evaluate_only(client, model, version)
    assert decision.promoted and decision.beats_baselines
    assert "persistence=0.5" in decision.reason
    assert champion(client, model) is None
    assert registry_state(client, [model])[model] == {"versions": 1, "latest": 1, "champion": None}


def test_the_evaluate_log_says_what_promote_will_do():
    from components.tracking.gate import decision_verb

    assert decision_verb(True) == "promote"
    assert decision_verb(False) == "keep the champion"
    assert decision_verb(False, "trimaran-lvrb") == "serve trimaran-lvrb"


def test_a_candidate_above_a_ceiling_is_never_promoted(client, model, tmp_path):
    version, run_id = register(client, tmp_path, model, "a")
    decision = gate(client, model, version, run_id, 0.1, {}, ceilings={"point_fpr": (0.09, 0.08)})
    assert not decision.promoted and "point_fpr=0.09 is above its ceiling 0.08" in decision.reason
    assert champion(client, model) is None
    unknown = evaluate_only(client, model, version, ceilings={"point_fpr": (None, 0.08)})
    assert not unknown.promoted and "point_fpr is unknown" in unknown.reason
    decision = gate(client, model, version, run_id, 0.1, {}, ceilings={"point_fpr": (0.08, 0.08)})
    assert decision.promoted and decision.ceilings == {"point_fpr": [0.08, 0.08]}


def test_the_pipeline_gate_holds_the_detector_to_its_false_positive_ceiling(client):
    from components.model_contracts import ANOMALY_DETECTOR
    from components.pipeline_steps.steps import evaluate_candidate_result

    assert dict(ANOMALY_DETECTOR.ceilings) == {"point_fpr": 0.08}
    result = {
        "kind": "anomaly",
        "value": 0.9,
        "baselines": {"robust_zscore": 0.1},
        "metrics": {"point_fpr": 0.2, "event_f1": 0.9},
        "held_out": {},
        "registered_version": "1",
    }
    decision = evaluate_candidate_result(client, result)
    assert not decision.promoted and "point_fpr=0.2 is above its ceiling 0.08" in decision.reason
    within = evaluate_candidate_result(client, {**result, "metrics": {"point_fpr": 0.01}})
    assert within.promoted, within.reason
