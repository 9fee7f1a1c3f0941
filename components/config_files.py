"""The project's YAML configuration files, read with one error format: the file, the line and
column, and the problem (never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from components.errors import MlschedError


def parse_yaml(text: str, source: str, error: type[MlschedError] = MlschedError) -> Any:
    """The YAML document in ``text``; ``source`` names it in the ``error`` raised if it is not
    YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(problem, "problem", None) or str(problem)
        raise error(f"{source}: not valid YAML{where}: {reason}") from None


def read_yaml(path: str | os.PathLike, what: str, error: type[MlschedError] = MlschedError) -> Any:
    """The YAML document of the file at ``path``; ``what`` names the kind of file in the
    ``error`` raised when it is missing, unreadable or not YAML."""
    file = Path(path)
    if not file.is_file():
        raise error(f"{file}: no such {what}")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{file}: cannot be read: {problem}") from None
    return parse_yaml(text, str(file), error)
