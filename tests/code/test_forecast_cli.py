"""``mlsched evaluate forecast`` through its parser: report file, clear errors."""

from __future__ import annotations

import argparse
import json

import pytest

from components.contracts import write_node_metrics
from components.errors import MlschedError
from components.forecast.cli import add_evaluate_forecast_parser
from tests.code.test_forecast import make_metrics


def parse(argv):
    parser = argparse.ArgumentParser(prog="mlsched")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate").add_subparsers(dest="what", required=True)
    add_evaluate_forecast_parser(evaluate)
    return parser.parse_args(["evaluate", "forecast", *argv])


def test_cli_writes_the_report(tmp_path, capsys):
    metrics = write_node_metrics(make_metrics(step=120), tmp_path / "metrics.csv")
    output = tmp_path / "out" / "report.json"
    args = parse(["--metrics", str(metrics), "--horizons", "10m", "--output", str(output)])
    assert args.handler(args) == 0
    report = json.loads(output.read_text())
    assert report["data"]["step"] == "2m" and report["data"]["horizons"] == ["10m"]
    assert set(report["cpu"]["10m"]) >= {"model", "persistence", "seasonal_naive", "skill"}
    assert "cpu +10m" in capsys.readouterr().out


def test_cli_fails_clearly_and_leaves_no_report(tmp_path):
    metrics = write_node_metrics(make_metrics(days=0.9), tmp_path / "metrics.csv")
    output = tmp_path / "report.json"
    args = parse(["--metrics", str(metrics), "--output", str(output)])
    with pytest.raises(MlschedError):
        args.handler(args)
    assert not output.exists() and not list(tmp_path.glob(".report.json*"))
    with pytest.raises(SystemExit):
        parse(["--metrics", str(metrics), "--output", str(output), "--train-fraction", "1.2"])


def test_training_on_the_features_artifact_gives_the_same_figures(tmp_path, capsys):
    from components.features.engineering import compute_node_features, write_feature_table
    from components.forecast.train import main

    frame = make_metrics(step=300)
    metrics = write_node_metrics(frame, tmp_path / "metrics.csv")
    table = write_feature_table(compute_node_features(frame), tmp_path / "features.parquet")
    argv = ["--metrics", str(metrics), "--n-estimators", "20", "--no-tracking", "--quiet"]
    figures = []
    for extra in ([], ["--features", str(table)]):
        result = tmp_path / f"result{len(extra)}.json"
        assert main([*argv, *extra, "--result-file", str(result)]) == 0
        figures.append(json.loads(result.read_text()))
    capsys.readouterr()
    assert figures[0]["metrics"] == figures[1]["metrics"]
    assert figures[1]["held_out"]["features"] == str(table)
    assert figures[0]["run_id"] is None and figures[0]["registered_version"] is None
