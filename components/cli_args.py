"""What every command line shares: argument types that reject a bad value with one line, and
the run of the chosen subcommand (a user error is one line and exit status 2, never a
traceback)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import pandas as pd

from components.durations import parse_duration_seconds
from components.errors import MlschedError


def _number(text: str, kind: type, expected: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def port(text: str) -> int:
    value = _number(text, int, "a port number")
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def number_within(
    low: float, high: float, *, include_low: bool = False, include_high: bool = False
) -> Callable[[str], float]:
    """The argument type of a number between ``low`` and ``high``, ends excluded unless included
    (a flag whose range differs from :func:`fraction`'s names its bounds here)."""
    if include_low or include_high:
        bounds = (
            f"within {'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        )
    else:
        bounds = f"strictly between {low:g} and {high:g}"

    def parse(text: str) -> float:
        value = _number(text, float, "a number")
        above = value >= low if include_low else value > low
        below = value <= high if include_high else value < high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must lie {bounds}, got {value:g}")
        return value

    return parse


fraction = number_within(0.0, 1.0)  # a share such as a train fraction
percent = number_within(0.0, 100.0, include_low=True, include_high=True)


def _duration(text: str, allow_zero: bool) -> float:
    try:
        return parse_duration_seconds(text, what="", allow_zero=allow_zero)
    except MlschedError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_seconds(text: str) -> float:
    """A duration in seconds, above 0: ``30s``, ``2m``, ``1.5h``, ``50ms`` or plain seconds."""
    return _duration(text, allow_zero=False)


def non_negative_seconds(text: str) -> float:
    """A duration in seconds as :func:`positive_seconds`, 0 allowed."""
    return _duration(text, allow_zero=True)


def utc_timestamp(text: str, what: str) -> pd.Timestamp:
    """An ISO 8601 time with a zone, in UTC; ``what`` names the flag in the error."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise MlschedError(
            f"{what}: cannot parse {text!r}; use ISO 8601 such as 2026-01-01T00:00:00Z"
        ) from None
    if stamp.tzinfo is None:
        raise MlschedError(f"{what}: {text!r} has no time zone; add Z or an offset")
    return stamp.tz_convert("UTC")


def subcommand_parser(prog: str, *add_parsers: Callable) -> argparse.ArgumentParser:
    """A parser of ``prog`` whose subcommands the ``add_*_parser`` functions add."""
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in add_parsers:
        add(commands)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand's handler; its exit status.

    A :class:`~components.errors.MlschedError` is printed as ``<prog> <command>: error: ...``
    (status 2); Ctrl-C ends with status 130.
    """
    args = parser.parse_args(argv)
    where = f"{parser.prog} {args.command}"
    try:
        return args.handler(args)
    except MlschedError as error:
        print(f"{where}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
