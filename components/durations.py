"""Parsing of Prometheus-style durations such as ``30s``, ``5m``, ``1h``, ``14d``."""

import re

from components.errors import MlschedError

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration_seconds(
    text: str | int | float, *, what: str = "duration", allow_zero: bool = False
) -> float:
    """Seconds in ``text``: ``"30s"``, ``"5m"``, ``"1.5h"``; a bare number counts as seconds.

    Args:
        what: names the value in the error (empty: the message alone).
        allow_zero: accept 0 (a duration that switches something off).

    Raises:
        MlschedError: when the text is not a positive (or, with ``allow_zero``, zero) duration.
    """
    label = f"{what}: " if what else ""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            try:
                seconds = float(text)
            except ValueError:
                raise MlschedError(
                    f"{label}cannot read {text!r} as a duration; use forms like 30s, 5m, 1h, 14d"
                ) from None
        else:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not (seconds > 0 or (allow_zero and seconds == 0)):
        bound = "must not be negative" if allow_zero else "must be positive"
        raise MlschedError(f"{label}{bound}, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact Prometheus-style form of ``seconds``: 90 -> ``"90s"``, 300 -> ``"5m"``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return f"{int(round(seconds * 1000))}ms"
