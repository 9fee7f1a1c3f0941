"""The placement gate's rule on evaluation reports built here in the contract's schema."""

from __future__ import annotations

import pytest

from components.errors import MlschedError
from components.placement.selection import champion_table, select_champion

METRIC = "overload_node_minutes"


def summary(mean: float, half: float) -> dict:
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": 10}


def paired(difference: float, half: float) -> dict:
    """``POLICY - dqn`` with its interval, as the report writes it."""
    low, high = difference - half, difference + half
    distinguishable = low > 0 or high < 0
    verdict = "not distinguishable"
    if distinguishable:
        verdict = "reference better" if difference > 0 else "reference worse"
    return {
        "metric": METRIC,
        "mean_difference": difference,
        "low": low,
        "high": high,
        "distinguishable": distinguishable,
        "verdict": verdict,
    }


def family(means: dict[str, float], half: float, paired_half: float) -> dict:
    return {
        "held_out_from_training": False,
        "policies": {
            name: {METRIC: summary(mean, half), "pods_pending": summary(1.0, 0.5)}
            for name, mean in means.items()
        },
        "paired": {
            name: paired(mean - means["dqn"], paired_half)
            for name, mean in means.items()
            if name != "dqn"
        },
    }


def report(**families: dict) -> dict:
    return {
        "metric": METRIC,
        "reference_policy": "dqn",
        "families": families,
        "policy_params": {"trimaran-tlp": {"target_percent": 40.0}, "dqn": {"hidden": 64}},
        "seeds": [0, 1, 2, 3, 4],
        "windows": [0, 1],
    }


MEANS = {
    "dqn": 52.0,
    "random": 300.0,
    "kube-default": 120.0,
    "least-allocated": 110.0,
    "trimaran-tlp": 80.0,
    "greedy-predictive": 95.0,
}


def test_a_dqn_that_wins_distinguishably_everywhere_is_the_champion():
    choice = select_champion(report(synthetic=family(MEANS, 10, 8)))
    assert choice.policy == "dqn" and choice.learned_wins
    assert choice.params == {"hidden": 64}
    # the reason names the closest rival with both intervals and the paired difference
    assert "dqn 52 [42, 62] vs trimaran-tlp 80 [70, 90]: paired -28 [-36, -20]" in choice.reason
    assert "wins distinguishably" in choice.reason


def test_a_dqn_not_distinguishable_from_the_best_heuristic_is_not_served():
    means = {**MEANS, "dqn": 75.0}
    choice = select_champion(report(synthetic=family(means, 10, 8)))
    assert choice.policy == "trimaran-tlp" and not choice.learned_wins
    assert choice.params == {"target_percent": 40.0}
    assert "dqn 75 [65, 85] vs trimaran-tlp 80 [70, 90]: paired -5 [-13, 3]" in choice.reason
    assert "not distinguishable" in choice.reason
    assert "serving the best heuristic by mean, trimaran-tlp 80 [70, 90]" in choice.reason


def test_a_dqn_worse_than_random_loses_to_the_best_heuristic():
    means = {**MEANS, "dqn": 1615.0}
    choice = select_champion(report(synthetic=family(means, 50, 40)))
    assert choice.policy == "trimaran-tlp"
    assert "paired +1535 [1495, 1575]" in choice.reason and "dqn loses" in choice.reason


def test_the_dqn_must_win_in_every_judged_family():
    worse = {**MEANS, "dqn": 100.0}
    both = report(synthetic=family(MEANS, 10, 8), bitbrains=family(worse, 10, 8))
    choice = select_champion(both)
    assert choice.policy == "trimaran-tlp" and choice.families == ("synthetic", "bitbrains")
    assert "dqn 100 [90, 110] vs trimaran-tlp 80 [70, 90]: paired +20 [12, 28]" in choice.reason
    assert "family bitbrains" in choice.reason
    assert "trimaran-tlp 80 [70, 90] (synthetic), 80 [70, 90] (bitbrains)" in choice.reason
    assert select_champion(both, families=["synthetic"]).policy == "dqn"


def test_exact_ties_go_to_the_simplest_heuristic_and_random_is_never_a_candidate():
    means = {"dqn": 500.0, "random": 10.0, "trimaran-tlp": 80.0, "kube-default": 80.0}
    choice = select_champion(report(synthetic=family(means, 10, 8)))
    assert choice.policy == "kube-default"
    # a dqn that beats every heuristic but not random still wins: random is no candidate
    means = {"dqn": 50.0, "random": 10.0, "trimaran-tlp": 80.0, "kube-default": 90.0}
    assert select_champion(report(synthetic=family(means, 10, 8))).policy == "dqn"


def test_a_missing_paired_comparison_means_no_win():
    data = report(synthetic=family(MEANS, 10, 8))
    del data["families"]["synthetic"]["paired"]["kube-default"]
    choice = select_champion(data)
    assert choice.policy == "trimaran-tlp"
    assert "no paired comparison with kube-default (synthetic)" in choice.reason


def test_a_single_cell_is_no_distinguishable_win():
    data = report(synthetic=family(MEANS, 0, 0))
    for entry in data["families"]["synthetic"]["paired"].values():
        entry.update(n=1, distinguishable=False, verdict="not distinguishable")
    assert select_champion(data).policy == "trimaran-tlp"


def test_candidates_restrict_the_pool():
    data = report(synthetic=family({**MEANS, "dqn": 100.0}, 10, 8))
    choice = select_champion(data, candidates=["dqn", "kube-default", "least-allocated"])
    assert choice.policy == "dqn"
    assert "vs least-allocated 110 [100, 120]" in choice.reason


def test_a_report_without_what_the_rule_needs_is_a_clear_error():
    with pytest.raises(MlschedError, match="no family nab"):
        select_champion(report(synthetic=family(MEANS, 10, 8)), families=["nab"])
    with pytest.raises(MlschedError, match="fall back on"):
        select_champion(report(synthetic=family({"dqn": 1.0, "random": 2.0}, 1, 1)))
    with pytest.raises(MlschedError, match="not evaluated in every judged family"):
        select_champion(report(synthetic=family(MEANS, 10, 8)), candidates=["dqn", "x"])
    broken = report(synthetic=family(MEANS, 10, 8))
    del broken["families"]["synthetic"]["policies"]["trimaran-tlp"][METRIC]["low"]
    with pytest.raises(MlschedError, match="no overload_node_minutes summary"):
        select_champion(broken)


def test_champion_table_shows_every_policy_with_intervals_champion_first():
    data = report(synthetic=family(MEANS, 10, 8))
    table = champion_table(data, "trimaran-tlp")
    lines = table.splitlines()
    assert lines[0] == "| policy (synthetic) | overload node-min | pods pending |"
    assert lines[2] == "| **trimaran-tlp** (champion) | 80 [70, 90] | 1 [0.5, 1.5] |"
    assert len(lines) == 2 + len(MEANS)
