"""Means with t-intervals and paired differences: hand-worked figures and verdicts."""

import pytest

from components.placement.intervals import paired_difference, t_interval


def test_t_interval_hand_worked():
    # mean 2, sample sd 1, n 3: half width t(0.975, 2) x 1 / sqrt(3) = 4.3027 / 1.7321
    summary = t_interval([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0 and summary["n"] == 3
    assert summary["high"] - 2.0 == pytest.approx(2.4841, abs=1e-4)
    assert 2.0 - summary["low"] == pytest.approx(2.4841, abs=1e-4)


def test_a_floor_cuts_the_interval_where_the_figure_cannot_go():
    # mean 1, sd 1.732, n 3: the t-interval reaches 1 - 4.30 < 0; pending pods cannot be negative
    free = t_interval([0.0, 0.0, 3.0])
    cut = t_interval([0.0, 0.0, 3.0], floor=0.0)
    assert free["low"] < 0 and cut["low"] == 0.0
    assert cut["high"] == free["high"] and cut["mean"] == free["mean"] == 1.0
    assert t_interval([5.0, 6.0, 7.0], floor=0.0) == t_interval([5.0, 6.0, 7.0])


def test_one_value_has_no_width_and_bad_values_are_refused():
    assert t_interval([7.0]) == {"mean": 7.0, "low": 7.0, "high": 7.0, "n": 1}
    with pytest.raises(ValueError, match="no values"):
        t_interval([])
    with pytest.raises(ValueError, match="finite"):
        t_interval([1.0, float("nan")])


def test_pairing_removes_what_cells_share():
    # the cells differ a lot, the policy is always 10 above the reference: distinguishable
    reference = [100.0, 500.0, 50.0, 900.0, 300.0]
    worse = [r + 10 + (-1) ** i for i, r in enumerate(reference)]
    paired = paired_difference(worse, reference)
    assert paired["mean_difference"] == pytest.approx(10.2)
    assert paired["low"] > 0 and paired["distinguishable"]
    assert paired["verdict"] == "reference better"
    flipped = paired_difference(reference, worse)
    assert flipped["verdict"] == "reference worse" and flipped["high"] < 0
    # for a metric where higher is better, a higher policy means the reference is worse
    assert paired_difference(worse, reference, lower_is_better=False)["verdict"] == (
        "reference worse"
    )


def test_an_interval_across_zero_or_a_single_cell_is_not_distinguishable():
    noisy = paired_difference([1.0, -2.0, 3.0, -1.0], [0.0, 0.0, 0.0, 0.0])
    assert noisy["low"] < 0 < noisy["high"]
    assert noisy["verdict"] == "not distinguishable" and not noisy["distinguishable"]
    single = paired_difference([5.0], [1.0])
    assert single["verdict"] == "not distinguishable"
    with pytest.raises(ValueError, match="paired cells differ"):
        paired_difference([1.0, 2.0], [1.0])
