"""The Bitbrains placement workload: real CPU use, requests that say little, a valid cluster."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import validate_nodes_table, validate_workload_trace
from components.placement.bitbrains_workload import (
    BitbrainsConfig,
    build_bitbrains_workload,
    read_bitbrains_cores,
)
from components.placement.policy import make_policy
from components.placement.simulator import simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace

BITBRAINS = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BITBRAINS = BITBRAINS / "bitbrains-faststorage-50vm"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(
        not BITBRAINS.is_dir(), reason=f"{BITBRAINS} is absent (shared real data not mounted)"
    ),
]


@pytest.fixture(scope="module")
def built():
    trace, nodes = build_bitbrains_workload(BITBRAINS, BitbrainsConfig(days=1.0, windows=6, seed=1))
    return validate_workload_trace(trace), validate_nodes_table(nodes)


def test_grid_expands_run_length_rows():
    cores = read_bitbrains_cores(BITBRAINS)
    raw = pd.read_parquet(BITBRAINS / "trace.parquet")
    assert len(cores.columns) == raw["id"].nunique() == 50
    assert (cores.index[1] - cores.index[0]) == pd.Timedelta(minutes=5)
    covered = int(np.isfinite(cores.to_numpy()).sum())
    expected = int(np.maximum(1, np.rint(raw["duration"] / 300_000)).sum())
    assert covered == pytest.approx(expected, rel=0.01)


def test_pod_use_is_a_stretch_of_a_real_vm(built):
    trace, _ = built
    cores = read_bitbrains_cores(BITBRAINS)
    window_steps = 288  # one day of 5-minute steps
    for pod in trace["pod"].drop_duplicates().iloc[::400]:
        rows = trace[trace["pod"] == pod]
        _, vm, window, _ = pod.split("-")
        steps = ((rows["timestamp"] - cores.index[0]) // pd.Timedelta(minutes=5)).to_numpy()
        block = cores[vm].iloc[int(window[1:]) * window_steps :].iloc[:window_steps]
        real = block.ffill().bfill().to_numpy()[steps]
        assert np.allclose(rows["cpu_cores"], np.maximum(real, 0.001), atol=1e-4), pod


def test_requests_say_little_about_use(built):
    trace, _ = built
    grouped = trace.groupby("pod")
    per_pod = pd.DataFrame(
        {
            "request": grouped["cpu_request_cores"].first(),
            "p95": grouped["cpu_cores"].quantile(0.95),
        }
    )
    rank_correlation = per_pod.corr(method="spearman").loc["request", "p95"]
    assert 0 < rank_correlation < 0.5
    assert (per_pod["request"] == 0).mean() < 0.1


def test_cluster_is_sized_for_the_target_utilisation(built):
    trace, nodes = built
    workload = workload_from_trace(trace)
    mean_use = workload.cpu_usage.sum() / workload.n_steps
    assert mean_use / nodes["cpu_cores"].sum() == pytest.approx(0.45, abs=0.08)
    assert workload.step_seconds == 300
    result = simulate(workload, cluster_from_nodes(nodes), make_policy("least-allocated"))
    assert result.metrics["pods_never_placed"] == 0
    assert result.metrics["overload_node_minutes"] > 0
