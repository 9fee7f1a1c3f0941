"""The node-metrics gate's code: thresholds files, the per-node summary, outputs and the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.errors import MlschedError
from data_validation import (
    DEFAULT_THRESHOLDS_FILE,
    Thresholds,
    ThresholdsError,
    load_thresholds,
    run_validation,
)
from data_validation.cli import add_validate_parser
from data_validation.profile import normalize_table, summarize_nodes

START = pd.Timestamp("2026-01-01T00:00:00Z")
LATER = START + pd.Timedelta(hours=10)  # just after the last sample of _metrics(steps=600)


def _metrics(nodes=("n1", "n2"), steps: int = 240, step: str = "60s") -> pd.DataFrame:
    stamps = pd.date_range(START, periods=steps, freq=step)
    return pd.DataFrame(
        {
            TIMESTAMP: np.tile(stamps, len(nodes)),
            NODE: np.repeat(nodes, steps),
            CPU_UTILIZATION: 0.4,
            MEMORY_UTILIZATION: 0.3,
        }
    )


def _summary(frame: pd.DataFrame, **overrides) -> pd.DataFrame:
    thresholds = Thresholds(**overrides)
    profile = summarize_nodes(normalize_table(frame), thresholds, START + pd.Timedelta(hours=4))
    return profile.per_node.set_index(NODE)


# --------------------------------------------------------------------------- thresholds


def test_shipped_thresholds_file_matches_the_defaults():
    assert DEFAULT_THRESHOLDS_FILE.is_file()
    assert load_thresholds() == Thresholds()


def test_an_override_file_replaces_only_its_keys(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "timestamps:\n  max_gap: 2h\n  expected_step: 30s\nfreshness:\n  max_age: null\n"
        "values:\n  utilization_range: [0, 1]\n"
    )
    thresholds = load_thresholds(path)
    assert thresholds.max_gap_seconds == 7200 and thresholds.expected_step_seconds == 30
    assert thresholds.max_age_seconds is None and thresholds.utilization_range == (0.0, 1.0)
    assert thresholds.min_rows == Thresholds().min_rows


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamps:\n  max_gapp: 1h\n", "unknown key 'timestamps.max_gapp'"),
        ("limits:\n  a: 1\n", "unknown section 'limits'"),
        ("rows:\n  min_rows: -3\n", "rows.min_rows: expected a whole number >= 0, got -3"),
        ("rows:\n  min_rows: 1.5\n", "rows.min_rows: expected a whole number >= 0"),
        ("rows:\n  min_nodes: null\n", "rows.min_nodes: must be set"),
        ("timestamps:\n  max_gap: soon\n", "timestamps.max_gap: cannot read 'soon' as a duration"),
        ("timestamps:\n  max_gap: -5\n", "timestamps.max_gap: must be positive"),
        ("values:\n  max_null_ratio: 2\n", "values.max_null_ratio: expected a number in [0, 1]"),
        ("values:\n  max_null_ratio: yes\n", "values.max_null_ratio: expected a number"),
        ("values:\n  utilization_range: [1, 0]\n", "values.utilization_range: low 1 is above"),
        ("values:\n  utilization_range: 1.5\n", "values.utilization_range: expected [low, high]"),
        ("timestamps:\n  step_tolerance: 0\n", "timestamps.step_tolerance: expected a number"),
        ("rows: [1, 2]\n", "rows: expected a mapping"),
        ("- rows\n", "expected a mapping of sections"),
        ("rows:\n  min_rows: 1\n bad: [\n", "not valid YAML at line"),
    ],
)
def test_a_malformed_thresholds_file_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsError) as error:
        load_thresholds(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert isinstance(error.value, MlschedError)


def test_a_missing_thresholds_file_is_named(tmp_path):
    with pytest.raises(ThresholdsError, match="no such thresholds file"):
        load_thresholds(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- per-node summary


def test_summary_of_clean_metrics():
    summary = _summary(_metrics())
    assert summary.loc["n1", "rows"] == 240
    assert summary.loc["n1", "median_step_seconds"] == 60
    assert summary.loc["n1", "missing_scrape_ratio"] == 0
    assert summary.loc["n1", "max_gap_seconds"] == 60
    assert (summary[["duplicate_rows", "backward_jumps", "invalid_timestamp_rows"]] == 0).all(None)
    assert summary.loc["n2", "age_seconds"] == 60  # 4 h after START, newest sample 3:59


def test_summary_counts_each_problem_on_its_node():
    frame = _metrics(nodes=("n1", "n2", "n3", "n4"))
    n1 = frame.index[frame[NODE] == "n1"]
    frame.loc[n1[10], CPU_UTILIZATION] = np.nan
    frame.loc[n1[11], MEMORY_UTILIZATION] = 2.0
    n2 = frame.index[frame[NODE] == "n2"]
    frame.loc[n2[100:], TIMESTAMP] -= pd.Timedelta(minutes=30)  # clock back: 30 duplicates
    n3 = frame.index[frame[NODE] == "n3"]
    frame.loc[n3[50:], TIMESTAMP] += pd.Timedelta(seconds=17)  # off the 60 s grid once
    frame = frame.drop(index=frame.index[frame[NODE] == "n4"][20:120])  # 100 missing scrapes
    summary = _summary(frame)
    assert summary.loc["n1", "cpu_utilization_null_ratio"] == pytest.approx(1 / 240)
    assert summary.loc["n1", "memory_utilization_max"] == 2.0
    assert summary.loc["n2", "backward_jumps"] == 1 and summary.loc["n2", "duplicate_rows"] == 30
    assert summary.loc["n3", "off_grid_step_ratio"] == pytest.approx(1 / 239)
    assert summary.loc["n4", "missing_scrape_ratio"] == pytest.approx(100 / 240)
    assert summary.loc["n4", "max_gap_seconds"] == 101 * 60
    others = summary.drop(index="n2")
    assert (others[["backward_jumps", "duplicate_rows"]] == 0).all(None)


def test_summary_flags_timestamps_without_zone_and_ignores_nameless_rows():
    frame = _metrics()
    text = frame[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object)
    text.iloc[3] = "2026-01-01T00:03:00"  # naive
    text.iloc[4] = "not a time"
    frame[TIMESTAMP] = text
    frame.loc[frame.index[-5:], NODE] = "  "
    summary = _summary(frame)
    assert summary.loc["n1", "invalid_timestamp_rows"] == 2
    assert summary.loc["n2", "rows"] == 235 and list(summary.index) == ["n1", "n2"]


def test_summary_uses_a_configured_step():
    summary = _summary(_metrics(step="30s"), expected_step_seconds=60.0)
    assert summary.loc["n1", "median_step_seconds"] == 30
    assert summary.loc["n1", "missing_scrape_ratio"] == 0  # 30 s samples over-fill a 60 s grid


# --------------------------------------------------------------------------- outputs and CLI


def test_outputs_replace_the_previous_ones_and_stay_in_the_output_folder(tmp_path):
    out = tmp_path / "out"
    (out / "data_docs").mkdir(parents=True)
    (out / "data_docs" / "stale.html").write_text("old")
    report = run_validation(_metrics(steps=600), out, reference_time=LATER)
    assert report.success, report.format()
    assert not (out / "data_docs" / "stale.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["data_docs", "validation_result.json"]
    result = json.loads(report.result_path.read_text())
    assert result["success_rate"] == 1.0 and result["data_docs"] == "data_docs/index.html"


def test_frames_missing_contract_columns_fail_without_crashing(tmp_path):
    frame = _metrics(steps=600).drop(columns=[MEMORY_UTILIZATION])
    report = run_validation(frame, tmp_path, data_docs=False)
    assert [(f.expectation, f.column) for f in report.failures] == [
        ("expect_column_to_exist", MEMORY_UTILIZATION)
    ]
    assert "the column is missing" in report.failures[0].message


def test_reference_time_must_carry_a_zone(tmp_path):
    with pytest.raises(MlschedError, match="no time zone"):
        run_validation(_metrics(), tmp_path, reference_time="2026-01-01T00:00:00")


def _validate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mlsched")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *argv])
    return args.handler(args)


def test_cli_passes_and_fails_the_gate(tmp_path, capsys):
    clean = tmp_path / "clean.csv"
    frame = _metrics(steps=600)
    frame.assign(**{TIMESTAMP: frame[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        clean, index=False
    )
    now = LATER.isoformat()
    assert _validate("--metrics", str(clean), "--output", str(tmp_path / "ok"), "--now", now) == 0
    printed = capsys.readouterr().out
    assert "success rate 100.0%" in printed
    assert f"Data Docs: {tmp_path / 'ok' / 'data_docs' / 'index.html'}" in printed

    frame.loc[frame.index[frame[NODE] == "n2"][7], CPU_UTILIZATION] = -1.0
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    code = _validate("--metrics", str(bad), "--output", str(tmp_path / "ko"), "--no-freshness")
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAILED" in printed
    assert (
        "expect_column_values_to_be_between(cpu_utilization_min) failed for node(s) n2" in printed
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--now", "2026-01-01T00:00:00"], "--now: '2026-01-01T00:00:00' has no time zone"),
        (["--now", "soon"], "--now: cannot parse 'soon'"),
        (["--metrics", "no-such-file.csv"], "no-such-file.csv: no such file or directory"),
        (["--thresholds", "no-such.yaml"], "no-such.yaml: no such thresholds file"),
    ],
)
def test_cli_mistakes_raise_user_errors(tmp_path, argv, message):
    with pytest.raises(MlschedError, match=message.replace("(", r"\(")):
        _validate("--output", str(tmp_path / "out"), *argv)


def test_values_that_are_not_numbers_are_shown_with_their_node(tmp_path):
    frame = _metrics(steps=600)
    frame[CPU_UTILIZATION] = frame[CPU_UTILIZATION].astype(object)
    frame.loc[frame.index[frame[NODE] == "n2"][3], CPU_UTILIZATION] = "abc"
    csv = tmp_path / "metrics.csv"
    frame.assign(**{TIMESTAMP: frame[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(
        csv, index=False
    )
    report = run_validation(csv, tmp_path / "out", data_docs=False)
    messages = {f.column: f for f in report.failures}
    types = messages[CPU_UTILIZATION]
    assert types.expectation == "expect_column_values_to_be_in_type_list"
    assert types.nodes == ("n2",) and "1 unexpected row(s), e.g. ['abc']" in types.message
    assert messages["cpu_utilization_null_ratio"].nodes == ("n2",)
