"""The node-metrics gate: run the suites through a checkpoint, write Data Docs and a JSON result.

``run_validation`` validates a node-metrics path or DataFrame and writes, into ``output_dir``:

- ``validation_result.json``: success, success rate (share of expectations that passed), and per
  failed expectation its name, the checked column, the offending node(s) and a message;
- ``data_docs/index.html``: the Great Expectations Data Docs of the run.

Both are replaced atomically: a run that fails midway leaves the previous outputs as they were.
Great Expectations runs in an in-memory (ephemeral) context whose only Data Docs site lies in a
staging folder inside ``output_dir``; nothing is written elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.atomic import replace_path, write_text
from components.cli_args import utc_timestamp
from components.contracts import NODE
from data_validation.profile import (
    PER_NODE_COLUMNS,
    NodeProfile,
    load_raw_node_metrics,
    normalize_table,
    summarize_nodes,
)
from data_validation.thresholds import Thresholds, load_thresholds

RESULT_FILE = "validation_result.json"
DATA_DOCS_DIR = "data_docs"
DATA_DOCS_SITE = "node_metrics_gate"
RUN_NAME = "node-metrics-gate"
_MAX_NODES_IN_MESSAGE = 10


@dataclass(frozen=True)
class ExpectationFailure:
    """One failed expectation.

    Attributes:
        suite: ``node_metrics.table`` or ``node_metrics.per_node``.
        expectation: the Great Expectations type, e.g. ``expect_column_values_to_be_between``.
        column: the checked column (a raw column, or a per-node summary column such as
            ``missing_scrape_ratio``); ``None`` for table-wide expectations.
        check: the family of the check (``value_range``, ``missing_scrapes``, ``clock_jumps``...).
        nodes: the offending nodes (per-node suite); for row checks of the table suite, the
            nodes of the example rows; empty for table-wide failures.
        observed: node -> offending value (per-node suite), or ``{"observed": value}``.
        message: one line naming the expectation, the column and the node(s).
    """

    suite: str
    expectation: str
    column: str | None
    check: str
    nodes: tuple[str, ...]
    observed: dict[str, Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "expectation": self.expectation,
            "column": self.column,
            "check": self.check,
            "nodes": list(self.nodes),
            "observed": self.observed,
            "message": self.message,
        }


@dataclass(frozen=True)
class ValidationReport:
    """What the gate decided, and where its outputs are."""

    success: bool
    success_rate: float
    evaluated_expectations: int
    successful_expectations: int
    failures: tuple[ExpectationFailure, ...]
    result_path: Path
    data_docs_index: Path | None
    per_node: pd.DataFrame = field(repr=False, compare=False)

    def failures_for(self, node: str) -> list[ExpectationFailure]:
        """The failures that name ``node``."""
        return [f for f in self.failures if node in f.nodes]

    def format(self) -> str:
        """A few lines for a terminal: verdict, success rate, one line per failure."""
        verdict = "passed" if self.success else "FAILED"
        lines = [
            f"node-metrics gate {verdict}: success rate {self.success_rate:.1%} "
            f"({self.successful_expectations}/{self.evaluated_expectations} expectations)"
        ]
        lines += [f"  - {failure.message}" for failure in self.failures]
        lines.append(f"  result: {self.result_path}")
        if self.data_docs_index is not None:
            lines.append(f"  Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


def parse_reference_time(value: str | datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    """A zone-aware UTC timestamp from ISO text, a datetime or a Timestamp (``None`` stays)."""
    return None if value is None else utc_timestamp(value, "reference time")


def run_validation(
    data: str | os.PathLike | pd.DataFrame,
    output_dir: str | os.PathLike,
    thresholds: Thresholds | None = None,
    reference_time: str | datetime | pd.Timestamp | None = None,
    *,
    data_docs: bool = True,
) -> ValidationReport:
    """Validate node metrics and write the JSON result and Data Docs into ``output_dir``.

    Args:
        data: a node-metrics path (CSV, parquet, day-partitioned parquet folder) or a DataFrame.
            It is read as it is, not through the contract reader, so bad rows are judged rather
            than raised on.
        output_dir: folder that receives ``validation_result.json`` and ``data_docs/``.
        thresholds: what to accept; default the shipped ``thresholds.yaml``.
        reference_time: the caller's clock, for freshness (newest sample per node at most
            ``max_age`` old, none later than ``max_future`` ahead). ``None`` skips freshness,
            as for historical data sets.
        data_docs: build the Data Docs (about a second); without them an older
            ``data_docs/`` in ``output_dir`` is removed, so that it never contradicts the result.

    Returns:
        The report; ``report.success`` is the gate's verdict.

    Raises:
        MlschedError: when the data cannot be read at all, or the reference time is invalid.
    """
    thresholds = thresholds if thresholds is not None else load_thresholds()
    reference = parse_reference_time(reference_time)
    if isinstance(data, pd.DataFrame):
        raw, source = data, "DataFrame"
    else:
        raw, source = load_raw_node_metrics(data), str(data)
    profile = summarize_nodes(normalize_table(raw), thresholds, reference)
    return _run(profile, source, Path(output_dir).resolve(), thresholds, reference, data_docs)


def validate_node_metrics_frame(
    frame: pd.DataFrame,
    output_dir: str | os.PathLike,
    thresholds: Thresholds | None = None,
    reference_time: str | datetime | pd.Timestamp | None = None,
    *,
    data_docs: bool = True,
) -> ValidationReport:
    """:func:`run_validation` on a DataFrame."""
    return run_validation(frame, output_dir, thresholds, reference_time, data_docs=data_docs)


def validate_node_metrics_path(
    path: str | os.PathLike,
    output_dir: str | os.PathLike,
    thresholds: Thresholds | None = None,
    reference_time: str | datetime | pd.Timestamp | None = None,
    *,
    data_docs: bool = True,
) -> ValidationReport:
    """:func:`run_validation` on a node-metrics file or folder."""
    return run_validation(Path(path), output_dir, thresholds, reference_time, data_docs=data_docs)


# --------------------------------------------------------------------------- running the suites


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DATA_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _run(
    profile: NodeProfile,
    source: str,
    output_dir: Path,
    thresholds: Thresholds,
    reference: pd.Timestamp | None,
    data_docs: bool,
) -> ValidationReport:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    from data_validation.suites import build_suites

    output_dir.mkdir(parents=True, exist_ok=True)
    staging = output_dir / f".validation-tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        context = _context(staging / DATA_DOCS_DIR if data_docs else None)
        actions = [UpdateDataDocsAction(name="data_docs", site_names=[DATA_DOCS_SITE])]
        datasource = context.data_sources.add_pandas("node_metrics")
        run_id = RunIdentifier(
            run_name=RUN_NAME, run_time=reference.to_pydatetime() if reference is not None else None
        )
        results = []
        for spec in build_suites(profile, thresholds, freshness=reference is not None):
            batch = datasource.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe(
                "whole table"
            )
            suite = context.suites.add(spec.suite)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
            )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"{spec.name}.checkpoint",
                    validation_definitions=[definition],
                    actions=actions if data_docs else [],
                    result_format=spec.result_format,
                )
            )
            outcome = checkpoint.run(batch_parameters={"dataframe": spec.data}, run_id=run_id)
            for validation in outcome.run_results.values():
                results += [(spec.name, r) for r in validation.results]
        report = _report(results, profile, output_dir, data_docs)
        document = _document(report, results, profile, source, thresholds, reference)
        result = json.dumps(_plain(document), indent=1, allow_nan=False)
        if data_docs:
            docs = staging / DATA_DOCS_DIR
            replace_path(output_dir / DATA_DOCS_DIR, lambda tmp: os.replace(docs, tmp))
        else:
            shutil.rmtree(output_dir / DATA_DOCS_DIR, ignore_errors=True)
        write_text(output_dir / RESULT_FILE, result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


# --------------------------------------------------------------------------- reading the results


def _report(
    results: list, profile: NodeProfile, output_dir: Path, data_docs: bool
) -> ValidationReport:
    failures = tuple(_failure(suite, r) for suite, r in results if not r.success)
    evaluated = len(results)
    successful = evaluated - len(failures)
    return ValidationReport(
        success=not failures,
        success_rate=successful / evaluated if evaluated else 0.0,
        evaluated_expectations=evaluated,
        successful_expectations=successful,
        failures=failures,
        result_path=output_dir / RESULT_FILE,
        data_docs_index=output_dir / DATA_DOCS_DIR / "index.html" if data_docs else None,
        per_node=profile.per_node,
    )


def _failure(suite: str, result) -> ExpectationFailure:
    config = result.expectation_config
    kind = config.type
    kwargs = dict(config.kwargs)
    column = kwargs.get("column")
    check = (config.meta or {}).get("check", "")
    details = result.result or {}
    name = f"{kind}({column})" if column else kind
    expected = _bounds(kwargs)
    exception = result.exception_info or {}
    if exception.get("raised_exception"):
        message = f"{name} could not run: {exception.get('exception_message')}"
        return ExpectationFailure(suite, kind, column, check, (), {}, message)

    rows = details.get("unexpected_index_list") or []
    if rows and isinstance(rows[0], Mapping) and NODE in rows[0]:
        observed = {str(row[NODE]): _scalar(row.get(column)) for row in rows}
        nodes = tuple(observed)
        shown = ", ".join(
            f"{n} ({_show(v)})" for n, v in list(observed.items())[:_MAX_NODES_IN_MESSAGE]
        )
        if len(nodes) > _MAX_NODES_IN_MESSAGE:
            shown += f" and {len(nodes) - _MAX_NODES_IN_MESSAGE} more"
        what = PER_NODE_COLUMNS.get(column, column)
        message = f"{name} failed for node(s) {shown}: {what}, expected {expected}"
        return ExpectationFailure(suite, kind, column, check, nodes, observed, message)

    nodes = ()
    if "observed_value" in details:
        observed_value = _plain(details["observed_value"])
        message = f"{name} failed: observed {_show(observed_value)}"
        message += f", expected {expected}" if expected != "any" else ""
        if kind == "expect_column_values_to_be_in_type_list":
            message += ", expected a numeric type"
    elif "unexpected_count" in details:
        observed_value = _plain(details.get("unexpected_count"))
        sample = _plain(details.get("partial_unexpected_list") or [])
        message = f"{name} failed: {observed_value} unexpected row(s)"
        if sample and any(v is not None for v in sample):
            message += f", e.g. {sample}"
        examples = details.get("partial_unexpected_index_list") or []
        nodes = tuple(
            dict.fromkeys(
                str(row[NODE])
                for row in examples
                if isinstance(row, Mapping) and not pd.isna(row.get(NODE))
            )
        )
        if nodes:
            message += f" on node(s) {', '.join(nodes)}"
    else:
        observed_value = None
        message = f"{name} failed" + (": the column is missing" if "to_exist" in kind else "")
    if config.description:
        message += f" ({config.description})"
    observed = {"observed": observed_value}
    return ExpectationFailure(suite, kind, column, check, nodes, observed, message)


def _bounds(kwargs: dict) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and high is not None:
        return f"between {_show(low)} and {_show(high)}"
    if low is not None:
        return f">= {_show(low)}"
    if high is not None:
        return f"<= {_show(high)}"
    return "any"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _document(
    report: ValidationReport,
    results: list,
    profile: NodeProfile,
    source: str,
    thresholds: Thresholds,
    reference: pd.Timestamp | None,
) -> dict[str, Any]:
    import great_expectations as gx

    table = profile.table
    return {
        "success": report.success,
        "success_rate": report.success_rate,
        "evaluated_expectations": report.evaluated_expectations,
        "successful_expectations": report.successful_expectations,
        "failures": [f.to_dict() for f in report.failures],
        "data_docs": f"{DATA_DOCS_DIR}/index.html" if report.data_docs_index else None,
        "source": source,
        "reference_time": reference,
        "freshness_checked": reference is not None,
        "data": {
            "rows": len(table),
            "nodes": len(profile.per_node),
            "start": profile.start,
            "end": profile.end,
            "step_seconds": profile.step_seconds,
            "step_inferred": profile.step_inferred,
            "columns": [str(c) for c in table.columns],
        },
        "thresholds": thresholds.to_dict(),
        "expectations": [
            {
                "suite": suite,
                "expectation": r.expectation_config.type,
                "column": r.expectation_config.kwargs.get("column"),
                "check": (r.expectation_config.meta or {}).get("check", ""),
                "description": r.expectation_config.description,
                "success": bool(r.success),
            }
            for suite, r in results
        ],
        "per_node": profile.per_node.to_dict(orient="records"),
        "great_expectations_version": gx.__version__,
    }


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None, times to ISO text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value
