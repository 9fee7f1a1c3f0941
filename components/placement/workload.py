"""The simulator's inputs: a workload trace and a nodes table turned into arrays.

A pod's life is its trace rows from the first to the last, on the trace's step grid (missing rows
inside that span repeat the previous row). When the simulator places a pod ``d`` steps after it
arrived, the pod runs its whole recorded life from then on (its use is shifted by ``d``), so every
policy serves the same work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from components.contracts import NODE, POD, TIMESTAMP, WORKLOAD_OWNER
from components.errors import MlschedError
from components.placement.policy import ClusterState, PodSpec
from components.placement.profiles import PROFILE_HORIZON_SECONDS, workload_of

DEFAULT_STEP_SECONDS = 60


@dataclass(frozen=True)
class Workload:
    """Pods, their requests and their real use, indexed by pod (sorted by arrival, then name).

    Attributes:
        pods: pod names.
        arrival: the step each pod arrives at.
        length: steps each pod runs once placed.
        offset: where each pod's use starts in ``cpu_usage`` / ``memory_usage``.
        cpu_request, memory_request, gpus, cpu_limit: per pod (``cpu_limit`` NaN when unset).
        owner: each pod's controller (ReplicaSet) name, "" when it has none; replicas of one
            owner that arrive in the same step form a burst.
        cpu_usage, memory_usage: every pod's use, concatenated (cores, bytes).
        start: the time of step 0; step_seconds: the step; n_steps: steps in the replay.
        recent_workload_use: for a replay cut from a longer trace, what its workloads' pods used
            in the profile horizon before its first step (:func:`recent_workload_use`), which a
            live cluster's metrics would hold; None when nothing ran before.
    """

    pods: np.ndarray
    arrival: np.ndarray
    length: np.ndarray
    offset: np.ndarray
    cpu_request: np.ndarray
    memory_request: np.ndarray
    gpus: np.ndarray
    cpu_limit: np.ndarray
    cpu_usage: np.ndarray
    memory_usage: np.ndarray
    start: pd.Timestamp
    step_seconds: int
    n_steps: int
    owner: np.ndarray | None = None
    recent_workload_use: RecentWorkloadUse | None = None

    def __post_init__(self) -> None:
        if self.owner is None:
            object.__setattr__(self, "owner", np.full(len(self.pods), "", dtype=object))

    @property
    def n_pods(self) -> int:
        return len(self.pods)

    def pod_spec(self, index: int) -> PodSpec:
        limit = self.cpu_limit[index]
        return PodSpec(
            pod=str(self.pods[index]),
            cpu_request_cores=float(self.cpu_request[index]),
            memory_request_bytes=float(self.memory_request[index]),
            gpus=int(self.gpus[index]),
            cpu_limit_cores=None if np.isnan(limit) else float(limit),
            owner=str(self.owner[index]),
        )

    def time_of(self, steps: np.ndarray | int) -> pd.DatetimeIndex | pd.Timestamp:
        """Timestamps of step indices."""
        return self.start + pd.to_timedelta(np.asarray(steps) * self.step_seconds, unit="s")

    def window(self, first_step: int, end_step: int) -> Workload:
        """The replay of steps [first_step, end_step): pods alive at ``first_step`` arrive at
        step 0 with the rest of their life; pods arriving later keep their arrival; lives are cut
        at ``end_step``."""
        first_step = max(0, int(first_step))
        end_step = min(self.n_steps, int(end_step))
        if end_step <= first_step:
            raise MlschedError(f"empty replay window: steps {first_step}..{end_step}")
        ends = self.arrival + self.length
        keep = (self.arrival < end_step) & (ends > first_step)
        begin = np.maximum(self.arrival[keep], first_step)
        length = np.minimum(ends[keep], end_step) - begin
        skipped = begin - self.arrival[keep]
        arrival = begin - first_step
        order = np.lexsort((self.pods[keep], arrival))
        recent = (
            self.recent_workload_use if first_step == 0 else recent_workload_use(self, first_step)
        )
        return replace(
            self,
            pods=self.pods[keep][order],
            arrival=arrival[order],
            length=length[order],
            offset=(self.offset[keep] + skipped)[order],
            cpu_request=self.cpu_request[keep][order],
            memory_request=self.memory_request[keep][order],
            gpus=self.gpus[keep][order],
            cpu_limit=self.cpu_limit[keep][order],
            owner=self.owner[keep][order],
            start=self.start + pd.Timedelta(seconds=first_step * self.step_seconds),
            n_steps=end_step - first_step,
            recent_workload_use=recent,
        )

    def split(self, train_fraction: float) -> tuple[Workload, Workload]:
        """Time-ordered split: the first ``train_fraction`` of the steps, and the rest."""
        if not 0 < train_fraction < 1:
            raise MlschedError(f"--train-fraction must be in (0, 1), got {train_fraction:g}")
        cut = int(round(self.n_steps * train_fraction))
        cut = min(max(cut, 1), self.n_steps - 1)
        return self.window(0, cut), self.window(cut, self.n_steps)


@dataclass(frozen=True)
class RecentWorkloadUse:
    """Samples of workloads' use: per (workload, step), the CPU cores its running pods used
    together and how many ran; ``step`` counts from the replay's first step (negative: before)."""

    step: np.ndarray
    workload: np.ndarray
    cpu_cores: np.ndarray
    pods: np.ndarray


def recent_workload_use(workload: Workload, first_step: int) -> RecentWorkloadUse | None:
    """What each workload's pods used in the profile horizon before ``first_step``."""
    horizon = int(np.ceil(PROFILE_HORIZON_SECONDS / workload.step_seconds))
    begin = max(0, first_step - horizon)
    names = np.array([workload_of(str(owner)) for owner in workload.owner], dtype=object)
    ends = workload.arrival + workload.length
    pick = (names != "") & (workload.arrival < first_step) & (ends > begin)
    if first_step <= 0 or not pick.any():
        return None
    start = np.maximum(workload.arrival[pick], begin)
    steps = np.minimum(ends[pick], first_step) - start
    within = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
    rows = np.repeat(workload.offset[pick] + start - workload.arrival[pick], steps) + within
    codes, uniques = pd.factorize(names[pick])
    span = first_step - begin
    key = np.repeat(codes, steps) * span + np.repeat(start - begin, steps) + within
    cpu = np.bincount(key, workload.cpu_usage[rows])
    pods = np.bincount(key)
    present = np.flatnonzero(pods)
    return RecentWorkloadUse(
        step=present % span + begin - first_step,
        workload=np.asarray(uniques, dtype=object)[present // span],
        cpu_cores=cpu[present],
        pods=pods[present],
    )


def _step_seconds(stamps: np.ndarray) -> int:
    unique = np.unique(stamps)
    if len(unique) < 2:
        return DEFAULT_STEP_SECONDS
    gaps = np.diff(unique)
    return int(max(1, round(float(np.min(gaps)))))


def workload_from_trace(trace: pd.DataFrame, source: str = "workload trace") -> Workload:
    """Arrays for the simulator from a validated workload-trace frame (see contracts).

    Raises:
        MlschedError: for an empty trace.
    """
    if trace.empty:
        raise MlschedError(f"{source}: no pods (the trace has no rows)")
    seconds = trace[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    step = _step_seconds(seconds)
    t0 = float(seconds.min())
    steps = np.rint((seconds - t0) / step).astype(np.int64)
    codes, names = pd.factorize(trace[POD], sort=False)
    n_pods = len(names)
    first = np.full(n_pods, np.iinfo(np.int64).max)
    last = np.full(n_pods, -1)
    np.minimum.at(first, codes, steps)
    np.maximum.at(last, codes, steps)
    length = last - first + 1
    order = np.lexsort((np.asarray(names, dtype=str), first))
    rank = np.empty(n_pods, dtype=np.int64)
    rank[order] = np.arange(n_pods)
    length_sorted = length[order]
    offset = np.concatenate([[0], np.cumsum(length_sorted)[:-1]]).astype(np.int64)
    total = int(length_sorted.sum())
    position = offset[rank[codes]] + steps - first[codes]
    cpu = np.full(total, np.nan)
    memory = np.full(total, np.nan)
    cpu[position] = trace["cpu_cores"].to_numpy(dtype=np.float64)
    memory[position] = trace["memory_bytes"].to_numpy(dtype=np.float64)
    cpu, memory = _fill_forward(cpu), _fill_forward(memory)
    row_of_pod = np.zeros(n_pods, dtype=np.int64)
    row_of_pod[codes[::-1]] = np.arange(len(codes))[::-1]
    pick = row_of_pod[order]
    gpus = trace["gpus"].to_numpy(dtype=np.float64) if "gpus" in trace else np.zeros(len(trace))
    limits = (
        trace["cpu_limit_cores"].to_numpy(dtype=np.float64)
        if "cpu_limit_cores" in trace
        else np.full(len(trace), np.nan)
    )
    owners = (
        trace[WORKLOAD_OWNER].fillna("").astype(str).to_numpy(dtype=object)
        if WORKLOAD_OWNER in trace
        else np.full(len(trace), "", dtype=object)
    )
    return Workload(
        pods=np.asarray(names, dtype=object)[order],
        arrival=first[order],
        length=length_sorted,
        offset=offset,
        cpu_request=trace["cpu_request_cores"].to_numpy(dtype=np.float64)[pick],
        memory_request=trace["memory_request_bytes"].to_numpy(dtype=np.float64)[pick],
        gpus=np.rint(gpus[pick]).astype(np.int64),
        cpu_limit=limits[pick],
        owner=owners[pick],
        cpu_usage=cpu,
        memory_usage=memory,
        start=pd.Timestamp(int(t0 * 1e9), tz="UTC"),
        step_seconds=step,
        n_steps=int(steps.max()) + 1,
    )


def _fill_forward(values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    index = np.where(missing, 0, np.arange(len(values)))
    np.maximum.accumulate(index, out=index)
    return values[index]


@dataclass(frozen=True)
class Cluster:
    """The nodes table as arrays."""

    nodes: tuple[str, ...]
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray
    gpus: np.ndarray

    def empty_state(self, step_seconds: float = DEFAULT_STEP_SECONDS) -> ClusterState:
        return ClusterState.empty(
            self.nodes, self.cpu_cores, self.memory_bytes, self.gpus, step_seconds=step_seconds
        )


def cluster_from_nodes(nodes: pd.DataFrame) -> Cluster:
    """Arrays from a validated nodes-table frame."""
    gpus = nodes["gpus"] if "gpus" in nodes else pd.Series(0, index=nodes.index)
    return Cluster(
        nodes=tuple(str(n) for n in nodes[NODE]),
        cpu_cores=nodes["cpu_cores"].to_numpy(dtype=np.float64),
        memory_bytes=nodes["memory_bytes"].to_numpy(dtype=np.float64),
        gpus=gpus.to_numpy(dtype=np.int64),
    )
