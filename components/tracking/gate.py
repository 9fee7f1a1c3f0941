"""The promotion gate: move the ``champion`` alias only to a candidate that beats everything.

:func:`evaluate_candidate` decides (the pipeline's evaluate stage): a candidate is promotable
when it stays under its model's ceilings (the detector's point FPR) and its metric beats every
baseline and the current champion, both scored on the same held-out data (the champion is
re-scored by the caller's function, so a champion trained on older data is judged on today's
data); given real evaluation data, all of them are scored on it instead and the decision says
so (``evaluated_on``). :func:`promote` acts on the decision (the promote
stage, the only place the alias moves) and logs it, with its numbers, to the candidate's run
(``promotion/<alias>.json`` and ``promotion.*`` tags) and to the model version's tags.

A decision may also serve something other than the candidate (the placement gate,
``components/placement/selection.py``): ``serve_policy`` names a heuristic that :func:`promote`
registers as a version (through the caller's ``register_serving``) unless ``serve_version``
already serves it, and the alias moves there; the candidate stays registered, not promoted.
``evaluation`` (the validation report) and ``evaluated_policy`` (the served policy's name in it)
go into ``promotion/<alias>.json``, and the version the alias then points at is tagged
``promotion.decision_run`` with the run that holds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.errors import MlschedError
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
    beats_baselines: bool
    serve_policy: str = ""
    serve_params: dict = field(default_factory=dict)
    serve_version: str | None = None
    evaluation: dict | None = None
    evaluated_policy: str = ""
    evaluated_on: str = ""
    # figure -> [the candidate's value, the most it may be]
    ceilings: dict[str, list] = field(default_factory=dict)


def decision_verb(promoted: bool, serve_policy: str = "") -> str:
    """What :func:`promote` does with a decision: ``promote`` the candidate, ``serve`` the named
    heuristic (placement: the candidate stays registered) or ``keep the champion``."""
    if promoted:
        return "promote"
    return f"serve {serve_policy}" if serve_policy else "keep the champion"


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


def evaluate_candidate(
    client: MlflowClient,
    *,
    model_name: str,
    candidate_version: str,
    metric: str,
    higher_is_better: bool,
    candidate: float,
    baselines: dict[str, float],
    score_champion: Callable[[str], float] | None,
    alias: str = CHAMPION,
    min_improvement: float = 0.0,
    evaluated_on: str = "",
    ceilings: Mapping[str, tuple[float | None, float]] | None = None,
) -> PromotionDecision:
    """Whether ``candidate_version`` beats every baseline and the champion; changes nothing.

    Args:
        client: the tracking/registry client.
        model_name: the registered model.
        candidate_version: the candidate's registered version.
        metric: the name of the compared metric (for the record).
        higher_is_better: the metric's direction.
        candidate: the candidate's metric on the held-out data.
        baselines: each baseline's metric on the same data; the candidate must strictly beat all.
        score_champion: re-scores a model URI (``models:/<name>/<version>``) on the same data.
            When the store cannot be reached the champion stays; when the champion itself
            cannot be loaded or scored by this code (say, pickled by an older release), the
            candidate replaces it.
        alias: the alias the decision is about.
        min_improvement: how much the candidate must beat the champion by.
        evaluated_on: the data all three were scored on, when not the candidate's own held-out
            data (say, real traces); it opens the reason.
        ceilings: figure -> (the candidate's value on the same data, its bound): a candidate
            above a bound, or without the figure, is not promotable, however well it scores.

    Returns:
        The decision. A worse (or equal, or non-finite) candidate is never promotable; the first
        candidate that beats the baselines is.
    """
    candidate, candidate_version = float(candidate), str(candidate_version)
    baselines = {k: float(v) for k, v in baselines.items()}
    limits = {
        k: [None if v is None else float(v), float(b)] for k, (v, b) in (ceilings or {}).items()
    }

    def decided(promoted: bool, reason: str, champion=None, champion_version=None):
        return PromotionDecision(
            model_name,
            candidate_version,
            promoted,
            f"on {evaluated_on}: {reason}" if evaluated_on else reason,
            metric,
            higher_is_better,
            candidate,
            baselines,
            champion,
            champion_version,
            all(_beats(candidate, v, higher_is_better, 0.0) for v in baselines.values()),
            evaluated_on=evaluated_on,
            ceilings=limits,
        )

    direction = f"{'higher' if higher_is_better else 'lower'} is better"
    ours = f"candidate {metric}={candidate:.6g}"
    if not math.isfinite(candidate):
        return decided(False, f"candidate {metric} is not a number ({candidate})")
    for name, value in sorted(baselines.items()):
        if not _beats(candidate, value, higher_is_better, 0.0):
            return decided(False, f"{ours} does not beat baseline {name}={value:.6g} ({direction})")
    for name, (value, bound) in sorted(limits.items()):
        if value is None or not math.isfinite(value):
            return decided(False, f"candidate {name} is unknown; it must be at most {bound:g}")
        if value > bound:
            return decided(False, f"candidate {name}={value:.6g} is above its ceiling {bound:g}")
    version = alias_version(client, model_name, alias)
    if version is None:
        shown = ", ".join(f"{name}={value:.6g}" for name, value in sorted(baselines.items()))
        return decided(True, f"no {alias} yet; {ours} beats every baseline ({shown}; {direction})")
    held = f"{alias} version {version}"
    if version == candidate_version:
        return decided(False, f"version {version} is already the {alias}", None, version)
    if score_champion is None:
        return decided(
            False, f"{held} exists but no function was given to re-score it", None, version
        )
    try:
        champion = float(score_champion(f"models:/{model_name}/{version}"))
    except (MlflowException, OSError) as error:
        # The store or its artifacts are unreachable: nothing is known about the champion.
        return decided(False, f"could not re-score {held}: {error}", None, version)
    except Exception as error:  # noqa: BLE001 - the champion itself is broken
        # The code that scores it also serves it: a champion this code cannot load would make
        # every prediction fail, while the candidate was just scored by the same code.
        reason = f"{held} cannot be loaded or scored by this code ({type(error).__name__}: {error})"
        return decided(True, f"{ours} beats every baseline; {reason}", None, version)
    if not _beats(candidate, champion, higher_is_better, min_improvement):
        reason = f"does not beat {held} ({champion:.6g}) by more than {min_improvement:g}"
        return decided(False, f"{ours} {reason} ({direction})", champion, version)
    reason = f"{ours} beats every baseline and {held} ({champion:.6g})"
    return decided(True, reason, champion, version)


RegisterServing = Callable[[MlflowClient, PromotionDecision], str]
"""Registers the decision's ``serve_policy`` as a version of its model; returns the version."""


def promote(
    client: MlflowClient,
    decision: PromotionDecision,
    run_id: str | None = None,
    alias: str = CHAMPION,
    register_serving: RegisterServing | None = None,
) -> str | None:
    """Move ``alias`` to the candidate when the decision says so, or to the version serving
    its ``serve_policy`` (registered with ``register_serving`` when ``serve_version`` is None);
    record the decision on the model versions (``promotion.<alias>`` tag) and on ``run_id``
    (JSON artifact, tags). Returns the version the alias points at afterwards.

    Raises:
        MlschedError: a ``serve_policy`` to register and no ``register_serving``.
    """
    name, version = decision.model_name, decision.candidate_version
    reason = decision.reason[:5000]
    if decision.promoted:
        client.set_registered_model_alias(name, alias, version)
    elif decision.serve_policy:
        served = decision.serve_version
        if served is None:
            if register_serving is None:
                raise MlschedError(
                    f"{name}: serving {decision.serve_policy} needs a version; "
                    "no function was given to register it"
                )
            served = register_serving(client, decision)
        client.set_registered_model_alias(name, alias, served)
        client.set_model_version_tag(name, served, f"promotion.{alias}", reason)
    client.set_model_version_tag(name, version, f"promotion.{alias}", reason)
    now = alias_version(client, name, alias)
    if run_id is not None:
        client.log_dict(run_id, asdict(decision), f"promotion/{alias}.json")
        client.set_tag(run_id, "promotion.promoted", str(decision.promoted).lower())
        client.set_tag(run_id, "promotion.reason", reason)
        client.set_tag(run_id, "promotion.metric", decision.metric)
        if decision.evaluation is not None and now is not None:
            client.set_model_version_tag(name, now, "promotion.decision_run", run_id)
    return now


def registry_state(client: MlflowClient, model_names, alias: str = CHAMPION) -> dict[str, dict]:
    """Per registered model: how many versions, the latest one and the ``alias`` version."""
    state: dict[str, dict] = {}
    for name in model_names:
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            versions = []
        latest = max((int(v.version) for v in versions), default=None)
        state[name] = {
            "versions": len(versions),
            "latest": latest,
            alias: alias_version(client, name, alias),
        }
    return state
