import pandas as pd
import pytest

from components.contracts import read_anomaly_labels, read_node_metrics, read_nodes_table
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster

END = int(pd.Timestamp("2026-01-05T00:00:00Z").timestamp())  # a Monday
SMALL = HistoryConfig(nodes=10, days=8, step_seconds=60, seed=7, end_epoch=END)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> SyntheticDataset:
    root = tmp_path_factory.mktemp("synthetic") / "cluster"
    generate_synthetic_cluster(SMALL, root, workload_days=1, progress=False)
    return SyntheticDataset(root)


@pytest.fixture(scope="session")
def small_metrics(small_dataset) -> pd.DataFrame:
    return read_node_metrics(small_dataset.node_metrics)


@pytest.fixture(scope="session")
def small_nodes(small_dataset) -> pd.DataFrame:
    return read_nodes_table(small_dataset.nodes)


@pytest.fixture(scope="session")
def small_labels(small_dataset):
    return read_anomaly_labels(small_dataset.anomaly_labels)
