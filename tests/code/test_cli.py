"""The command line: user mistakes get one clear line, never a traceback."""

import subprocess
import sys

import pytest


def mlsched(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--step", "abc"], "--step: cannot read 'abc' as a duration"),
        (
            ["generate", "--end", "2026-01-01T00:00:00"],
            "--end: '2026-01-01T00:00:00' has no time zone",
        ),
        (["generate", "--end", "soon"], "--end: cannot parse 'soon'"),
        (
            ["generate", "--days", "1", "--step", "7s"],
            "--days 1.0 is not a whole number of 7s steps",
        ),
        (["stack", "up", "--data", "no-such-folder"], "no Prometheus history to load"),
        (["collect"], "--start is required (or --range-of MANIFEST)"),
        (["collect", "--range-of", "nowhere.json"], "nowhere.json: no such manifest"),
        (
            ["collect", "--range-of", "m.json", "--start", "2026-01-01T00:00:00Z"],
            "--range-of excludes --start and --end",
        ),
        (["features", "--metrics", "no-such-metrics"], "no-such-metrics"),
    ],
)
def test_user_mistakes_get_a_clear_error(tmp_path, args, message):
    result = mlsched(*args, "--home" if args[0] == "stack" else "--output", str(tmp_path / "x"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_is_idempotent(tmp_path):
    args = [
        "generate",
        "--nodes",
        "2",
        "--days",
        "1",
        "--step",
        "1m",
        "--seed",
        "1",
        "--end",
        "2026-01-01T00:00:00Z",
        "--output",
        str(tmp_path / "data"),
        "--quiet",
    ]
    first = mlsched(*args)
    assert first.returncode == 0, first.stderr
    assert "2,8" in first.stdout and "node-metric rows" in first.stdout
    manifest = (tmp_path / "data" / "manifest.json").read_text()
    again = mlsched(*args)
    assert again.returncode == 0 and "already holds this data set" in again.stdout
    assert (tmp_path / "data" / "manifest.json").read_text() == manifest


def test_collect_reads_its_range_from_a_manifest(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"nodes": 3}')
    result = mlsched("collect", "--range-of", str(manifest), "--output", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "not a data set manifest with 'start' and 'end'" in result.stderr
