"""The placement gate in the pipeline: which policy the ``champion`` alias of the placement model
serves after a DQN candidate was trained.

:func:`placement_decision` (the evaluate stage; side-effect free on the registry) replays the
candidate DQN, random and every heuristic on the validation part of the candidate's own workload
(the ``held_out`` of its training result: the part after its training fraction, cut into
:data:`VALIDATION_WINDOWS` disjoint windows, times its evaluation seeds) through
:func:`components.placement.evaluate.evaluate_placement`, and applies the rule of
:func:`components.placement.selection.select_champion`:

* the DQN wins distinguishably: it is promoted, unless a DQN champion is in place that it does
  not beat distinguishably on the same cells (paired interval), which then stays;
* it does not: it stays registered, not promoted; a DQN champion in place is judged again on the
  same cells and stays if it still wins distinguishably; otherwise the best heuristic (with its
  parameters) is served: :func:`register_heuristic_champion` (called by the promote stage)
  registers it as a version of the placement model (``policy/policy.json``,
  :mod:`components.placement.policy_spec`) unless the champion already serves it.

The decision carries the validation report, so the promote stage records it beside the reason
and ``mlsched serving placement-champion`` prints the served policy's figures with intervals
(:func:`components.placement.selection.champion_summary`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from components.errors import MlschedError
from components.model_contracts import CHAMPION_ALIAS, PLACEMENT_DQN, PLACEMENT_HEURISTICS
from components.placement.intervals import paired_difference
from components.placement.policy import PlacementPolicy
from components.placement.policy_spec import (
    POLICY_SPEC_ARTIFACT,
    POLICY_TAG,
    PolicySpec,
    read_policy_spec,
    save_policy_spec,
)
from components.placement.selection import (
    LEARNED_POLICY,
    VALIDATION_FAMILY,
    ChampionChoice,
    figure,
    select_champion,
)
from components.tracking.gate import PromotionDecision, alias_version

VALIDATION_WINDOWS = 3
VALIDATION_POLICIES = (LEARNED_POLICY, "random", *PLACEMENT_HEURISTICS)

Evaluate = Callable[[Mapping[str, Any], PlacementPolicy, Sequence[str]], dict]
"""``evaluate(held_out, dqn_policy, policies)`` -> the validation report."""


def validation_report(
    held_out: Mapping[str, Any],
    dqn_policy: PlacementPolicy,
    policies: Sequence[str] = VALIDATION_POLICIES,
    *,
    windows: int = VALIDATION_WINDOWS,
    workers: int | None = None,
) -> dict:
    """The evaluation report of ``policies`` (``dqn`` = ``dqn_policy``) on the validation part
    of the workload a placement training result describes (``held_out``: ``workload``,
    ``nodes``, ``train_fraction``, ``eval_seeds``), one family named ``validation``.

    Raises:
        MlschedError: ``held_out`` lacks a key, or a file does not read.
    """
    from components.contracts import read_nodes_table, read_workload_trace
    from components.placement.evaluate import custom_family, evaluate_placement
    from components.placement.workload import cluster_from_nodes, workload_from_trace

    missing = [k for k in ("workload", "nodes", "train_fraction") if k not in held_out]
    if missing:
        raise MlschedError(f"placement result: held_out lacks {', '.join(missing)}")
    workload = workload_from_trace(read_workload_trace(held_out["workload"]), held_out["workload"])
    cluster = cluster_from_nodes(read_nodes_table(held_out["nodes"]))
    return evaluate_placement(
        [custom_family(workload, cluster, VALIDATION_FAMILY)],
        list(policies),
        seeds=range(max(1, int(held_out.get("eval_seeds", 3)))),
        windows=windows,
        train_fraction=float(held_out["train_fraction"]),
        dqn=dqn_policy,
        output=None,
        workers=workers,
    )


def _cells(report: Mapping[str, Any], policy: str, metric: str) -> dict[tuple, float]:
    cells = report["families"][VALIDATION_FAMILY].get("cells", [])
    return {(c["seed"], c["window"]): float(c[metric]) for c in cells if c["policy"] == policy}


def candidate_vs_champion(
    candidate: Mapping[str, Any], champion: Mapping[str, Any], metric: str
) -> tuple[bool, str]:
    """(Whether the candidate DQN beats the champion DQN distinguishably on the same cells, the
    comparison in words), both replayed as ``dqn`` in their reports."""
    ours, theirs = (
        _cells(candidate, LEARNED_POLICY, metric),
        _cells(champion, LEARNED_POLICY, metric),
    )
    keys = sorted(set(ours) & set(theirs))
    if not keys:
        return False, "no common validation cells with the champion"
    lower = not PLACEMENT_DQN.higher_is_better
    paired = paired_difference(
        [ours[k] for k in keys], [theirs[k] for k in keys], lower_is_better=lower
    )
    family = VALIDATION_FAMILY

    def shown(report: Mapping[str, Any]) -> str:
        return figure(report["families"][family]["policies"][LEARNED_POLICY][metric])

    wins = bool(paired["distinguishable"]) and (
        paired["mean_difference"] < 0 if lower else paired["mean_difference"] > 0
    )
    text = (
        f"dqn {shown(candidate)} vs champion dqn {shown(champion)}: paired "
        f"{paired['mean_difference']:+.3g} [{paired['low']:.3g}, {paired['high']:.3g}]"
    )
    return wins, text


def _served_heuristic(client: MlflowClient, name: str, version: str) -> PolicySpec | None:
    """The heuristic a registered version serves (None for a DQN version)."""
    found = client.get_model_version(name, version)
    if POLICY_TAG not in (found.tags or {}):
        return None
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version),
            dst_path=tmp,
            tracking_uri=client.tracking_uri,
        )
        return read_policy_spec(local)


def placement_decision(
    client: MlflowClient,
    result: Mapping[str, Any],
    *,
    alias: str = CHAMPION_ALIAS,
    evaluate: Evaluate = validation_report,
    load_policy: Callable[[str], PlacementPolicy] | None = None,
) -> PromotionDecision:
    """The gate's decision on a placement training result (the rule in the module docstring);
    changes nothing in the registry.

    Args:
        client: the tracking/registry client (the fluent API pointed at it, for model URIs).
        result: the DQN entrypoint's result document.
        evaluate: builds a validation report (tests pass a stand-in with fixed figures).
        load_policy: a DQN policy from a model URI (default: ``load_dqn_policy``).
    """
    if load_policy is None:
        from components.placement.dqn.policy import load_dqn_policy as load_policy
    spec = PLACEMENT_DQN
    name, metric = spec.registered_name, spec.gate_metric
    version = str(result.get("registered_version") or "")
    if not result.get("model_uri"):
        raise MlschedError("placement result: no model_uri (train with tracking to gate it)")
    report = evaluate(result["held_out"], load_policy(result["model_uri"]), VALIDATION_POLICIES)
    choice = select_champion(report, metric=metric, higher_is_better=spec.higher_is_better)
    policies = report["families"][VALIDATION_FAMILY]["policies"]
    means = {policy: float(summary[metric]["mean"]) for policy, summary in policies.items()}

    def better(a: float, b: float) -> bool:
        return a > b if spec.higher_is_better else a < b

    baselines = {p: means[p] for p in spec.baselines if p in means}
    ours = means.get(LEARNED_POLICY, float("nan"))
    current = alias_version(client, name, alias)
    current_heuristic = None if current is None else _served_heuristic(client, name, current)
    current_dqn = current is not None and current_heuristic is None and current != version

    def decided(promoted: bool, reason: str, **fields) -> PromotionDecision:
        return PromotionDecision(
            model_name=name,
            candidate_version=version,
            promoted=promoted and bool(version),
            reason=reason,
            metric=metric,
            higher_is_better=spec.higher_is_better,
            candidate=ours,
            baselines=baselines,
            champion=fields.pop("champion", None),
            champion_version=current,
            beats_baselines=all(better(ours, v) for v in baselines.values()),
            **{"evaluation": report, "evaluated_policy": choice.policy, **fields},
        )

    champion_report = None
    if current_dqn:
        champion_policy = load_policy(f"models:/{name}/{current}")
        policies_again = VALIDATION_POLICIES if not choice.learned_wins else (LEARNED_POLICY,)
        champion_report = evaluate(result["held_out"], champion_policy, policies_again)
        champion_mean = float(
            champion_report["families"][VALIDATION_FAMILY]["policies"][LEARNED_POLICY][metric][
                "mean"
            ]
        )
    if choice.learned_wins:
        if champion_report is None:
            return decided(True, choice.reason)
        wins, text = candidate_vs_champion(report, champion_report, metric)
        if wins:
            return decided(True, f"{choice.reason}; {text}", champion=champion_mean)
        return decided(
            False,
            f"{choice.reason}; but {text}: {alias} version {current} stays",
            champion=champion_mean,
            evaluation=None,
        )
    if champion_report is not None:
        kept = select_champion(champion_report, metric=metric)
        if kept.learned_wins:
            return decided(
                False,
                f"{choice.reason}; {alias} version {current} (dqn) still wins: {kept.reason}",
                champion=champion_mean,
                evaluation=champion_report,
                evaluated_policy=LEARNED_POLICY,
            )
    return _serve_heuristic(decided, choice, current, current_heuristic, alias)


def _serve_heuristic(
    decided: Callable[..., PromotionDecision],
    choice: ChampionChoice,
    current: str | None,
    current_heuristic: PolicySpec | None,
    alias: str,
) -> PromotionDecision:
    same = (
        current_heuristic is not None
        and current_heuristic.policy == choice.policy
        and current_heuristic.params == choice.params
    )
    reason = choice.reason + (f"; already the {alias} (version {current})" if same else "")
    return decided(
        False,
        reason,
        serve_policy=choice.policy,
        serve_params=dict(choice.params),
        serve_version=current if same else None,
    )


def register_heuristic_champion(client: MlflowClient, decision: PromotionDecision) -> str:
    """Register the decision's ``serve_policy`` as a version of its model: a run in the model's
    experiment holding ``policy/policy.json`` and the validation report; returns the version."""
    from mlflow.exceptions import MlflowException

    from components.tracking.runs import get_or_create_experiment

    spec = PolicySpec(decision.serve_policy, dict(decision.serve_params), decision.reason)
    name = decision.model_name
    experiment = get_or_create_experiment(client, name)
    run = client.create_run(
        experiment,
        run_name=f"heuristic-{spec.policy}",
        tags={"model_name": name, POLICY_TAG: spec.policy},
    )
    run_id = run.info.run_id
    status = "FAILED"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = save_policy_spec(spec, Path(tmp) / POLICY_SPEC_ARTIFACT)
            client.log_artifacts(run_id, str(folder), POLICY_SPEC_ARTIFACT)
        if decision.evaluation is not None:
            client.log_dict(run_id, decision.evaluation, "validation/report.json")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    with contextlib.suppress(MlflowException):  # already registered
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/{POLICY_SPEC_ARTIFACT}"
    tags = {POLICY_TAG: spec.policy}
    return str(client.create_model_version(name, source, run_id=run_id, tags=tags).version)
