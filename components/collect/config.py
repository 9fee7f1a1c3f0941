"""The collection config: which PromQL fills which node-metrics column, and how series name nodes.

The default ships beside this module as ``queries.yaml``; a cluster whose metrics or labels are
named differently passes its own file. Every problem is reported with the file and the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from components.config_files import parse_yaml, read_yaml
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.durations import format_duration, parse_duration_seconds
from components.errors import MlschedError

DEFAULT_CONFIG_NAME = "queries.yaml"
DEFAULT_NODE_LABELS = ("node", "instance")
REQUIRED_COLUMNS = (CPU_UTILIZATION, MEMORY_UTILIZATION)
# An auto $window spans the step and at least this many scrapes: rate() then has samples in
# spite of a missed scrape and of scrape-time jitter (Prometheus' own advice for rate windows).
AUTO_WINDOW_SCRAPES = 4
# Assumed when Prometheus lists no targets and none is configured (kube-prometheus-stack's).
DEFAULT_SCRAPE_INTERVAL_SECONDS = 30.0
PLACEHOLDERS = ("window", "step", "scrape_window")
SCRAPE_WINDOW_MARGIN_SECONDS = 1.0

_TOP_KEYS = ("node_label", "strip_port", "window", "scrape_interval", "node_addresses", "queries")
_QUERY_KEYS = ("promql", "required", "node_label", "strip_port", "chunk", "resolution")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_RESERVED_COLUMNS = (TIMESTAMP, NODE, "date")


@dataclass(frozen=True)
class QuerySpec:
    """One column of the node-metrics table and the PromQL that fills it.

    Attributes:
        column: the output column, e.g. ``cpu_utilization``.
        promql: the query, possibly with ``$window``, ``$step`` and ``$scrape_window``
            placeholders (see :meth:`render`).
        required: whether a run fails when the query returns no series at all.
        node_labels: labels whose value names a series' node, tried in order.
        strip_port: whether to drop a trailing ``:<port>`` from that value.
        chunk_seconds: longest time span of one request, or None for the point limit alone.
            Prometheus allocates every selected series for every step of a request, so queries
            over short-lived series (one per pod) need short requests.
        resolution_seconds: query at this coarser step (rounded down to a multiple of the run's
            step) and hold each value for the grid points until the next one, or None to query
            every grid point. Prometheus' work grows with the steps of a request.
    """

    column: str
    promql: str
    required: bool = False
    node_labels: tuple[str, ...] = DEFAULT_NODE_LABELS
    strip_port: bool = True
    chunk_seconds: float | None = None
    resolution_seconds: float | None = None

    def hold_steps(self, step_seconds: int) -> int:
        """Grid points each queried value stands for (1 without a coarser resolution)."""
        if self.resolution_seconds is None:
            return 1
        return max(1, int(self.resolution_seconds // step_seconds))

    def points_per_request(self, step_seconds: int, max_points: int) -> int:
        """Grid points per request: ``max_points``, fewer when ``chunk_seconds`` is shorter."""
        if self.chunk_seconds is None:
            return max_points
        return max(1, min(max_points, int(self.chunk_seconds // step_seconds)))

    def render(self, window_seconds: float, step_seconds: float) -> str:
        """The PromQL with its placeholders replaced by Prometheus durations: ``$window`` (the
        range of rate()), ``$step`` (the query resolution) and ``$scrape_window`` (a second less
        than the step: a range that holds the one scrape of each step and never the one before,
        so a missed scrape stays missing)."""
        scrape_window = max(step_seconds - SCRAPE_WINDOW_MARGIN_SECONDS, 1.0)
        values = {
            "window": format_duration(window_seconds),
            "step": format_duration(step_seconds),
            "scrape_window": format_duration(scrape_window),
        }
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.promql)


@dataclass(frozen=True)
class CollectConfig:
    """The queries to run, where they came from, and how ``$window`` and node names are set.

    Attributes:
        queries: one spec per output column, the required ones first.
        source: the file the config was read from (for messages).
        window_seconds: the ``$window`` duration, or None for automatic (:meth:`window_for`).
        scrape_interval_seconds: the scrape interval an automatic ``$window`` follows, or None
            to read it from Prometheus' targets API.
        node_addresses: a metric with ``node`` and ``internal_ip`` labels (kube-state-metrics'
            ``kube_node_info``) that renames series named by an IP address to their node, or
            None for no renaming.
    """

    queries: tuple[QuerySpec, ...]
    source: str = "<config>"
    window_seconds: float | None = None
    scrape_interval_seconds: float | None = None
    node_addresses: str | None = None

    def window_for(
        self, step_seconds: float, scrape_interval_seconds: float | None = None
    ) -> float:
        """The ``$window`` used with ``step_seconds``: the configured one, else the step and at
        least four scrapes (``scrape_interval_seconds``, else the configured interval, else
        30 s). A step of four scrapes or more thus reads exactly its own span."""
        if self.window_seconds is not None:
            return self.window_seconds
        scrape = (
            scrape_interval_seconds
            or self.scrape_interval_seconds
            or DEFAULT_SCRAPE_INTERVAL_SECONDS
        )
        return max(float(step_seconds), AUTO_WINDOW_SCRAPES * scrape)

    def with_window(
        self, window_seconds: float | None, scrape_interval_seconds: float | None = None
    ) -> CollectConfig:
        """A copy with another ``$window`` (None: automatic) and scrape interval (None: the
        config's)."""
        return replace(
            self,
            window_seconds=window_seconds,
            scrape_interval_seconds=scrape_interval_seconds or self.scrape_interval_seconds,
        )


def default_config_text() -> str:
    """The text of the shipped ``queries.yaml``."""
    return resources.files(__package__).joinpath(DEFAULT_CONFIG_NAME).read_text()


def load_collect_config(path: str | os.PathLike | None = None) -> CollectConfig:
    """Read and validate a collection config; None reads the shipped default.

    Raises:
        MlschedError: naming the file and the key when the file is missing, is not YAML, or
            breaks the schema.
    """
    if path is None:
        return parse_collect_config(default_config_text(), f"{__package__}/{DEFAULT_CONFIG_NAME}")
    return _parse_document(read_yaml(path, "config file"), str(Path(path)))


def parse_collect_config(text: str, source: str = "<config>") -> CollectConfig:
    """Validate the YAML ``text`` of a collection config; ``source`` names it in errors.

    Raises:
        MlschedError: naming ``source`` and the offending key.
    """
    return _parse_document(parse_yaml(text, source), source)


def _fail(source: str, key: str, message: str) -> MlschedError:
    return MlschedError(f"{source}: {key}: {message}")


def _check_keys(mapping: dict, allowed: tuple[str, ...], source: str, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise _fail(source, where, f"unknown key (expected one of: {', '.join(allowed)})")


def _labels(value: Any, source: str, key: str) -> tuple[str, ...]:
    labels = [value] if isinstance(value, str) else value
    if not isinstance(labels, list) or not labels:
        raise _fail(source, key, f"expected a label name or a list of them, got {value!r}")
    for label in labels:
        if not isinstance(label, str) or not _LABEL.match(label):
            raise _fail(source, key, f"{label!r} is not a Prometheus label name")
    return tuple(labels)


def _flag(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, f"expected true or false, got {value!r}")
    return value


def _duration(value: Any, source: str, key: str) -> float | None:
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(source, key, f"expected 'auto' or a duration such as 5m, got {value!r}")
    try:
        return parse_duration_seconds(value, what=key)
    except MlschedError as error:
        raise _fail(source, key, str(error).removeprefix(f"{key}: ")) from None


def _promql(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, key, f"expected a non-empty PromQL string, got {value!r}")
    for match in _PLACEHOLDER.finditer(value):
        if match.group(1) not in PLACEHOLDERS:
            known = ", ".join(f"${name}" for name in PLACEHOLDERS)
            raise _fail(source, key, f"unknown placeholder {match.group(0)} (known: {known})")
    return " ".join(value.split())


def _parse_document(document: Any, source: str) -> CollectConfig:
    if not isinstance(document, dict):
        raise MlschedError(f"{source}: expected a mapping with a 'queries' key at the top")
    _check_keys(document, _TOP_KEYS, source, "")
    node_labels = _labels(
        document.get("node_label", list(DEFAULT_NODE_LABELS)), source, "node_label"
    )
    strip_port = _flag(document.get("strip_port", True), source, "strip_port")
    window = _duration(document.get("window"), source, "window")
    scrape_interval = _duration(document.get("scrape_interval"), source, "scrape_interval")
    node_addresses = document.get("node_addresses")
    if node_addresses is not None and not (
        isinstance(node_addresses, str) and _LABEL.match(node_addresses)
    ):
        raise _fail(source, "node_addresses", f"expected a metric name, got {node_addresses!r}")
    queries = document.get("queries")
    if not isinstance(queries, dict) or not queries:
        raise _fail(source, "queries", "expected a mapping of column name -> {promql: ...}")
    specs = []
    for column, body in queries.items():
        key = f"queries.{column}"
        if not isinstance(column, str) or not _COLUMN.match(column):
            raise _fail(source, key, "column names are letters, digits and underscores")
        if column in _RESERVED_COLUMNS:
            raise _fail(source, key, f"'{column}' is not a metric column")
        if isinstance(body, str):
            body = {"promql": body}
        if not isinstance(body, dict):
            raise _fail(source, key, f"expected a PromQL string or a mapping, got {body!r}")
        _check_keys(body, _QUERY_KEYS, source, key)
        if "promql" not in body:
            raise _fail(source, f"{key}.promql", "missing")
        required = _flag(
            body.get("required", column in REQUIRED_COLUMNS), source, f"{key}.required"
        )
        if column in REQUIRED_COLUMNS and not required:
            raise _fail(
                source, f"{key}.required", "must be true: the node-metrics contract needs it"
            )
        specs.append(
            QuerySpec(
                column=column,
                promql=_promql(body["promql"], source, f"{key}.promql"),
                required=required,
                node_labels=(
                    _labels(body["node_label"], source, f"{key}.node_label")
                    if "node_label" in body
                    else node_labels
                ),
                strip_port=_flag(body.get("strip_port", strip_port), source, key + ".strip_port"),
                chunk_seconds=_duration(body.get("chunk"), source, f"{key}.chunk"),
                resolution_seconds=_duration(body.get("resolution"), source, f"{key}.resolution"),
            )
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in queries]
    if missing:
        raise _fail(
            source, "queries", f"missing {', '.join(missing)} (the node-metrics contract needs it)"
        )
    specs.sort(key=lambda spec: (not spec.required, spec.column not in REQUIRED_COLUMNS))
    return CollectConfig(tuple(specs), source, window, scrape_interval, node_addresses)
