"""A placement workload built from the Bitbrains GWA-T-12 fastStorage trace (50 VMs, 30 days).

CPU use comes from the trace: each VM's used cores (``cpu_usage`` MHz over its MHz per core) on
the trace's 5-minute grid. The 30 days are cut into windows of ``days`` (all of them, or the first
``windows``), replayed side by side over the same ``days``; every (VM, window) pair is a stream,
and each stream is cut into successive pods (exponential lifetimes and gaps), so one pod's CPU
use is a stretch of one real VM's use. The trace has no memory use, so memory is
synthetic: a per-pod level (lognormal, median 2 GiB) with 1 % noise.

Requests are drawn so that they say little about use: ``request = c x p95 ** signal x
lognormal(0, spread)`` with ``signal`` = 0.15, ``spread`` = 0.8, ``c`` set so that requests add
up to ``request_to_usage`` x the use over the window, snapped to the usual menu of CPU sizes; a
few pods are BestEffort (no requests). The nodes table (16-core / 64 GiB and 32-core / 128 GiB
machines, 2 : 1) is sized so that the mean real CPU use is ``target_cpu_utilization`` of the
cluster's cores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import NODE, POD, TIMESTAMP
from components.errors import MlschedError

STEP_SECONDS = 300
GIB = 1024**3
MIB = 1024**2
CPU_MENU = np.array([0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8])
MACHINES = ((16.0, 64.0 * GIB), (16.0, 64.0 * GIB), (32.0, 128.0 * GIB))


@dataclass(frozen=True)
class BitbrainsConfig:
    """How pods, requests and nodes are drawn around the real CPU use."""

    days: float = 3.5
    windows: int | None = None
    seed: int = 0
    mean_lifetime_hours: float = 8.0
    mean_gap_hours: float = 1.0
    min_coverage: float = 0.9
    request_to_usage: float = 1.4
    request_signal: float = 0.15
    request_spread: float = 0.8
    best_effort_share: float = 0.05
    target_cpu_utilization: float = 0.45


def read_bitbrains_cores(data_dir: str | os.PathLike) -> pd.DataFrame:
    """Used cores per VM on the 5-minute grid: index = step start (UTC), one column per VM.

    Run-length rows (``duration`` > 5 min) fill every step they cover; steps with no row are NaN.

    Raises:
        MlschedError: when ``trace.parquet`` or ``meta.parquet`` is missing or lacks a column.
    """
    folder = Path(data_dir)
    tables = {}
    for name, columns in (
        ("trace", ("id", "timestamp", "duration", "cpu_usage")),
        ("meta", ("id", "cpu_count", "cpu_capacity")),
    ):
        file = folder / f"{name}.parquet"
        if not file.is_file():
            raise MlschedError(f"{file}: no such file (expected the Bitbrains fastStorage folder)")
        frame = pd.read_parquet(file)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MlschedError(f"{file}: missing column(s) {', '.join(missing)}")
        tables[name] = frame
    trace, meta = tables["trace"], tables["meta"].set_index("id")
    mhz_per_core = (meta["cpu_capacity"] / meta["cpu_count"]).reindex(trace["id"]).to_numpy()
    cores = trace["cpu_usage"].to_numpy(dtype=np.float64) / mhz_per_core
    seconds = trace["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // 10**9
    t0 = int(seconds.min()) - STEP_SECONDS
    end_step = (seconds - t0) // STEP_SECONDS - 1
    covered = np.maximum(1, np.rint(trace["duration"].to_numpy() / 1000 / STEP_SECONDS)).astype(
        np.int64
    )
    vms, vm_codes = np.unique(trace["id"].astype(str).to_numpy(), return_inverse=True)
    n_steps = int(end_step.max()) + 1
    grid = np.full((n_steps, len(vms)), np.nan)
    repeat = np.repeat(np.arange(len(trace)), covered)
    within = np.arange(len(repeat)) - np.repeat(np.cumsum(covered) - covered, covered)
    steps = end_step[repeat] - within
    ok = steps >= 0
    grid[steps[ok], vm_codes[repeat][ok]] = cores[repeat][ok]
    index = pd.to_datetime(t0 + np.arange(n_steps) * STEP_SECONDS, unit="s", utc=True)
    return pd.DataFrame(grid, index=index, columns=vms)


def _snap(values: np.ndarray) -> np.ndarray:
    positions = np.abs(np.log(values[:, None]) - np.log(CPU_MENU[None, :])).argmin(axis=1)
    return CPU_MENU[positions]


def build_bitbrains_workload(
    data_dir: str | os.PathLike, config: BitbrainsConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The workload trace and nodes table (contract frames) built from the Bitbrains trace."""
    config = config or BitbrainsConfig()
    cores = read_bitbrains_cores(data_dir)
    rng = np.random.default_rng([config.seed, 11])
    window = int(round(config.days * 86_400 / STEP_SECONDS))
    if window < 2 or window > len(cores):
        raise MlschedError(f"days={config.days:g}: the trace holds {len(cores)} 5-minute steps")
    values = cores.to_numpy()
    life_steps = config.mean_lifetime_hours * 3600 / STEP_SECONDS
    gap_steps = config.mean_gap_hours * 3600 / STEP_SECONDS
    pods: list[dict] = []
    starts = list(range(0, len(cores) - window + 1, window))[: config.windows]
    for start in starts:
        block = values[start : start + window]
        coverage = np.isfinite(block).mean(axis=0)
        for vm in np.flatnonzero(coverage >= config.min_coverage):
            series = pd.Series(block[:, vm]).ffill().bfill().to_numpy()
            at = 0 if rng.uniform() < 0.7 else int(rng.exponential(gap_steps))
            while at < window - 1:
                length = max(6, int(rng.exponential(life_steps)))
                stop = min(window, at + length)
                pods.append(
                    {
                        "name": f"bb-{cores.columns[vm]}-w{start // window}-{at:04d}",
                        "first": at,
                        "cpu": np.maximum(series[at:stop], 0.001),
                    }
                )
                at = stop + max(1, int(rng.exponential(gap_steps)))
    if not pods:
        raise MlschedError(f"{data_dir}: no VM covers {config.min_coverage:.0%} of a window")
    p95 = np.array([np.quantile(p["cpu"], 0.95) for p in pods])
    raw = np.maximum(p95, 0.01) ** config.request_signal
    raw *= rng.lognormal(0, config.request_spread, len(pods))
    use_total = sum(float(p["cpu"].sum()) for p in pods)
    steps_alive = np.array([len(p["cpu"]) for p in pods], dtype=np.float64)
    raw *= config.request_to_usage * use_total / float((raw * steps_alive).sum())
    cpu_request = _snap(raw)
    memory_level = rng.lognormal(np.log(2 * GIB), 0.6, len(pods))
    memory_request = np.maximum(
        64 * MIB,
        np.round(memory_level * rng.lognormal(np.log(1.2), 0.4, len(pods)) / (64 * MIB)) * 64 * MIB,
    )
    best_effort = rng.uniform(size=len(pods)) < config.best_effort_share
    cpu_request[best_effort] = 0.0
    memory_request[best_effort] = 0.0

    lengths = np.array([len(p["cpu"]) for p in pods])
    owner = np.repeat(np.arange(len(pods)), lengths)
    steps = np.concatenate([p["first"] + np.arange(len(p["cpu"])) for p in pods])
    names = np.array([p["name"] for p in pods], dtype=object)
    noise = rng.normal(0, 0.01, len(owner))
    trace = pd.DataFrame(
        {
            POD: names[owner],
            TIMESTAMP: cores.index[0] + pd.to_timedelta(steps * STEP_SECONDS, unit="s"),
            "cpu_cores": np.round(np.concatenate([p["cpu"] for p in pods]), 4),
            "memory_bytes": np.round(memory_level[owner] * (1 + noise), -3),
            "cpu_request_cores": cpu_request[owner],
            "memory_request_bytes": memory_request[owner],
            "gpus": 0.0,
        }
    )
    trace = trace.sort_values([TIMESTAMP, POD], kind="stable")
    mean_use = use_total / window
    n_nodes = _node_count(mean_use / config.target_cpu_utilization)
    machines = [MACHINES[i % len(MACHINES)] for i in range(n_nodes)]
    nodes = pd.DataFrame(
        {
            NODE: [f"bb-node-{i + 1:02d}" for i in range(n_nodes)],
            "cpu_cores": [m[0] for m in machines],
            "memory_bytes": [m[1] for m in machines],
            "gpus": 0,
        }
    )
    return trace.reset_index(drop=True), nodes


def _node_count(cores_needed: float) -> int:
    per_cycle = sum(m[0] for m in MACHINES)
    count, total = 0, 0.0
    while total < cores_needed:
        total += MACHINES[count % len(MACHINES)][0]
        count += 1
    return max(count, len(MACHINES), int(np.ceil(cores_needed / per_cycle)))


def write_bitbrains_workload(
    data_dir: str | os.PathLike, output: str | os.PathLike, config: BitbrainsConfig | None = None
) -> tuple[Path, Path]:
    """Build and write ``workload.parquet`` and ``nodes.csv`` into ``output`` (validated)."""
    from components.contracts import write_nodes_table, write_workload_trace

    trace, nodes = build_bitbrains_workload(data_dir, config)
    folder = Path(output)
    return (
        write_workload_trace(trace, folder / "workload.parquet"),
        write_nodes_table(nodes, folder / "nodes.csv"),
    )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m components.placement.bitbrains_workload", description=__doc__
    )
    parser.add_argument("--data", default="../shared/data/bitbrains-faststorage-50vm")
    parser.add_argument("--output", default="data/bitbrains_placement")
    parser.add_argument("--days", type=float, default=BitbrainsConfig.days)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        workload, nodes = write_bitbrains_workload(
            args.data, args.output, BitbrainsConfig(days=args.days, seed=args.seed)
        )
    except MlschedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"workload: {workload}\nnodes: {nodes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
