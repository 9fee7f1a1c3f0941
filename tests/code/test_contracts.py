"""The data contracts: good inputs round-trip, each kind of bad input names file, column and row."""

import json

import pandas as pd
import pytest

from components.contracts import (
    read_anomaly_labels,
    read_node_metrics,
    read_nodes_table,
    read_workload_trace,
    validate_node_metrics,
    write_anomaly_labels,
    write_node_metrics,
)
from components.errors import ContractError

HEADER = "timestamp,node,cpu_utilization,memory_utilization\n"


def _metrics(periods: int = 4, nodes: tuple[str, ...] = ("n1", "n2")) -> pd.DataFrame:
    stamps = pd.date_range("2026-01-01T23:59:00Z", periods=periods, freq="30s")
    return pd.DataFrame(
        [
            {"timestamp": t, "node": n, "cpu_utilization": 0.5, "memory_utilization": 0.25}
            for n in nodes
            for t in stamps
        ]
    )


def _csv(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "metrics.csv"
    path.write_text(header + body)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:30Z,n1,0.5,abc\n",
            "column 'memory_utilization', row 2 (line 3): non-numeric value 'abc'",
        ),
        (
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:30Z,n1,1.7,0.4\n",
            "column 'cpu_utilization', row 2 (line 3): value 1.7 outside [0, 1.5]",
        ),
        (
            "2026-01-01T00:00:00Z,n1,-0.1,0.4\n",
            "column 'cpu_utilization', row 1 (line 2): value -0.1 outside [0, 1.5]",
        ),
        (
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:30,n1,0.5,0.4\n",
            "column 'timestamp', row 2 (line 3): naive timestamp '2026-01-01T00:00:30'",
        ),
        (
            "2026-13-01T00:00:00Z,n1,0.5,0.4\n",
            "column 'timestamp', row 1 (line 2): cannot parse timestamp '2026-13-01T00:00:00Z'",
        ),
        (
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:30Z,n1,0.5,\n",
            "column 'memory_utilization', row 2 (line 3): missing value",
        ),
        (
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:00Z,n2,0.5,0.4\n"
            "2026-01-01T01:00:00+01:00,n1,0.5,0.4\n",
            "row 3 (line 4): duplicate (node, timestamp) (node=n1, "
            "timestamp=2026-01-01T00:00:00+00:00), first seen at row 1 (line 2)",
        ),
        (  # already sorted by (node, timestamp): the duplicate is found without sorting
            "2026-01-01T00:00:00Z,n1,0.5,0.4\n2026-01-01T00:00:30Z,n1,0.5,0.4\n"
            "2026-01-01T00:00:30Z,n1,0.5,0.4\n2026-01-01T00:00:00Z,n2,0.5,0.4\n",
            "row 3 (line 4): duplicate (node, timestamp) (node=n1, "
            "timestamp=2026-01-01T00:00:30+00:00), first seen at row 2 (line 3)",
        ),
        (
            "2026-01-01T00:00:00Z,,0.5,0.4\n",
            "column 'node', row 1 (line 2): empty name",
        ),
    ],
)
def test_bad_node_metrics_csv_names_column_and_row(tmp_path, body, expected):
    path = _csv(tmp_path, body)
    with pytest.raises(ContractError) as error:
        read_node_metrics(path)
    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


def test_missing_column_lists_what_was_found(tmp_path):
    path = _csv(tmp_path, "2026-01-01T00:00:00Z,n1,0.5\n", "timestamp,node,cpu_utilization\n")
    with pytest.raises(ContractError, match=r"missing column\(s\) memory_utilization \(found: "):
        read_node_metrics(path)


def test_extra_numeric_columns_are_kept_and_non_numeric_ones_rejected(tmp_path):
    header = HEADER.strip() + ",pod_count,zone\n"
    path = _csv(tmp_path, "2026-01-01T00:00:00Z,n1,0.5,0.4,3,\n", header)
    frame = read_node_metrics(path)
    assert frame["pod_count"].tolist() == [3.0]
    bad = _csv(tmp_path, "2026-01-01T00:00:00Z,n1,0.5,0.4,3,eu-west\n", header)
    with pytest.raises(ContractError, match="column 'zone', row 1 .*non-numeric value 'eu-west'"):
        read_node_metrics(bad)


def test_offsets_are_converted_to_utc(tmp_path):
    path = _csv(tmp_path, "2026-01-01T02:00:00+02:00,n1,0.5,0.4\n")
    frame = read_node_metrics(path)
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert str(frame["timestamp"].dt.tz) == "UTC"


@pytest.mark.parametrize("target", ["metrics.csv", "metrics.parquet", "metrics_by_day"])
def test_node_metrics_round_trip(tmp_path, target):
    frame = _metrics()
    write_node_metrics(frame, tmp_path / target)
    back = read_node_metrics(tmp_path / target)
    pd.testing.assert_frame_equal(back, validate_node_metrics(frame))


def test_partitioned_by_utc_day(tmp_path):
    write_node_metrics(_metrics(), tmp_path / "out")
    days = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert days == ["date=2026-01-01", "date=2026-01-02"]


def test_duplicates_across_partition_files_name_both_files(tmp_path):
    write_node_metrics(_metrics(), tmp_path / "out")
    first = tmp_path / "out" / "date=2026-01-01" / "part-0.parquet"
    copy = tmp_path / "out" / "date=2026-01-01" / "part-1.parquet"
    copy.write_bytes(first.read_bytes())
    with pytest.raises(
        ContractError, match=r"part-1.parquet: duplicate .*also in .*part-0.parquet"
    ):
        read_node_metrics(tmp_path / "out")


def test_naive_parquet_timestamps_are_rejected(tmp_path):
    frame = _metrics()
    frame["timestamp"] = frame["timestamp"].dt.tz_localize(None)
    frame.to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(ContractError, match="naive.parquet, column 'timestamp', row 1: naive"):
        read_node_metrics(tmp_path / "naive.parquet")


def test_failed_write_leaves_existing_data_untouched(tmp_path):
    target = tmp_path / "metrics"
    write_node_metrics(_metrics(), target)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    broken = _metrics()
    broken.loc[3, "cpu_utilization"] = 9.0
    with pytest.raises(ContractError, match="row 4: value 9 outside"):
        write_node_metrics(broken, target)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert len(read_node_metrics(target)) == len(_metrics())


def test_unknown_file_type_and_missing_path(tmp_path):
    (tmp_path / "metrics.xlsx").write_text("")
    with pytest.raises(ContractError, match=r"unsupported file type '.xlsx'"):
        read_node_metrics(tmp_path / "metrics.xlsx")
    with pytest.raises(ContractError, match="no such file or directory"):
        read_node_metrics(tmp_path / "absent.csv")


WORKLOAD_HEADER = (
    "pod,timestamp,cpu_cores,memory_bytes,cpu_request_cores,memory_request_bytes,gpus\n"
)


def test_workload_trace_good_and_changing_request(tmp_path):
    path = tmp_path / "workload.csv"
    path.write_text(
        WORKLOAD_HEADER
        + "a,2026-01-01T00:00:00Z,0.2,1e8,0.5,2e8,0\n"
        + "a,2026-01-01T00:01:00Z,0.3,1e8,0.5,2e8,0\n"
    )
    trace = read_workload_trace(path)
    assert list(trace["cpu_cores"]) == [0.2, 0.3]
    path.write_text(
        WORKLOAD_HEADER
        + "a,2026-01-01T00:00:00Z,0.2,1e8,0.5,2e8,0\n"
        + "a,2026-01-01T00:01:00Z,0.3,1e8,0.7,2e8,0\n"
    )
    with pytest.raises(
        ContractError,
        match=r"column 'cpu_request_cores', row 2 \(line 3\): request of pod 'a' changes from "
        r"0.5 to 0.7",
    ):
        read_workload_trace(path)


def test_workload_trace_without_gpus_column_gets_zero(tmp_path):
    path = tmp_path / "workload.csv"
    path.write_text(WORKLOAD_HEADER.replace(",gpus", "") + "a,2026-01-01T00:00:00Z,0.2,1,0,0\n")
    assert read_workload_trace(path)["gpus"].tolist() == [0.0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("n1,8,3e10,0\nn1,8,3e10,0\n", "row 2 (line 3): duplicate node (node=n1)"),
        ("n1,0,3e10,0\n", "column 'cpu_cores', row 1 (line 2): value 0 outside"),
        ("n1,8,3e10,1.5\n", "column 'gpus', row 1 (line 2): GPUs must be whole, got 1.5"),
    ],
)
def test_bad_nodes_table(tmp_path, body, expected):
    path = tmp_path / "nodes.csv"
    path.write_text("node,cpu_cores,memory_bytes,gpus\n" + body)
    with pytest.raises(ContractError) as error:
        read_nodes_table(path)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"n1": [["2026-01-01T00:00:00Z"]]}, "node 'n1', window 0: expected [start_iso, end_iso]"),
        ({"n1": [["2026-01-01T00:00:00", "2026-01-01T01:00:00Z"]]}, "naive timestamp"),
        ({"n1": [["2026-01-01T02:00:00Z", "2026-01-01T01:00:00Z"]]}, "ends (2026-01-01T01"),
        ({"n1": [["yesterday", "2026-01-01T01:00:00Z"]]}, "cannot parse timestamp 'yesterday'"),
        (["n1"], "expected an object"),
    ],
)
def test_bad_anomaly_labels(tmp_path, document, expected):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ContractError) as error:
        read_anomaly_labels(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_anomaly_labels_round_trip_and_invalid_json(tmp_path):
    labels = {"n1": [(pd.Timestamp("2026-01-01T00:00:00Z"), pd.Timestamp("2026-01-01T01:00:00Z"))]}
    write_anomaly_labels(labels, tmp_path / "labels.json")
    assert read_anomaly_labels(tmp_path / "labels.json") == labels
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ContractError, match="broken.json: not valid JSON"):
        read_anomaly_labels(tmp_path / "broken.json")
