"""Argument types shared by the ``mlsched`` commands: each rejects a bad value with one line."""

from __future__ import annotations

import argparse

import pandas as pd

from components.errors import MlschedError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def fraction(text: str) -> float:
    """A share strictly between 0 and 1, such as a train fraction."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value:g}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {value}")
    return value


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_seconds(text: str) -> float:
    value = non_negative_seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive, got 0")
    return value


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
