"""Which placement policy to serve: the champion of a validation evaluation report.

The report is ``evaluate_placement``'s (schema in ``docs/architecture.md`` and the placement
README): per family, each policy's metric as mean and 95 % interval over (seed, window) cells,
and each policy's paired difference to the reference policy (the learned one, ``dqn``),
``POLICY - reference`` with its interval.

The rule (:func:`select_champion`), on the gate metric (overload node-minutes, lower is better):

1. The learned policy is the champion when, in every judged family, its paired difference to
   every other candidate has an interval that excludes zero on the learned policy's side: it
   wins with a distinguishable margin, or it is not served.
2. Otherwise the champion is the best heuristic by mean (the mean over the judged families of
   each family's mean); an exact tie goes to the simplest, in the order of
   :data:`~components.model_contracts.PLACEMENT_HEURISTICS` (kube-default first: what a cluster
   runs without this project; then request-only scores; then the load-aware ones, which need
   metrics or a forecast). The learned policy is then registered but not promoted.

``random`` is a baseline and never a candidate. The report holds paired differences against the
learned policy only, so two heuristics are never compared with an interval; among them the mean
decides, since the gate has to serve one of them whatever the noise.

The reason names the comparison, e.g. ``dqn 52 [40, 61] vs trimaran-tlp 80 [70, 90]: paired -28
[-35, -20]`` (the paired figure is learned minus other: negative is better for the learned
policy when lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.errors import MlschedError
from components.model_contracts import CHAMPION_ALIAS, PLACEMENT_DQN, PLACEMENT_HEURISTICS

LEARNED_POLICY = "dqn"
VALIDATION_FAMILY = "validation"
"""The family name of the pipeline's validation evaluation (``champion.py``)."""
NEVER_CANDIDATES = ("random",)
SIMPLICITY_ORDER = PLACEMENT_HEURISTICS
"""Heuristics from the simplest (kube-default) to the most demanding; breaks exact ties."""
TABLE_METRICS = (
    ("overload_node_minutes", "overload node-min"),
    ("mean_cpu_utilization_nonempty", "CPU util. used nodes"),
    ("mean_nodes_used", "nodes used"),
    ("pods_pending", "pods pending"),
    ("mean_pending_minutes", "pending min"),
    ("throttled_pod_steps", "throttled pod-steps"),
)


@dataclass(frozen=True)
class ChampionChoice:
    """The policy to serve, its parameters, and why.

    Attributes:
        policy: a registered policy name (``dqn`` or a heuristic).
        params: the policy's parameters as the report gives them (``policy_params``).
        reason: the comparison the choice rests on, in words and figures.
        learned_wins: whether the learned policy won distinguishably (``policy`` is it).
        metric: the compared metric; families: the families judged.
    """

    policy: str
    params: dict
    reason: str
    learned_wins: bool
    metric: str = PLACEMENT_DQN.gate_metric
    families: tuple[str, ...] = field(default_factory=tuple)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.3g}"


def _signed(value: float) -> str:
    text = _number(value)
    return text if text.startswith("-") or value == 0 else f"+{text}"


def figure(summary: Mapping[str, Any]) -> str:
    """``mean [low, high]`` of one metric summary (``{"mean", "low", "high", ...}``)."""
    return (
        f"{_number(float(summary['mean']))} "
        f"[{_number(float(summary['low']))}, {_number(float(summary['high']))}]"
    )


def _summary(family: Mapping, policy: str, metric: str, where: str) -> Mapping[str, Any]:
    try:
        summary = family["policies"][policy][metric]
        float(summary["mean"]), float(summary["low"]), float(summary["high"])
    except (KeyError, TypeError, ValueError):
        raise MlschedError(f"{where}: no {metric} summary (mean, low, high) for {policy}") from None
    return summary


def _learned_minus(paired: Mapping[str, Any]) -> tuple[float, float, float]:
    """The report's ``POLICY - reference`` turned into ``reference - POLICY`` (mean, low, high)."""
    return -float(paired["mean_difference"]), -float(paired["high"]), -float(paired["low"])


@dataclass(frozen=True)
class _Comparison:
    family: str
    other: str
    mean: float
    low: float
    high: float
    wins: bool

    def text(self, report_family: Mapping, learned: str, metric: str) -> str:
        ours = figure(_summary(report_family, learned, metric, self.family))
        theirs = figure(_summary(report_family, self.other, metric, self.family))
        paired = f"{_signed(self.mean)} [{_number(self.low)}, {_number(self.high)}]"
        return f"{learned} {ours} vs {self.other} {theirs}: paired {paired}"


def _compare(
    family_name: str,
    family: Mapping,
    learned: str,
    other: str,
    higher_is_better: bool,
) -> _Comparison | None:
    paired = (family.get("paired") or {}).get(other)
    if paired is None:
        return None
    try:
        mean, low, high = _learned_minus(paired)
    except (KeyError, TypeError, ValueError):
        raise MlschedError(
            f"{family_name}: paired entry of {other} lacks mean_difference, low, high"
        ) from None
    finite = all(math.isfinite(v) for v in (mean, low, high))
    # the report's own flag too: with fewer than two cells the interval is a point
    separated = paired.get("distinguishable", True) is not False
    wins = finite and separated and (low > 0 if higher_is_better else high < 0)
    return _Comparison(family_name, other, mean, low, high, wins)


def _candidates(
    families: Mapping[str, Mapping], candidates: Sequence[str] | None, learned: str
) -> list[str]:
    present = [set(f.get("policies", {})) for f in families.values()]
    everywhere = set.intersection(*present) if present else set()
    chosen = list(candidates) if candidates is not None else sorted(everywhere)
    missing = [name for name in chosen if name not in everywhere]
    if missing:
        raise MlschedError(
            f"candidates {', '.join(missing)} are not evaluated in every judged family"
        )
    return [name for name in dict.fromkeys(chosen) if name not in NEVER_CANDIDATES]


def select_champion(
    report: Mapping[str, Any],
    *,
    metric: str = PLACEMENT_DQN.gate_metric,
    higher_is_better: bool = PLACEMENT_DQN.higher_is_better,
    candidates: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
) -> ChampionChoice:
    """The placement champion of a validation report (the rule in the module docstring).

    Args:
        report: the evaluation report (``families``, ``reference_policy``, ``policy_params``).
        metric: the compared metric; the paired differences must be on it.
        higher_is_better: its direction.
        candidates: the policies that may be served (default: every policy evaluated in all
            judged families); ``random`` never is.
        families: the families judged (default: all of the report's).

    Raises:
        MlschedError: the report lacks what the rule needs (a named family, a policy's summary,
            any heuristic to fall back on).
    """
    all_families = report.get("families") or {}
    names = list(families) if families is not None else list(all_families)
    unknown = [name for name in names if name not in all_families]
    if not names or unknown:
        raise MlschedError(
            f"evaluation report: no family {', '.join(unknown) or 'at all'} to judge on"
        )
    judged = {name: all_families[name] for name in names}
    learned = str(report.get("reference_policy") or LEARNED_POLICY)
    pool = _candidates(judged, candidates, learned)
    heuristics = [name for name in pool if name in SIMPLICITY_ORDER]
    if not heuristics:
        raise MlschedError(
            f"evaluation report: none of the heuristics {', '.join(SIMPLICITY_ORDER)} "
            "was evaluated; the gate needs one to fall back on"
        )
    params = report.get("policy_params") or {}
    direction = "higher" if higher_is_better else "lower"

    def family_mean(policy: str) -> float:
        values = [float(_summary(f, policy, metric, n)["mean"]) for n, f in judged.items()]
        return sum(values) / len(values)

    rank = {name: i for i, name in enumerate(SIMPLICITY_ORDER)}
    sign = -1.0 if higher_is_better else 1.0
    best = min(heuristics, key=lambda name: (sign * family_mean(name), rank[name]))

    comparisons: list[_Comparison] = []
    missing: list[str] = []
    if learned in pool:
        for family_name, family in judged.items():
            for other in pool:
                if other == learned:
                    continue
                found = _compare(family_name, family, learned, other, higher_is_better)
                if found is None:
                    missing.append(f"{other} ({family_name})")
                else:
                    comparisons.append(found)

    def text(c: _Comparison) -> str:
        where = f"{metric}, {direction} is better, family {c.family}"
        return f"{c.text(judged[c.family], learned, metric)} ({where})"

    if learned in pool and comparisons and not missing and all(c.wins for c in comparisons):
        closest = min(comparisons, key=lambda c: abs(c.mean))
        count = f"closest of {len(comparisons)} comparisons"
        reason = f"{text(closest)}: {learned} wins distinguishably ({count})"
        return ChampionChoice(
            learned, dict(params.get(learned, {})), reason, True, metric, tuple(names)
        )

    shown_best = ", ".join(
        figure(_summary(f, best, metric, n)) + (f" ({n})" if len(judged) > 1 else "")
        for n, f in judged.items()
    )
    serving = f"serving the best heuristic by mean, {best} {shown_best}"
    if learned not in pool:
        why = f"{learned} is not a candidate"
    elif missing:
        why = f"{learned} has no paired comparison with {', '.join(missing)}"
    else:
        losing = [c for c in comparisons if not c.wins]
        against_best = [c for c in losing if c.other == best]
        named = against_best[0] if against_best else min(losing, key=lambda c: abs(c.mean))
        verdict = "is not distinguishable" if named.low <= 0 <= named.high else "loses"
        why = f"{text(named)}: {learned} {verdict}"
    return ChampionChoice(
        best, dict(params.get(best, {})), f"{why}; {serving}", False, metric, tuple(names)
    )


def champion_table(
    report: Mapping[str, Any],
    champion: str,
    *,
    family: str | None = None,
    metrics: Sequence[tuple[str, str]] = TABLE_METRICS,
) -> str:
    """A Markdown table of one family's policies (mean [95 % interval] per metric), the
    champion marked and first; the metrics the report lacks are left out."""
    families = report.get("families") or {}
    if not families:
        raise MlschedError("evaluation report: no families")
    name = family if family is not None else next(iter(families))
    if name not in families:
        raise MlschedError(f"evaluation report: no family {name}")
    policies = families[name].get("policies", {})
    order = sorted(policies, key=lambda p: (p != champion, p))
    shown = [
        (key, label)
        for key, label in metrics
        if any(isinstance(policies[p].get(key), Mapping) for p in order)
    ]
    lines = [
        f"| policy ({name}) | " + " | ".join(label for _, label in shown) + " |",
        "|---" * (len(shown) + 1) + "|",
    ]
    for policy in order:
        cells = [
            figure(policies[policy][key]) if isinstance(policies[policy].get(key), Mapping) else ""
            for key, _ in shown
        ]
        label = f"**{policy}** (champion)" if policy == champion else policy
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def champion_summary(client, alias: str = CHAMPION_ALIAS) -> str:
    """What the placement model's ``alias`` serves, why, and the validation figures it was
    chosen on (every policy's mean [95 % interval], the served one first), as text; ``client``
    is an ``mlflow.MlflowClient`` of the registry."""
    import json
    import tempfile
    from pathlib import Path

    from components.placement.policy_spec import POLICY_TAG
    from components.tracking.gate import alias_version

    name = PLACEMENT_DQN.registered_name
    version = alias_version(client, name, alias)
    if version is None:
        return f"placement: no {alias} yet ({name} has no such alias)"
    found = client.get_model_version(name, version)
    tags = found.tags or {}
    policy = tags.get(POLICY_TAG, LEARNED_POLICY)
    lines = [f"placement {alias}: {policy} ({name} version {version})"]
    if tags.get(f"promotion.{alias}"):
        lines.append(f"why: {tags[f'promotion.{alias}']}")
    run_id = tags.get("promotion.decision_run")
    decision = None
    if run_id:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, f"promotion/{alias}.json", tmp)
            decision = json.loads(Path(path).read_text())
    if not decision or not decision.get("evaluation"):
        lines.append("no validation report recorded for this version")
        return "\n".join(lines) + "\n"
    evaluation = decision["evaluation"]
    served = decision.get("evaluated_policy") or policy
    cells = evaluation["families"][VALIDATION_FAMILY]["policies"][served]
    n = next(iter(cells.values()))["n"]
    lines += [
        f"validation: {n} cells (seeds x windows), mean [95 % interval]",
        "",
        champion_table(evaluation, served, family=VALIDATION_FAMILY),
    ]
    return "\n".join(lines)
