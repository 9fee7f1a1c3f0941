"""Usage streams for the workload families: real (or generated) use on one step grid, per stream.

A stream is one VM's (or one synthetic service's) use over the replay's steps; the families cut
pods from streams (see :mod:`~components.placement.family_pods`). Traces shorter in VMs than in
time are replayed side by side: ``windows`` disjoint stretches of the trace, each as long as the
replay, become separate streams aligned on the replay's step 0. Streams whose real data cover
less than ``MIN_COVERAGE`` of their stretch are dropped; short gaps repeat the previous sample.

Readers take only what they need (the Rnd parquet: four columns and the chosen stretches' rows).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.errors import MlschedError

STEP_SECONDS = 300
MIN_COVERAGE = 0.9
GIB = 1024**3
SYNTHETIC_START = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday
SYNTHETIC_STREAMS = 400
NAB_VCPUS = (1, 2, 2, 4, 4, 8)  # the instance sizes NAB's CPU percents are read against
NAB_SHIFT_STEPS = 72  # NAB stretches start every 6 hours (plus a seeded phase)
RND_WINDOWS = 2
RND_COLUMNS = ("timestamp", "node", "cpu_utilization", "memory_utilization", "cpu_cores")
RND_MEMORY = "memory_capacity_kib"


@dataclass(frozen=True)
class UsageStreams:
    """Use per stream on the replay's grid.

    Attributes:
        cpu: cores, shape ``(steps, streams)``, finite.
        memory: bytes, same shape, or None when the source has no memory use (the pods then get
            a synthetic level).
        names: a label per stream (its VM and stretch), for provenance.
        start: the time of step 0; step_seconds: the grid's step.
        gpu_streams: streams GPU pods draw from (None: any).
    """

    cpu: np.ndarray
    memory: np.ndarray | None
    names: np.ndarray
    start: pd.Timestamp
    step_seconds: int
    gpu_streams: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        return self.cpu.shape[0]

    def active(self, min_mean_cores: float, source: str) -> UsageStreams:
        """The streams whose mean CPU use is at least ``min_mean_cores`` (idle VMs dropped).

        Raises:
            MlschedError: when no stream is that active.
        """
        keep = self.cpu.mean(axis=0) >= min_mean_cores
        if not keep.any():
            raise MlschedError(
                f"{source}: no stream uses {min_mean_cores:g} cores on average "
                f"(lower min_mean_cpu_cores)"
            )
        gpu = None
        if self.gpu_streams is not None:
            renumber = np.cumsum(keep) - 1
            gpu = renumber[self.gpu_streams[keep[self.gpu_streams]]]
            gpu = gpu if len(gpu) else None
        return UsageStreams(
            cpu=self.cpu[:, keep],
            memory=None if self.memory is None else self.memory[:, keep],
            names=self.names[keep],
            start=self.start,
            step_seconds=self.step_seconds,
            gpu_streams=gpu,
        )


def _steps(days: float) -> int:
    return int(round(days * 86_400 / STEP_SECONDS))


def _covered(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the columns covered enough; fill their gaps (previous sample, then next)."""
    keep = np.isfinite(block).mean(axis=0) >= MIN_COVERAGE
    filled = pd.DataFrame(block[:, keep]).ffill().bfill().to_numpy()
    return filled, keep


def _side_by_side_starts(total: int, length: int, windows: int | None, rng) -> np.ndarray:
    count = total // length
    if count < 1:
        raise MlschedError(
            f"days: the trace holds {total} steps of {STEP_SECONDS} s, fewer than the {length} "
            f"a replay needs"
        )
    phase = int(rng.integers(0, total - count * length + 1))
    starts = phase + length * np.arange(count)
    if windows is not None and windows < count:
        starts = np.sort(rng.choice(starts, windows, replace=False))
    return starts


def faststorage_streams(folder: Path, days: float, rng: np.random.Generator) -> UsageStreams:
    """Bitbrains fastStorage: each VM's used cores in every disjoint ``days`` stretch of the 30
    days (memory: none in the trace)."""
    cores = _cached(_faststorage_cores, folder / "trace.parquet", folder)
    length = _steps(days)
    grid = cores.to_numpy()
    blocks, names = [], []
    for window, start in enumerate(_side_by_side_starts(len(grid), length, None, rng)):
        filled, keep = _covered(grid[start : start + length])
        blocks.append(filled)
        names += [f"{vm}-w{window}" for vm in cores.columns[keep]]
    return UsageStreams(
        cpu=np.maximum(np.concatenate(blocks, axis=1), 0.0),
        memory=None,
        names=np.array(names, dtype=object),
        start=cores.index[0],
        step_seconds=STEP_SECONDS,
    )


def _epoch_seconds(stamps) -> np.ndarray:
    return stamps.to_numpy().astype("datetime64[s]").view(np.int64)


def _cached(read, file: Path, *args):
    """``read(*args)``, read once per process while ``file`` is unchanged (training mixes build
    the same family many times; what is cached is small and never handed out for writing)."""
    stat = file.stat() if file.is_file() else None
    return _read_once(read, (stat.st_mtime_ns, stat.st_size) if stat else None, *args)


@functools.lru_cache(maxsize=8)
def _read_once(read, version, *args):
    del version  # part of the cache key only
    return read(*args)


def _faststorage_cores(folder: Path) -> pd.DataFrame:
    from components.datasets.bitbrains import read_bitbrains_cores

    cores = read_bitbrains_cores(folder)
    cores.values.flags.writeable = False
    return cores


def _nab_grid(file: Path) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """One NAB series' CPU share on the 5-minute grid (short gaps repeat the last sample)."""
    from components.datasets.nab import read_nab_series

    series = read_nab_series(file)
    stamps = series["timestamp"].dt.floor(f"{STEP_SECONDS}s")
    values = series["cpu_utilization"].groupby(stamps.to_numpy()).mean()
    grid = pd.date_range(values.index.min(), values.index.max(), freq=f"{STEP_SECONDS}s")
    percent = values.reindex(grid).ffill().to_numpy()
    percent.flags.writeable = False
    return grid, percent


def _rows_per_step(file: Path) -> tuple[int, np.ndarray]:
    """The first time (epoch seconds) and the rows per step, one row group at a time."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    first = [
        parquet.metadata.row_group(i).column(0).statistics for i in range(parquet.num_row_groups)
    ]
    if all(stat is not None and stat.has_min_max for stat in first):
        t0 = int(min(pd.Timestamp(stat.min).timestamp() for stat in first))
    else:
        t0 = int(_epoch_seconds(parquet.read(columns=["timestamp"]).column(0)).min())
    counts = np.zeros(0, np.int64)
    for group in range(parquet.num_row_groups):
        seconds = _epoch_seconds(parquet.read_row_group(group, columns=["timestamp"]).column(0))
        part = np.bincount((seconds - t0) // STEP_SECONDS)
        counts = np.pad(counts, (0, max(0, len(part) - len(counts))))
        counts[: len(part)] += part
    counts.flags.writeable = False
    return t0, counts


def rnd_streams(folder: Path, days: float, rng: np.random.Generator) -> UsageStreams:
    """Bitbrains Rnd: each VM's used cores and active memory in ``RND_WINDOWS`` disjoint
    ``days`` stretches of the 91 days that miss the trace's whole-day gaps.

    Raises:
        MlschedError: a missing file or column.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from components.datasets.bitbrains_rnd import usage_file

    file = usage_file(folder)
    columns = [*RND_COLUMNS, RND_MEMORY]
    names_present = set(pq.read_schema(file).names)
    missing = [c for c in columns if c not in names_present]
    if missing:
        raise MlschedError(f"{file}: missing column(s) {', '.join(missing)}")
    t0, per_step = _cached(_rows_per_step, file, file)
    reporting = per_step >= 0.5 * np.median(per_step)  # a whole-day gap reports nothing
    length = _steps(days)
    candidates = _side_by_side_starts(len(per_step), length, None, rng)
    good = [s for s in candidates if reporting[s : s + length].mean() >= 0.99]
    if not good:
        raise MlschedError(f"{file}: no {days:g}-day stretch without a gap")
    chosen = np.sort(rng.choice(good, min(RND_WINDOWS, len(good)), replace=False))
    field = ds.field("timestamp")
    where = None
    for start in chosen:
        low = pd.Timestamp((t0 + int(start) * STEP_SECONDS) * 10**9, tz="UTC")
        high = low + pd.Timedelta(seconds=length * STEP_SECONDS)
        term = (field >= pa.scalar(low, pa.timestamp("ms", "UTC"))) & (
            field < pa.scalar(high, pa.timestamp("ms", "UTC"))
        )
        where = term if where is None else where | term
    table = ds.dataset(file).to_table(columns=columns, filter=where)
    step = (_epoch_seconds(table.column("timestamp")) - t0) // STEP_SECONDS
    node = table.column("node").to_pandas()
    if isinstance(node.dtype, pd.CategoricalDtype):  # the file's dictionary: no string work
        vm_codes, vms = node.cat.codes.to_numpy(), node.cat.categories.astype(str)
    else:
        vm_codes, vms = pd.factorize(node.astype(str), sort=True)
    window = np.searchsorted(chosen, step, side="right") - 1
    column = window * len(vms) + vm_codes
    row = step - chosen[window]
    cpu = np.full((length, len(chosen) * len(vms)), np.nan)
    memory = np.full_like(cpu, np.nan)
    cpu[row, column] = table.column("cpu_utilization").to_numpy() * table.column(
        "cpu_cores"
    ).to_numpy().astype(np.float64)
    memory[row, column] = (
        table.column("memory_utilization").to_numpy().astype(np.float64)
        * table.column(RND_MEMORY).to_numpy()
        * 1024.0
    )
    cpu, keep = _covered(cpu)
    memory = pd.DataFrame(memory[:, keep]).ffill().bfill().to_numpy()
    labels = np.array([f"{v}-w{w}" for w in range(len(chosen)) for v in vms], dtype=object)
    return UsageStreams(
        cpu=cpu,
        memory=memory,
        names=labels[keep],
        start=pd.Timestamp((t0 + int(chosen[0]) * STEP_SECONDS) * 10**9, tz="UTC"),
        step_seconds=STEP_SECONDS,
    )


def nab_streams(folder: Path, days: float, rng: np.random.Generator) -> UsageStreams:
    """NAB EC2: each series' CPU percent times an instance size drawn from ``NAB_VCPUS``, in
    stretches starting every ``NAB_SHIFT_STEPS`` (they overlap: 8 series hold too few disjoint
    ones); series are aligned on their own first sample (memory: none in the data).

    Raises:
        MlschedError: no series in ``folder``.
    """
    from components.datasets.nab import PREFIX

    files = sorted(folder.glob(f"{PREFIX}*.csv"))
    if not files:
        raise MlschedError(f"{folder}: no {PREFIX}*.csv files (expected the NAB EC2 folder)")
    length = _steps(days)
    blocks, names = [], []
    start = None
    for file in files:
        grid, percent = _cached(_nab_grid, file, file)
        start = grid[0] if start is None else min(start, grid[0])
        if len(percent) < length:
            raise MlschedError(f"{file}: {len(percent)} steps, fewer than the {length} needed")
        phase = int(rng.integers(0, NAB_SHIFT_STEPS))
        for begin in range(phase, len(percent) - length + 1, NAB_SHIFT_STEPS):
            vcpus = NAB_VCPUS[int(rng.integers(len(NAB_VCPUS)))]
            blocks.append(percent[begin : begin + length] * vcpus)
            names.append(f"{file.stem.removeprefix(PREFIX)}-s{begin}-x{vcpus}")
    return UsageStreams(
        cpu=np.stack(blocks, axis=1),
        memory=None,
        names=np.array(names, dtype=object),
        start=pd.Timestamp(start).tz_convert("UTC"),
        step_seconds=STEP_SECONDS,
    )


def synthetic_streams(days: float, rng: np.random.Generator) -> UsageStreams:
    """The project generator's pod kinds (web, service, batch, GPU job) as long-running streams;
    GPU pods draw from the GPU-job streams."""
    from components.generate.workload import usage_streams

    length = _steps(days)
    cpu, memory, kinds = usage_streams(
        SYNTHETIC_STREAMS,
        length,
        step_seconds=STEP_SECONDS,
        start_epoch=int(SYNTHETIC_START.timestamp()),
        seed=int(rng.integers(2**31)),
    )
    gpu = np.flatnonzero(kinds == "gpu-job")
    return UsageStreams(
        cpu=cpu,
        memory=memory,
        names=np.array([f"{k}-{i:03d}" for i, k in enumerate(kinds)], dtype=object),
        start=SYNTHETIC_START,
        step_seconds=STEP_SECONDS,
        gpu_streams=gpu if len(gpu) else None,
    )


def check_folder(folder: str | os.PathLike, what: str) -> Path:
    """``folder`` as a Path, or a one-line error naming it when it is not a directory."""
    path = Path(folder)
    if not path.is_dir():
        raise MlschedError(
            f"{path}: no such folder (the {what} trace; see ../shared/data/README.md)"
        )
    return path
