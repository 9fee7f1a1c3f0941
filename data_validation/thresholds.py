"""Thresholds of the node-metrics gate: the shipped ``thresholds.yaml``, optionally overridden.

A thresholds file is YAML with the sections and keys of the shipped file; an override may set only
some keys, the others keep the shipped values. A malformed file raises :class:`ThresholdsError`
naming the file and the key (``timestamps.max_gap``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.config_files import read_yaml
from components.contracts import UTILIZATION_RANGE
from components.durations import parse_duration_seconds
from components.errors import MlschedError

DEFAULT_THRESHOLDS_FILE = Path(__file__).with_name("thresholds.yaml")


class ThresholdsError(MlschedError):
    """A thresholds file that cannot be used: names the file and the key."""


@dataclass(frozen=True)
class Thresholds:
    """What the gate accepts. Durations are in seconds; ``None`` switches a check off."""

    min_rows: int = 1000
    max_rows: int | None = None
    min_nodes: int = 1
    min_rows_per_node: int = 100
    utilization_range: tuple[float, float] = UTILIZATION_RANGE
    max_null_ratio: float = 0.0
    expected_step_seconds: float | None = None
    step_tolerance: float = 0.1
    max_off_grid_step_ratio: float = 0.01
    max_missing_scrape_ratio: float = 0.05
    max_gap_seconds: float | None = 3600.0
    max_backward_jumps: int = 0
    max_age_seconds: float | None = 2 * 86_400.0
    max_future_seconds: float | None = 300.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["utilization_range"] = list(self.utilization_range)
        return out


# (section, key in the file) -> (field of Thresholds, kind, may be null)
_KEYS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("rows", "min_rows"): ("min_rows", "count", False),
    ("rows", "max_rows"): ("max_rows", "count", True),
    ("rows", "min_nodes"): ("min_nodes", "count", False),
    ("rows", "min_rows_per_node"): ("min_rows_per_node", "count", False),
    ("values", "utilization_range"): ("utilization_range", "range", True),
    ("values", "max_null_ratio"): ("max_null_ratio", "ratio", False),
    ("timestamps", "expected_step"): ("expected_step_seconds", "duration", True),
    ("timestamps", "step_tolerance"): ("step_tolerance", "tolerance", False),
    ("timestamps", "max_off_grid_step_ratio"): ("max_off_grid_step_ratio", "ratio", False),
    ("timestamps", "max_missing_scrape_ratio"): ("max_missing_scrape_ratio", "ratio", False),
    ("timestamps", "max_gap"): ("max_gap_seconds", "duration", True),
    ("timestamps", "max_backward_jumps"): ("max_backward_jumps", "count", False),
    ("freshness", "max_age"): ("max_age_seconds", "duration", True),
    ("freshness", "max_future"): ("max_future_seconds", "duration_or_zero", True),
}
_SECTIONS = tuple(dict.fromkeys(section for section, _ in _KEYS))


def load_thresholds(path: str | os.PathLike | None = None) -> Thresholds:
    """The shipped thresholds, with the keys that ``path`` sets (if given) replacing them.

    Raises:
        ThresholdsError: naming the file and the key when a file is missing or malformed.
    """
    values = _read(DEFAULT_THRESHOLDS_FILE)
    if path is not None:
        values.update(_read(Path(path)))
    return Thresholds(**values)


def _read(file: Path) -> dict[str, Any]:
    document = read_yaml(file, "thresholds file", ThresholdsError)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ThresholdsError(
            f"{file}: expected a mapping of sections ({', '.join(_SECTIONS)}), "
            f"got {type(document).__name__}"
        )
    values: dict[str, Any] = {}
    for section, body in document.items():
        if section not in _SECTIONS:
            raise ThresholdsError(
                f"{file}: unknown section {section!r}; known sections: {', '.join(_SECTIONS)}"
            )
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ThresholdsError(f"{file}: {section}: expected a mapping of keys to values")
        for key, raw in body.items():
            if (section, key) not in _KEYS:
                known = ", ".join(k for s, k in _KEYS if s == section)
                raise ThresholdsError(
                    f"{file}: unknown key '{section}.{key}'; known keys in {section}: {known}"
                )
            name, kind, nullable = _KEYS[(section, key)]
            values[name] = _convert(raw, kind, nullable, f"{file}: {section}.{key}")
    return values


def _convert(raw: Any, kind: str, nullable: bool, where: str) -> Any:
    if raw is None:
        if not nullable:
            raise ThresholdsError(f"{where}: must be set (null is not allowed here)")
        return UTILIZATION_RANGE if kind == "range" else None
    if kind == "count":
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise ThresholdsError(f"{where}: expected a whole number >= 0, got {raw!r}")
        return raw
    if kind in ("ratio", "tolerance"):
        number = _number(raw, where)
        low_ok = number > 0 if kind == "tolerance" else number >= 0
        high_ok = number < 0.5 if kind == "tolerance" else number <= 1
        if not (low_ok and high_ok):
            bounds = "in (0, 0.5)" if kind == "tolerance" else "in [0, 1]"
            raise ThresholdsError(f"{where}: expected a number {bounds}, got {raw!r}")
        return number
    if kind in ("duration", "duration_or_zero"):
        if isinstance(raw, bool):
            raise ThresholdsError(f"{where}: expected a duration such as 30s or 1h, got {raw!r}")
        if kind == "duration_or_zero" and raw in (0, "0"):
            return 0.0
        try:
            return parse_duration_seconds(raw, what=where)
        except MlschedError as error:
            raise ThresholdsError(str(error)) from None
    if kind == "range":
        if not (isinstance(raw, list) and len(raw) == 2):
            raise ThresholdsError(f"{where}: expected [low, high], got {raw!r}")
        low, high = (_number(v, where) for v in raw)
        if low > high:
            raise ThresholdsError(f"{where}: low {low:g} is above high {high:g}")
        return (low, high)
    raise AssertionError(kind)


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ThresholdsError(f"{where}: expected a number, got {raw!r}")
    return float(raw)
