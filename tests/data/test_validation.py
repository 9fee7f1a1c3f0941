"""The node-metrics gate on data sets: the clean synthetic set passes, each corruption fails with a
message naming the expectation and the node, and real NAB series pass every check they can."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from data_validation import run_validation, validate_node_metrics_path
from tests.data.conftest import END

REFERENCE = pd.Timestamp(END, unit="s", tz="UTC")
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAB = SHARED_DATA / "nab-ec2-cpu"
BETWEEN = "expect_column_values_to_be_between"


def _rows(frame: pd.DataFrame, node: str) -> np.ndarray:
    return frame.index[frame[NODE] == node].to_numpy()


def nan_cpu(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    frame.loc[_rows(frame, node)[100:130], CPU_UTILIZATION] = np.nan
    return frame


def negative_value(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    frame.loc[_rows(frame, node)[500], CPU_UTILIZATION] = -0.05
    return frame


def above_limit(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    frame.loc[_rows(frame, node)[700], CPU_UTILIZATION] = 1.8
    return frame


def duplicated_rows(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    copies = frame.loc[_rows(frame, node)[200:220]]
    return pd.concat([frame, copies]).sort_index(kind="stable")  # each copy after its original


def gaps_40_percent(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    rows = _rows(frame, node)
    drop = np.random.default_rng(1).choice(rows, int(0.4 * len(rows)), replace=False)
    return frame.drop(index=drop)


def clock_backwards(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    later = _rows(frame, node)[len(_rows(frame, node)) // 2 :]
    frame.loc[later, TIMESTAMP] -= pd.Timedelta(minutes=90)
    return frame


def clock_forward(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    later = _rows(frame, node)[len(_rows(frame, node)) // 2 :]
    frame.loc[later, TIMESTAMP] += pd.Timedelta(hours=3)
    return frame


# corruption -> the per-node column whose expectation must fail
CORRUPTIONS = {
    nan_cpu: "cpu_utilization_null_ratio",
    negative_value: "cpu_utilization_min",
    above_limit: "cpu_utilization_max",
    duplicated_rows: "duplicate_rows",
    gaps_40_percent: "missing_scrape_ratio",
    clock_backwards: "backward_jumps",
    clock_forward: "max_gap_seconds",
}


def test_clean_synthetic_data_passes(small_dataset, tmp_path):
    out = tmp_path / "validation"
    report = run_validation(small_dataset.node_metrics, out, reference_time=REFERENCE)
    assert report.success, report.format()
    assert report.success_rate == 1.0 and not report.failures
    assert report.evaluated_expectations >= 25
    assert report.data_docs_index == out / "data_docs" / "index.html"
    assert report.data_docs_index.is_file()
    assert "node_metrics.per_node" in report.data_docs_index.read_text()
    result = json.loads(report.result_path.read_text())
    assert result["success"] is True and result["success_rate"] == 1.0
    assert result["failures"] == []
    assert result["data"]["step_seconds"] == 60 and result["data"]["step_inferred"]
    assert result["data"]["nodes"] == 10 and result["freshness_checked"] is True
    assert {e["check"] for e in result["expectations"]} >= {
        "schema",
        "types",
        "value_range",
        "not_null",
        "unique_node_timestamp",
        "step",
        "missing_scrapes",
        "clock_jumps",
        "freshness",
        "row_counts",
    }
    assert sorted(p.name for p in out.iterdir()) == ["data_docs", "validation_result.json"]


def test_relative_output_folder_gets_data_docs(small_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = run_validation(small_dataset.node_metrics, Path("out"), reference_time=REFERENCE)
    assert report.success, report.format()
    assert (tmp_path / "out" / "data_docs" / "index.html").is_file()


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=lambda f: f.__name__)
def test_each_corruption_fails_naming_expectation_and_node(small_metrics, tmp_path, corrupt):
    node = "node-04"
    frame = corrupt(small_metrics.copy(), node)
    report = run_validation(frame, tmp_path, reference_time=REFERENCE, data_docs=False)
    assert not report.success and report.success_rate < 1.0
    column = CORRUPTIONS[corrupt]
    matching = [f for f in report.failures if f.column == column]
    assert matching, report.format()
    failure = matching[0]
    assert failure.expectation == BETWEEN and failure.nodes == (node,)
    assert BETWEEN in failure.message and column in failure.message and node in failure.message
    assert {n for f in report.failures for n in f.nodes} == {node}, report.format()
    result = json.loads(report.result_path.read_text())
    assert result["success"] is False and 0 < result["success_rate"] < 1
    assert {"expectation": BETWEEN, "column": column, "nodes": [node]}.items() <= next(
        f for f in result["failures"] if f["column"] == column
    ).items()


def test_corruptions_on_several_nodes_are_told_apart(small_metrics, tmp_path):
    frame = small_metrics.copy()
    culprits = {}
    for index, corrupt in enumerate(CORRUPTIONS, start=1):
        node = f"node-{index:02d}"
        frame = corrupt(frame, node)
        culprits[CORRUPTIONS[corrupt]] = node
    report = run_validation(frame, tmp_path, reference_time=REFERENCE)
    assert not report.success
    by_column = {f.column: f for f in report.failures}
    for column, node in culprits.items():
        assert node in by_column[column].nodes, report.format()
    clean = {"node-08", "node-09", "node-10"}
    assert not clean & {n for f in report.failures for n in f.nodes}
    pages = list((tmp_path / "data_docs" / "validations").rglob("*per_node*.html"))
    assert pages and "node-05" in pages[0].read_text()
    result = json.loads(report.result_path.read_text())
    assert result["success_rate"] == report.success_rate < 1
    assert all(f["expectation"] and f["message"] for f in result["failures"])


def test_freshness_uses_the_callers_clock(small_metrics, tmp_path):
    nodes = tuple(sorted(small_metrics[NODE].unique()))
    stale = run_validation(
        small_metrics, tmp_path, reference_time=REFERENCE + pd.Timedelta(days=3), data_docs=False
    )
    assert [(f.column, f.nodes) for f in stale.failures] == [("age_seconds", nodes)]
    early = run_validation(
        small_metrics, tmp_path, reference_time=REFERENCE - pd.Timedelta(days=1), data_docs=False
    )
    assert ("future_rows", nodes) in [(f.column, f.nodes) for f in early.failures]
    unchecked = run_validation(small_metrics, tmp_path, reference_time=None, data_docs=False)
    assert unchecked.success
    result = json.loads(unchecked.result_path.read_text())
    assert result["freshness_checked"] is False
    assert "freshness" not in {e["check"] for e in result["expectations"]}


def _nab_as_node_metrics(folder: Path) -> pd.DataFrame:
    frames = []
    for file in sorted(folder.glob("ec2_cpu_utilization_*.csv")):
        series = pd.read_csv(file)
        frames.append(
            pd.DataFrame(
                {
                    TIMESTAMP: pd.to_datetime(series["timestamp"]).dt.tz_localize("UTC"),
                    NODE: file.stem.removeprefix("ec2_cpu_utilization_"),
                    CPU_UTILIZATION: series["value"] / 100.0,  # percent -> fraction
                    MEMORY_UTILIZATION: np.nan,  # CloudWatch CPU only: memory unknown
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.mark.real_data
def test_real_nab_series_fail_only_for_their_missing_memory(tmp_path):
    if not NAB.is_dir():
        pytest.skip(f"real data absent: {NAB} (see ../shared/data/README.md)")
    frame = _nab_as_node_metrics(NAB)
    csv = tmp_path / "nab.csv"
    frame.assign(**{TIMESTAMP: frame[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        csv, index=False
    )
    report = validate_node_metrics_path(csv, tmp_path / "out", reference_time=None)
    nodes = tuple(frame[NODE].unique())
    # Historical (2014), 5-minute steps, no freshness: everything holds but the contract's
    # memory_utilization, which CloudWatch CPU series do not have.
    assert [(f.column, f.nodes) for f in report.failures] == [
        ("memory_utilization_null_ratio", nodes)
    ], report.format()
    result = json.loads(report.result_path.read_text())
    assert result["data"]["step_seconds"] == 300 and result["data"]["nodes"] == 8
    assert report.success_rate == pytest.approx(1 - 1 / report.evaluated_expectations)
