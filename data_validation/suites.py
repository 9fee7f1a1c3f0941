"""The two Great Expectations suites of the node-metrics gate.

``node_metrics.table`` runs on the raw table: the contract's columns exist, value columns are
numeric, every row names a node, row and node counts. ``node_metrics.per_node`` runs on the
per-node summary of :func:`data_validation.profile.summarize_nodes` (one row per node): each of its
expectations is a ``expect_column_values_to_be_between`` on one summary column, so a failing row
is a failing node, reported through ``unexpected_index_list`` with ``node`` as index column.

Importing this module imports Great Expectations (slow); :mod:`data_validation.gate` does so only
when it validates.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

from components.contracts import NODE, NODE_METRICS_COLUMNS
from data_validation.profile import PARTITION_COLUMN, PER_NODE_COLUMNS, NodeProfile
from data_validation.thresholds import Thresholds

TABLE_SUITE = "node_metrics.table"
PER_NODE_SUITE = "node_metrics.per_node"
NUMERIC_TYPES = [
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    *(f"float{bits}" for bits in (16, 32, 64)),
    *(f"Int{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
    "int",  # Python numbers in a column of dtype object
    "float",
]
TABLE_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
PER_NODE_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [NODE],
    "return_unexpected_index_query": False,
}


@dataclass(frozen=True)
class SuiteSpec:
    """A suite to run, the data it runs on and the result format naming what failed."""

    name: str
    suite: gx.ExpectationSuite
    data: pd.DataFrame
    result_format: dict


def _meta(check: str) -> dict:
    return {"check": check}


def table_suite(profile: NodeProfile, thresholds: Thresholds) -> gx.ExpectationSuite:
    """Schema, types and counts on the raw table."""
    columns = set(profile.table.columns)
    suite = gx.ExpectationSuite(name=TABLE_SUITE)
    for column in NODE_METRICS_COLUMNS:
        suite.add_expectation(
            gxe.ExpectColumnToExist(
                column=column,
                description=f"`{column}` is a column of the node-metrics contract",
                meta=_meta("schema"),
            )
        )
    extras = [
        c for c in profile.table.columns if c not in (*NODE_METRICS_COLUMNS, PARTITION_COLUMN)
    ]
    for column in [c for c in NODE_METRICS_COLUMNS[2:] if c in columns] + extras:
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=column,
                type_list=NUMERIC_TYPES,
                description=f"`{column}` holds numbers",
                meta=_meta("types"),
            )
        )
    if NODE in columns:
        suite.add_expectation(
            gxe.ExpectColumnValuesToNotBeNull(
                column=NODE, description="every row names its node", meta=_meta("schema")
            )
        )
        suite.add_expectation(
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=NODE,
                min_value=thresholds.min_nodes,
                description=f"at least {thresholds.min_nodes} node(s)",
                meta=_meta("row_counts"),
            )
        )
    suite.add_expectation(
        gxe.ExpectTableRowCountToBeBetween(
            min_value=thresholds.min_rows,
            max_value=thresholds.max_rows,
            description="rows in the whole table",
            meta=_meta("row_counts"),
        )
    )
    return suite


def per_node_suite(
    profile: NodeProfile, thresholds: Thresholds, *, freshness: bool
) -> gx.ExpectationSuite:
    """Per-node checks on the per-node summary: each failing row names a node."""
    columns = set(profile.per_node.columns)
    suite = gx.ExpectationSuite(name=PER_NODE_SUITE)

    def between(column: str, check: str, low=None, high=None) -> None:
        if column not in columns:
            return
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=low,
                max_value=high,
                description=f"per node: {PER_NODE_COLUMNS[column]}",
                meta=_meta(check),
            )
        )

    between("rows", "row_counts", low=thresholds.min_rows_per_node)
    between("invalid_timestamp_rows", "types", high=0)
    between("duplicate_rows", "unique_node_timestamp", high=0)
    low, high = thresholds.utilization_range
    for column in NODE_METRICS_COLUMNS[2:]:
        between(f"{column}_null_ratio", "not_null", high=thresholds.max_null_ratio)
        between(f"{column}_min", "value_range", low=low)
        between(f"{column}_max", "value_range", high=high)
    step = profile.step_seconds
    if step:
        tolerance = thresholds.step_tolerance * step
        between("median_step_seconds", "step", low=step - tolerance, high=step + tolerance)
        between("off_grid_step_ratio", "step", high=thresholds.max_off_grid_step_ratio)
        between("missing_scrape_ratio", "missing_scrapes", high=thresholds.max_missing_scrape_ratio)
    if thresholds.max_gap_seconds is not None:
        between("max_gap_seconds", "clock_jumps", high=thresholds.max_gap_seconds)
    between("backward_jumps", "clock_jumps", high=thresholds.max_backward_jumps)
    if freshness and thresholds.max_future_seconds is not None:
        between("future_rows", "freshness", high=0)
    if freshness and thresholds.max_age_seconds is not None:
        between("age_seconds", "freshness", high=thresholds.max_age_seconds)
    return suite


def build_suites(
    profile: NodeProfile, thresholds: Thresholds, *, freshness: bool
) -> list[SuiteSpec]:
    """The suites to run on ``profile``, each with its data and result format."""
    table_format = dict(TABLE_RESULT_FORMAT)
    if NODE in profile.table.columns:  # examples of bad rows then come with their node
        table_format["unexpected_index_column_names"] = [NODE]
    specs = [SuiteSpec(TABLE_SUITE, table_suite(profile, thresholds), profile.table, table_format)]
    if NODE in profile.table.columns:
        specs.append(
            SuiteSpec(
                PER_NODE_SUITE,
                per_node_suite(profile, thresholds, freshness=freshness),
                profile.per_node,
                PER_NODE_RESULT_FORMAT,
            )
        )
    return specs
