"""The shared argument types: durations wherever a flag is a duration, bounded numbers."""

from __future__ import annotations

import argparse

import pytest

from components.cli_args import (
    fraction,
    non_negative_seconds,
    number_within,
    percent,
    positive_seconds,
)
from components.harness.replay.cli import add_replay_parser
from scheduler_client.cli import add_extender_parser


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("50ms", 0.05), ("1.5h", 5400.0), ("3", 3.0)],
)
def test_durations_take_units_or_plain_seconds(text, seconds):
    assert positive_seconds(text) == seconds == non_negative_seconds(text)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (positive_seconds, "0", "must be positive, got '0'"),
        (non_negative_seconds, "-1", "must not be negative, got '-1'"),
        (
            positive_seconds,
            "soon",
            "cannot read 'soon' as a duration; use forms like 30s, 5m, 1h, 14d",
        ),
        (fraction, "1", "must lie strictly between 0 and 1, got 1"),
        (percent, "120", "must lie within [0, 100], got 120"),
        (number_within(0.0, 1.5, include_high=True), "0", "must lie within (0, 1.5], got 0"),
        (fraction, "half", "expected a number, got 'half'"),
    ],
)
def test_bad_values_are_one_line_argument_errors(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        parse(text)
    assert str(error.value) == message
    assert non_negative_seconds("0") == 0.0 and percent("0") == 0.0 and percent("100") == 100.0


def _parse(add, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlsched")
    add(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_every_timeout_of_the_extender_and_the_replay_takes_a_duration(capsys):
    extender = _parse(
        add_extender_parser,
        *("extender", "--timeout", "2m", "--scorer-timeout", "50ms", "--refresh", "250ms"),
        *("--max-staleness", "1m", "--cpu-threshold", "1.2"),
    )
    assert (extender.timeout_seconds, extender.scorer_timeout_seconds) == (120.0, 0.05)
    assert (extender.refresh_seconds, extender.max_staleness_seconds) == (0.25, 60.0)
    assert extender.cpu_threshold == 1.2
    replay = _parse(
        add_replay_parser,
        *("replay", "--workload", "w", "--nodes", "n", "--timeout", "2m", "--sync-timeout", "0"),
    )
    assert (replay.timeout, replay.sync_timeout) == (120.0, 0.0)
    with pytest.raises(SystemExit):
        _parse(add_extender_parser, "extender", "--memory-threshold", "1.6")
    assert (
        "argument --memory-threshold: must lie within (0, 1.5], got 1.6" in capsys.readouterr().err
    )
