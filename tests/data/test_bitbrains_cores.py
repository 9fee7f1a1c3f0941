"""The fastStorage trace as a grid of used cores per VM (what the placement families replay)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.datasets.bitbrains import read_bitbrains, read_bitbrains_cores
from components.errors import MlschedError

BITBRAINS = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BITBRAINS = BITBRAINS / "bitbrains-faststorage-50vm"

needs_trace = pytest.mark.skipif(
    not BITBRAINS.is_dir(), reason=f"{BITBRAINS} is absent (shared real data not mounted)"
)


@pytest.mark.real_data
@needs_trace
def test_grid_expands_run_length_rows():
    cores = read_bitbrains_cores(BITBRAINS)
    raw = pd.read_parquet(BITBRAINS / "trace.parquet")
    assert len(cores.columns) == raw["id"].nunique() == 50
    assert (cores.index[1] - cores.index[0]) == pd.Timedelta(minutes=5)
    covered = int(np.isfinite(cores.to_numpy()).sum())
    expected = int(np.maximum(1, np.rint(raw["duration"] / 300_000)).sum())
    assert covered == pytest.approx(expected, rel=0.01)


@pytest.mark.real_data
@needs_trace
def test_cores_agree_with_the_node_metrics_reader():
    """Both readers expand the same rows: per VM, cores / cores-per-VM add up to utilisation."""
    cores = read_bitbrains_cores(BITBRAINS)
    metrics = read_bitbrains(BITBRAINS, max_vms=3)
    meta = pd.read_parquet(BITBRAINS / "meta.parquet")
    vm_cores = meta.assign(id=meta["id"].astype(str)).set_index("id")["cpu_count"]
    for node, rows in metrics.groupby("node"):
        vm = node.removeprefix("vm-")
        share = np.clip(cores[vm].dropna().to_numpy() / vm_cores[vm], 0, 1)
        assert len(share) == pytest.approx(len(rows), rel=0.01), node
        assert share.sum() == pytest.approx(rows["cpu_utilization"].sum(), rel=0.02), node


def test_missing_file_or_column_is_a_one_line_error(tmp_path):
    with pytest.raises(MlschedError, match="trace.parquet: missing"):
        read_bitbrains_cores(tmp_path)
    pd.DataFrame(
        {
            "id": [1],
            "timestamp": [pd.Timestamp(0, tz="UTC")],
            "duration": [300_000],
            "cpu_usage": [1.0],
        }
    ).to_parquet(tmp_path / "trace.parquet")
    pd.DataFrame({"id": [1], "cpu_capacity": [2000.0]}).to_parquet(tmp_path / "meta.parquet")
    with pytest.raises(MlschedError, match=r"meta.parquet: missing column\(s\) cpu_count"):
        read_bitbrains_cores(tmp_path)
