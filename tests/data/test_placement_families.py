"""Workload families: valid, bursty, seeded, real use kept real, knobs respected."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import validate_workload_trace
from components.errors import MlschedError
from components.placement import families
from components.placement.families import (
    FAMILY_NAMES,
    REAL_FAMILIES,
    FamilyKnobs,
    available_families,
    build_family,
    build_family_frames,
    family_folder,
    family_stats,
    randomised_knobs,
)
from components.placement.family_pods import CPU_MENU, NodePlan, PodPlan, build_pods
from components.placement.family_streams import UsageStreams

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SMALL = FamilyKnobs(days=1.5, pods=500)


def _needs_data(name: str) -> None:
    if name in REAL_FAMILIES and not family_folder(name, DATA).is_dir():
        pytest.skip(f"{family_folder(name, DATA)} is absent (shared real data not mounted)")


@pytest.fixture(scope="module")
def small_frames():
    built = {}

    def build(name: str, seed: int = 0, knobs: FamilyKnobs = SMALL):
        _needs_data(name)
        key = (name, seed, knobs)
        if key not in built:
            built[key] = build_family_frames(name, seed=seed, data_dir=DATA, knobs=knobs)
        return built[key]

    return build


def _bursts(trace: pd.DataFrame) -> pd.Series:
    first = trace.groupby("pod").agg(owner=("owner", "first"), arrival=("timestamp", "min"))
    return first[first["owner"] != ""].groupby(["owner", "arrival"]).size()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_builds_a_valid_loaded_bursty_workload(small_frames, name):
    trace, nodes = small_frames(name)
    assert validate_workload_trace(trace).shape[0] == len(trace)
    workload, cluster = build_family(name, seed=0, data_dir=DATA, knobs=SMALL)
    stats = family_stats(workload, cluster)
    assert workload.step_seconds == 300
    assert workload.n_steps == round(SMALL.days * 288)
    assert 0.5 * SMALL.pods < stats["pods"] < 1.5 * SMALL.pods
    assert 0.25 < stats["cpu_pool_use_share"] < 0.6, stats
    assert stats["peak_cpu_use_share"] <= 1.5
    # ReplicaSet bursts: replicas share an owner and one arrival step, 5 to 50 of them
    sizes = _bursts(trace)
    assert len(sizes) >= 3
    assert sizes.between(*SMALL.burst_size).all()
    assert stats["bursts"] == len(sizes)
    singles = trace.groupby("pod")["owner"].first()
    assert (singles == "").sum() > 0.2 * len(singles)
    # every pod fits some node by its requests
    per_pod = trace.groupby("pod")[["cpu_request_cores", "memory_request_bytes", "gpus"]].first()
    assert (per_pod["cpu_request_cores"] <= nodes["cpu_cores"].max()).all()
    assert (per_pod["memory_request_bytes"] <= nodes["memory_bytes"].max()).all()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_requests_say_little_about_use_and_snap_to_usual_sizes(small_frames, name):
    trace, _ = small_frames(name)
    grouped = trace.groupby("pod")
    request = grouped["cpu_request_cores"].first()
    p95 = grouped["cpu_cores"].quantile(0.95)
    assert -0.1 < request.corr(p95, method="spearman") < 0.6
    assert np.isin(request[request > 0], CPU_MENU).all()
    assert 0 < (request == 0).mean() < 0.2  # a few BestEffort pods


@pytest.mark.parametrize("name", ["synthetic", "bitbrains-faststorage"])
def test_same_seed_same_draw_other_seed_other_draw(small_frames, name):
    first, nodes = small_frames(name, seed=3)
    again, _ = build_family_frames(name, seed=3, data_dir=DATA, knobs=SMALL)
    other, other_nodes = small_frames(name, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert set(first["pod"]) != set(other["pod"]) or not first["cpu_cores"].equals(
        other["cpu_cores"]
    )
    assert not _bursts(first).reset_index(drop=True).equals(_bursts(other).reset_index(drop=True))
    assert not first.groupby("pod")["cpu_request_cores"].first().equals(
        other.groupby("pod")["cpu_request_cores"].first()
    ) or not nodes.equals(other_nodes)


def test_knobs_steer_arrivals_lifetimes_requests_nodes_and_gpus(small_frames):
    steady, _ = small_frames("synthetic", knobs=replace(SMALL, burst_share=0.0))
    assert (steady["owner"] == "").all()
    all_bursts, _ = small_frames("synthetic", knobs=replace(SMALL, burst_share=1.0))
    assert (all_bursts["owner"] != "").all()

    def mean_life(knobs):
        trace, _ = small_frames("synthetic", knobs=knobs)
        return trace.groupby("pod").size().mean()

    assert mean_life(replace(SMALL, mean_lifetime_hours=2)) < 0.5 * mean_life(
        replace(SMALL, mean_lifetime_hours=12)
    )

    def request_ratio(ratio):
        trace, _ = small_frames("synthetic", knobs=replace(SMALL, request_to_usage=ratio))
        return trace["cpu_request_cores"].sum() / trace["cpu_cores"].sum()

    assert request_ratio(0.3) < 0.6 < 1.8 < request_ratio(3.0)

    _, fixed = small_frames("synthetic", knobs=replace(SMALL, node_count=7))
    assert len(fixed) == 7
    _, mixed = small_frames("synthetic", knobs=replace(SMALL, node_shapes=((8, 32), (32, 128))))
    assert set(mixed["cpu_cores"]) == {8.0, 32.0}
    _, same = small_frames("synthetic", knobs=replace(SMALL, node_shapes=((16, 64),)))
    assert set(same["cpu_cores"]) == {16.0}

    gpu_knobs = replace(SMALL, gpu_pod_share=0.1, gpu_node_share=0.2, gpus_per_node=8)
    trace, nodes = small_frames("synthetic", knobs=gpu_knobs)
    gpu_pods = trace.groupby("pod")["gpus"].first()
    assert 0.03 < (gpu_pods > 0).mean() < 0.2
    assert set(nodes["gpus"]) == {0, 8}
    assert (nodes["gpus"] > 0).mean() >= 0.2
    _, low = small_frames("synthetic", knobs=replace(SMALL, target_cpu_utilization=0.3))
    _, high = small_frames("synthetic", knobs=replace(SMALL, target_cpu_utilization=0.55))
    assert low["cpu_cores"].sum() > high["cpu_cores"].sum()


def test_pods_replay_real_stretches_of_their_streams():
    steps, n_streams = 200, 30
    # every (step, stream) value is unique, so a pod's use names where it came from
    values = np.arange(n_streams)[None, :] + 1 + np.arange(steps)[:, None] / 1000
    streams = UsageStreams(
        cpu=values,
        memory=None,
        names=np.array([f"s{i}" for i in range(n_streams)], dtype=object),
        start=pd.Timestamp("2026-01-01T00:00:00Z"),
        step_seconds=300,
    )
    plan = PodPlan(300, 24.0, 0.5, (5, 20), 0.0, 1.4, 1.3, 0.15, 0.8, 0.05)
    node_plan = NodePlan(None, ((16, 64),), 0.45, 0.9, 0.85, 0.0, 4)
    trace, _ = build_pods(streams, plan, node_plan, np.random.default_rng(0), "t")
    step = ((trace["timestamp"] - streams.start) // pd.Timedelta(seconds=300)).to_numpy()
    stream = np.floor(trace["cpu_cores"].to_numpy()).astype(int) - 1
    assert np.allclose(trace["cpu_cores"], np.round(values[step, stream], 4))
    assert (pd.Series(stream).groupby(trace["pod"].to_numpy()).nunique() == 1).all()


def test_real_streams_are_the_trace_values():
    folder = family_folder("bitbrains-rnd", DATA)
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (shared real data not mounted)")
    from components.placement.family_streams import rnd_streams

    streams = rnd_streams(folder, 1.0, np.random.default_rng(5))
    first_window = np.array([name.endswith("-w0") for name in streams.names])
    column = int(np.argmax(np.where(first_window, streams.cpu.mean(axis=0), -1)))
    vm, window = streams.names[column].rsplit("-w", 1)
    raw = pd.read_parquet(
        folder / "usage.parquet",
        filters=[("node", "==", vm), ("timestamp", ">=", streams.start.to_pydatetime())],
    ).sort_values("timestamp")
    assert window == "0"
    stretch = raw[raw["timestamp"] < streams.start + pd.Timedelta(days=1)]
    steps = ((stretch["timestamp"] - streams.start) // pd.Timedelta(minutes=5)).to_numpy()
    expected_cpu = stretch["cpu_utilization"].to_numpy() * stretch["cpu_cores"].to_numpy()
    expected_memory = (
        stretch["memory_utilization"].to_numpy() * stretch["memory_capacity_kib"] * 1024
    )
    assert np.allclose(streams.cpu[steps, column], expected_cpu, rtol=1e-5)
    assert np.allclose(streams.memory[steps, column], expected_memory, rtol=1e-5)


def test_randomised_knobs_vary_and_build():
    drawn = [randomised_knobs(np.random.default_rng(seed)) for seed in range(12)]
    assert len({k.request_to_usage for k in drawn}) == 12
    assert (
        min(k.request_to_usage for k in drawn) < 0.6
        and max(k.request_to_usage for k in drawn) > 1.8
    )
    assert any(k.burst_share == 0 for k in drawn) and any(k.burst_share > 0.5 for k in drawn)
    assert any(len(k.node_shapes) == 1 for k in drawn) and any(
        len(k.node_shapes) > 1 for k in drawn
    )
    assert any(k.gpu_pod_share > 0 for k in drawn) and any(k.gpu_pod_share == 0 for k in drawn)
    knobs = replace(drawn[0], days=1.0, pods=min(drawn[0].pods, 600))
    workload, cluster = build_family("synthetic", seed=0, knobs=knobs)
    assert workload.n_pods > 0 and len(cluster.nodes) >= 2


def test_unknown_family_bad_knob_and_missing_data_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(MlschedError, match="unknown workload family"):
        build_family_frames("alibaba", seed=0)
    with pytest.raises(MlschedError, match="burst_share"):
        FamilyKnobs(burst_share=1.5)
    assert available_families(tmp_path) == ["synthetic"]
    with pytest.raises(MlschedError, match="no such folder"):
        build_family("nab-ec2", seed=0, data_dir=tmp_path)
    status = families.main(
        ["--family", "bitbrains-rnd", "--seed", "0", "--output", str(tmp_path / "out"),
         "--data", str(tmp_path)]
    )  # fmt: skip
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and str(tmp_path / "bitbrains-rnd-500vm") in error
    assert not (tmp_path / "out" / "workload.parquet").exists()


def test_cli_writes_a_family(tmp_path, capsys):
    output = tmp_path / "syn"
    status = families.main(
        ["--family", "synthetic", "--seed", "2", "--output", str(output), "--days", "1",
         "--pods", "300", "--burst-share", "0.4"]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    from components.contracts import read_nodes_table, read_workload_trace

    trace = read_workload_trace(output / "workload.parquet")
    assert len(read_nodes_table(output / "nodes.csv")) >= 2
    assert (trace["owner"] != "").any()
    assert "bursts=" in capsys.readouterr().out


def test_generator_usage_streams_follow_the_pod_kinds():
    from components.generate.workload import POD_KINDS, usage_streams

    cpu, memory, kinds = usage_streams(200, 288, step_seconds=300, start_epoch=0, seed=1)
    again, _, _ = usage_streams(200, 288, step_seconds=300, start_epoch=0, seed=1)
    assert cpu.shape == memory.shape == (288, 200)
    assert np.array_equal(cpu, again)
    assert set(kinds) == {k.name for k in POD_KINDS}
    peak = {k.name: k.peak_cores for k in POD_KINDS}
    for name in peak:
        assert np.median(cpu[:, kinds == name].max(axis=0)) < 3 * peak[name]
    assert (cpu > 0).all() and (memory > 0).all()
