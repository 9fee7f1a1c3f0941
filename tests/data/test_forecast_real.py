"""The forecast report on the real Bitbrains fastStorage trace (skips when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.forecast.evaluate import evaluate_forecast
from components.forecast.model import ForecastParams

pytestmark = pytest.mark.real_data

BITBRAINS = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bitbrains-faststorage-50vm"
)
VMS = 10


@pytest.fixture(scope="module")
def bitbrains():
    if not BITBRAINS.is_dir():
        pytest.skip(f"real data not found at {BITBRAINS} (needs ../shared/data)")
    from components.datasets.bitbrains import read_bitbrains

    return read_bitbrains(BITBRAINS, max_vms=VMS)


def test_bitbrains_reads_as_node_metrics_at_five_minutes(bitbrains):
    assert bitbrains["node"].nunique() == VMS
    gaps = bitbrains.groupby("node")["timestamp"].diff().dropna()
    assert gaps.median().total_seconds() == 300
    assert bitbrains["cpu_utilization"].between(0, 1.5).all()


def test_bitbrains_cpu_report(bitbrains):
    params = ForecastParams(n_estimators=100, max_train_rows=10_000)
    report = evaluate_forecast(
        bitbrains, ["5m", "15m", "30m"], 0.7, params=params, resources=["cpu"]
    )
    assert report["data"]["step_seconds"] == 300 and report["data"]["resources"] == ["cpu"]
    for horizon in ("5m", "15m", "30m"):
        entry = report["cpu"][horizon]
        print(
            f"bitbrains cpu +{horizon}: skill {entry['skill']:.3f}, MAE model "
            f"{entry['model']['mae']:.4f} persistence {entry['persistence']['mae']:.4f} "
            f"seasonal naive {entry['seasonal_naive']['mae']:.4f}"
        )
        assert entry["rows"] > 1000
        # A real trace is no place for a model that loses clearly to the naive forecast.
        assert entry["skill"] > -0.05
