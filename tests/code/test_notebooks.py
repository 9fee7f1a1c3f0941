"""Notebooks run headless from top to bottom on a generated data set."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from components.contracts import read_anomaly_labels
from components.generate.history import HistoryConfig
from components.generate.synthetic import SyntheticDataset, generate_synthetic_cluster

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _with_parameters(notebook, **values: str):
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    return notebook


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> SyntheticDataset:
    root = tmp_path_factory.mktemp("notebook") / "data"
    config = HistoryConfig(nodes=5, days=3, step_seconds=120, seed=2, end_epoch=1_767_225_600)
    generate_synthetic_cluster(config, root, workload_days=0.1, openmetrics=False, progress=False)
    return SyntheticDataset(root)


def test_eda_notebook_runs(dataset, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "01_eda.ipynb", as_version=4)
    _with_parameters(
        notebook, METRICS=str(dataset.node_metrics), LABELS=str(dataset.anomaly_labels)
    )
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    windows = sum(len(w) for w in read_anomaly_labels(dataset.anomaly_labels).values())
    assert windows > 0
    assert len(images) == 2 + min(4, windows), "profiles, correlation, up to 4 anomaly windows"


def _images(notebook) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_model_development_notebook_runs(tmp_path):
    root = tmp_path / "data"
    config = HistoryConfig(nodes=4, days=4, step_seconds=60, seed=3, end_epoch=1_767_225_600)
    generate_synthetic_cluster(config, root, workload_days=0.1, openmetrics=False, progress=False)
    dataset = SyntheticDataset(root)
    notebook = nbformat.read(NOTEBOOKS / "02_model_development.ipynb", as_version=4)
    _with_parameters(
        notebook,
        METRICS=str(dataset.node_metrics),
        LABELS=str(dataset.anomaly_labels),
        HORIZONS="5m,15m",
        FORECAST_TRAIN_FRACTION=0.7,
        ANOMALY_TRAIN_FRACTION=0.3,
    )
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    tables = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    assert any("seasonal_naive" in table and "persistence" in table for table in tables)
    assert any("robust z-score baseline" in table for table in tables)
    assert _images(notebook) >= 4, "forecast vs actual, importance, residuals, score timeline"
