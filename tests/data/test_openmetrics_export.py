"""The OpenMetrics export carries the generated history exactly, in exporter names."""

import re

import numpy as np
import pandas as pd
import pytest

from components.generate.openmetrics import node_address, write_openmetrics

DAY = pd.Timedelta(days=1)
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>[^}]*)\} (?P<value>\S+) (?P<ts>\d+)$")


def _read(samples: pd.DataFrame, wanted: str) -> pd.DataFrame:
    chosen = samples[samples["series"].str.startswith(wanted + "{")]
    labels = chosen["series"].str.slice(len(wanted) + 1, -1)
    return pd.DataFrame({"labels": labels, "value": chosen["value"], "ts": chosen["ts"]})


@pytest.fixture(scope="module")
def samples(small_dataset) -> pd.DataFrame:
    return pd.read_csv(
        small_dataset.openmetrics,
        sep=" ",
        comment="#",
        header=None,
        names=["series", "value", "ts"],
    )


def test_file_is_well_formed_openmetrics(small_dataset):
    families, last = [], None
    with open(small_dataset.openmetrics) as lines:
        for line in lines:
            if line.startswith("# TYPE"):
                families.append(line.split()[2])
            elif not line.startswith("#"):
                assert SAMPLE.match(line.strip()), line
            last = line
    assert last == "# EOF\n"
    assert len(families) == len(set(families)), "each family is written once, contiguously"
    assert {
        "node_cpu_seconds",
        "node_memory_MemAvailable_bytes",
        "kube_node_status_allocatable",
        "kube_pod_container_resource_requests",
    } <= set(families)


def test_idle_counter_rate_gives_back_cpu_utilization(samples, small_metrics):
    idle = _read(samples, "node_cpu_seconds_total")
    node = small_metrics["node"].iloc[0]
    series = idle[
        idle["labels"].str.contains(f'instance="{node}:9100"')
        & idle["labels"].str.contains('mode="idle"')
        & idle["labels"].str.contains('cpu="0"')
    ]
    assert (np.diff(series["value"]) >= 0).all(), "a counter never decreases"
    rate = np.diff(series["value"]) / np.diff(series["ts"])
    expected = 1 - small_metrics[small_metrics["node"] == node]["cpu_utilization"].to_numpy()[1:]
    np.testing.assert_allclose(rate, expected, atol=1e-3)


def test_memory_available_matches_memory_utilization(samples, small_metrics, small_nodes):
    available = _read(samples, "node_memory_MemAvailable_bytes")
    node = small_nodes.iloc[0]
    series = available[available["labels"].str.contains(f'instance="{node["node"]}:9100"')]
    utilization = 1 - series["value"].to_numpy() / node["memory_bytes"]
    expected = small_metrics[small_metrics["node"] == node["node"]]["memory_utilization"]
    np.testing.assert_allclose(utilization, expected.to_numpy(), atol=1e-6)


def test_pod_requests_add_up_to_the_requested_ratio(samples, small_metrics, small_nodes):
    requests = _read(samples, "kube_pod_container_resource_requests")
    node = small_nodes.iloc[0]
    cpu = requests[
        requests["labels"].str.contains(f'node="{node["node"]}"')
        & requests["labels"].str.contains('resource="cpu"')
    ]
    per_time = cpu.groupby("ts")["value"].sum() / node["cpu_cores"]
    rows = small_metrics[small_metrics["node"] == node["node"]].set_index("timestamp")
    stamps = pd.to_datetime(per_time.index, unit="s", utc=True)
    common = stamps.intersection(rows.index)
    assert len(common) > 100
    np.testing.assert_allclose(
        per_time.to_numpy()[stamps.isin(common)],
        rows.loc[common, "cpu_requested_ratio"].to_numpy(),
        atol=0.01,
    )


@pytest.mark.parametrize(
    ("layout", "exporter", "node_info"),
    [
        ("instance-port", {"instance": "{node}:9100"}, False),
        ("instance-name", {"instance": "{node}"}, False),
        ("node", {"node": "{node}"}, False),
        ("both", {"instance": "{ip}:9100", "node": "{node}"}, True),
        ("ip", {"instance": "{ip}:9100"}, True),
    ],
)
def test_each_layout_names_the_node_exporter_series_its_way(
    small_dataset, small_metrics, small_nodes, tmp_path, layout, exporter, node_info
):
    first = small_metrics[small_metrics["timestamp"] < small_metrics["timestamp"].min() + DAY]
    pods = pd.read_parquet(small_dataset.node_pods)
    path = tmp_path / f"{layout}.om"
    write_openmetrics(first, small_nodes, pods, path, layout=layout)
    written = pd.read_csv(path, sep=" ", comment="#", header=None, names=["series", "value", "ts"])
    node, ip = small_nodes["node"].iloc[1], node_address(1)
    expected = {key: value.format(node=node, ip=ip) for key, value in exporter.items()}
    for name in ("node_cpu_seconds_total", "node_memory_MemAvailable_bytes"):
        for labels in _read(written, name)["labels"].unique():
            found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            assert set(found) - {"cpu", "mode", "job"} <= set(expected)
    names = [dict(re.findall(r'(\w+)="([^"]*)"', labels)) for labels in written["series"]]
    assert any(expected.items() <= labels.items() for labels in names)
    info = _read(written, "kube_node_info")
    assert (f'internal_ip="{ip}"' in " ".join(info["labels"].unique())) == node_info
    with pytest.raises(ValueError, match="layout: expected one of"):
        write_openmetrics(first, small_nodes, pods, path, layout="prometheus-operator")
