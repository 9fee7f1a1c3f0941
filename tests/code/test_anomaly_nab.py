"""The NAB reader on small files shaped like ../shared/data/nab-ec2-cpu."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.anomaly.io import read_anomaly_metrics
from components.contracts import CPU_UTILIZATION, MEMORY_UTILIZATION, NODE, TIMESTAMP
from components.datasets.nab import read_nab, read_nab_series, write_nab_as_node_metrics
from components.errors import ContractError


def write_series(folder, suffix: str, values: list[float], start="2014-02-14 14:30:00"):
    stamps = pd.date_range(start, periods=len(values), freq="5min")
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
    path = folder / f"ec2_cpu_utilization_{suffix}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def nab_folder(tmp_path):
    write_series(tmp_path, "aaa111", [10.0, 12.5, 99.0, 11.0])
    write_series(tmp_path, "bbb222", [1.0, 2.0, 3.0])
    windows = {
        "ec2_cpu_utilization_aaa111.csv": [["2014-02-14 14:35:00.000000", "2014-02-14 14:40:00"]],
        "ec2_cpu_utilization_bbb222.csv": [],
    }
    (tmp_path / "anomaly_windows.json").write_text(json.dumps(windows))
    return tmp_path


def test_reads_series_as_cpu_only_node_metrics(nab_folder):
    metrics, labels = read_nab(nab_folder)
    assert list(metrics[NODE].unique()) == ["aaa111", "bbb222"]
    assert metrics[CPU_UTILIZATION].tolist()[:4] == pytest.approx([0.1, 0.125, 0.99, 0.11])
    assert metrics[MEMORY_UTILIZATION].isna().all()
    assert str(metrics[TIMESTAMP].dt.tz) == "UTC"
    assert metrics[TIMESTAMP].iloc[0] == pd.Timestamp("2014-02-14T14:30:00Z")
    assert labels == {
        "aaa111": [(pd.Timestamp("2014-02-14T14:35:00Z"), pd.Timestamp("2014-02-14T14:40:00Z"))],
        "bbb222": [],
    }


def test_written_files_pass_the_cpu_only_contract(nab_folder, tmp_path):
    out = write_nab_as_node_metrics(nab_folder, tmp_path / "out")
    read = read_anomaly_metrics(out / "node_metrics.csv", cpu_only=True)
    assert len(read) == 7 and read[MEMORY_UTILIZATION].isna().all()
    saved = json.loads((out / "anomaly_labels.json").read_text())
    assert saved["aaa111"] == [["2014-02-14T14:35:00Z", "2014-02-14T14:40:00Z"]]


def test_bad_files_fail_naming_file_and_row(tmp_path):
    path = write_series(tmp_path, "ccc333", [10.0, 500.0])
    with pytest.raises(ContractError, match=r"ccc333.csv, column 'value', row 2"):
        read_nab_series(path)
    broken = tmp_path / "ec2_cpu_utilization_ddd444.csv"
    broken.write_text("timestamp,value\nnot a time,1\n")
    with pytest.raises(ContractError, match="column 'timestamp', row 1"):
        read_nab_series(broken)
    with pytest.raises(ContractError, match="no ec2_cpu_utilization"):
        read_nab(tmp_path / "missing")
    (tmp_path / "x").mkdir()
    write_series(tmp_path / "x", "eee555", list(np.ones(3)))
    with pytest.raises(ContractError, match="anomaly_windows.json: no such file"):
        read_nab(tmp_path / "x")
