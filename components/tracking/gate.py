"""The promotion gate: move the ``champion`` alias only to a candidate that beats everything.

A candidate is promoted when its metric beats every baseline and the current champion, both
scored on the same evaluation data (the champion is re-scored by the caller's function, so a
champion trained on older data is judged on today's data). The decision, with its numbers, is
logged to the candidate's run (``promotion/<alias>.json`` and ``promotion.*`` tags) and to the
model version's tags.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.model_contracts import (  # noqa: F401  (re-exported for callers of the gate)
    ANOMALY_MODEL,
    FORECASTER_MODEL,
    PLACEMENT_MODEL,
)
from components.model_contracts import CHAMPION_ALIAS as CHAMPION


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided for one candidate, and the numbers it decided on."""

    model_name: str
    candidate_version: str
    promoted: bool
    reason: str
    metric: str
    higher_is_better: bool
    candidate: float
    baselines: dict[str, float]
    champion: float | None
    champion_version: str | None


def _beats(candidate: float, other: float, higher_is_better: bool, margin: float) -> bool:
    if not math.isfinite(candidate):
        return False
    if not math.isfinite(other):
        return True
    gain = candidate - other if higher_is_better else other - candidate
    return gain > margin


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the model or the alias does not exist."""
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def _decide(
    client: MlflowClient,
    *,
    model_name: str,
    candidate_version: str,
    metric: str,
    higher_is_better: bool,
    candidate: float,
    baselines: dict[str, float],
    score_champion: Callable[[str], float] | None,
    alias: str,
    min_improvement: float,
) -> tuple[bool, str, float | None, str | None]:
    direction = "higher" if higher_is_better else "lower"
    if not math.isfinite(candidate):
        return False, f"candidate {metric} is not a number ({candidate})", None, None
    for name, value in sorted(baselines.items()):
        if not _beats(candidate, value, higher_is_better, 0.0):
            return (
                False,
                f"candidate {metric}={candidate:.6g} does not beat baseline {name}={value:.6g} "
                f"({direction} is better)",
                None,
                None,
            )
    champion_version = alias_version(client, model_name, alias)
    if champion_version is None:
        return True, f"no {alias} yet; candidate beats every baseline", None, None
    if champion_version == str(candidate_version):
        return False, f"version {candidate_version} is already the {alias}", None, champion_version
    if score_champion is None:
        return (
            False,
            f"{alias} version {champion_version} exists but no function was given to re-score it",
            None,
            champion_version,
        )
    try:
        champion = float(score_champion(f"models:/{model_name}/{champion_version}"))
    except Exception as error:  # noqa: BLE001 - any failure to score keeps the champion
        return (
            False,
            f"could not re-score {alias} version {champion_version}: {error}",
            None,
            champion_version,
        )
    if not _beats(candidate, champion, higher_is_better, min_improvement):
        return (
            False,
            f"candidate {metric}={candidate:.6g} does not beat {alias} version "
            f"{champion_version} ({champion:.6g}) by more than {min_improvement:g} "
            f"({direction} is better)",
            champion,
            champion_version,
        )
    return (
        True,
        f"candidate {metric}={candidate:.6g} beats every baseline and {alias} version "
        f"{champion_version} ({champion:.6g})",
        champion,
        champion_version,
    )


def log_decision(client: MlflowClient, decision: PromotionDecision, run_id: str, alias: str):
    """Record ``decision`` on ``run_id`` (JSON artifact, tags) and on the model version."""
    client.log_dict(run_id, asdict(decision), f"promotion/{alias}.json")
    client.set_tag(run_id, "promotion.promoted", str(decision.promoted).lower())
    client.set_tag(run_id, "promotion.reason", decision.reason[:5000])
    client.set_tag(run_id, "promotion.metric", decision.metric)


def promote_if_better(
    client: MlflowClient,
    *,
    model_name: str,
    candidate_version: str,
    metric: str,
    higher_is_better: bool,
    candidate: float,
    baselines: dict[str, float],
    score_champion: Callable[[str], float] | None,
    run_id: str | None = None,
    alias: str = CHAMPION,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Move ``alias`` to ``candidate_version`` only if it beats every baseline and the champion.

    Args:
        client: the tracking/registry client.
        model_name: the registered model.
        candidate_version: the version just registered.
        metric: the name of the compared metric (for the record).
        higher_is_better: the metric's direction.
        candidate: the candidate's metric on the evaluation data.
        baselines: each baseline's metric on the same data; the candidate must strictly beat all.
        score_champion: re-scores a model URI (``models:/<name>/<version>``) on the same data;
            when the champion cannot be scored, it stays.
        run_id: the candidate's run, where the decision is logged (optional).
        alias: the alias to move.
        min_improvement: how much the candidate must beat the champion by.

    Returns:
        The decision. A worse (or equal, or non-finite) candidate is never promoted; the first
        candidate that beats the baselines is.
    """
    promoted, reason, champion, champion_version = _decide(
        client,
        model_name=model_name,
        candidate_version=str(candidate_version),
        metric=metric,
        higher_is_better=higher_is_better,
        candidate=float(candidate),
        baselines={k: float(v) for k, v in baselines.items()},
        score_champion=score_champion,
        alias=alias,
        min_improvement=min_improvement,
    )
    decision = PromotionDecision(
        model_name=model_name,
        candidate_version=str(candidate_version),
        promoted=promoted,
        reason=reason,
        metric=metric,
        higher_is_better=higher_is_better,
        candidate=float(candidate),
        baselines={k: float(v) for k, v in baselines.items()},
        champion=champion,
        champion_version=champion_version,
    )
    if promoted:
        client.set_registered_model_alias(model_name, alias, str(candidate_version))
    client.set_model_version_tag(
        model_name, str(candidate_version), f"promotion.{alias}", reason[:5000]
    )
    if run_id is not None:
        log_decision(client, decision, run_id, alias)
    return decision
