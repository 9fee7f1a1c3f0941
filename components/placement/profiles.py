"""Workload profiles: the CPU each workload's pods use, as the metrics of its running pods show.

A pod's requests say little about its use (in the workload families, requests follow P95 use
with a Spearman correlation of 0.15-0.3), but the replicas of one workload run the same code, and
a Deployment's next ReplicaSet runs what the last one ran. So the best guess of a new pod's use
is what its workload's pods used lately: the mean CPU cores per running pod over the samples of
the last :data:`PROFILE_HORIZON_SECONDS` (an hour: long enough to hold a few scrapes, short
enough to follow a workload whose load moves; a longer memory did worse on the exploration
draws). A pod whose workload has no recent sample is guessed from its request
(:func:`cpu_use_guess`), as the placement prior did before profiles.

The same :class:`WorkloadProfiles` serves the simulator (fed the observed, lagged use of its
running pods) and any live source (per-pod CPU from the cluster's metrics).
"""

from __future__ import annotations

from collections import deque

PROFILE_HORIZON_SECONDS = 3600.0
PRIOR_USE_PER_REQUESTED_CORE = 0.5
"""A pod without a profile is guessed to use this share of its CPU request (see
:data:`components.placement.dqn.inputs.PRIOR_CORES_PER_POD` for the per-pod part)."""


def workload_of(owner: str) -> str:
    """The workload a pod belongs to, from its controller's name: a Deployment names its
    ReplicaSets ``<deployment>-<pod-template-hash>``, so the name less its last ``-`` part
    (every rollout's ReplicaSet is then the same workload); "" when the pod has no controller."""
    head, separator, _ = owner.rpartition("-")
    return head if separator and head else owner


def cpu_use_guess(request_cores: float, expected_cores: float | None) -> float:
    """A pod's CPU use before its own metrics show it: its workload's profile when known, else
    :data:`PRIOR_USE_PER_REQUESTED_CORE` of its request."""
    if expected_cores is not None:
        return float(expected_cores)
    return PRIOR_USE_PER_REQUESTED_CORE * float(request_cores)


class WorkloadProfiles:
    """Per workload, the mean CPU cores per running pod over the samples of the last
    ``horizon_seconds`` (a sample: one scrape's total use of the workload's running pods and
    their count). Times only move forward; older samples are dropped as they expire."""

    def __init__(self, horizon_seconds: float = PROFILE_HORIZON_SECONDS) -> None:
        if horizon_seconds <= 0:
            raise ValueError(f"profile horizon must be positive, got {horizon_seconds:g} s")
        self.horizon_seconds = float(horizon_seconds)
        self._samples: dict[str, deque[tuple[float, float, int]]] = {}
        self._totals: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, at: float, workload: str, cpu_cores: float, pods: int) -> None:
        """One sample at time ``at`` (seconds): ``pods`` running pods of ``workload`` used
        ``cpu_cores`` together."""
        if not workload or pods <= 0:
            return
        samples = self._samples.setdefault(workload, deque())
        totals = self._totals.setdefault(workload, [0.0, 0])
        samples.append((float(at), float(cpu_cores), int(pods)))
        totals[0] += float(cpu_cores)
        totals[1] += int(pods)
        self._expire(workload, float(at))

    def expected_cpu_cores(self, workload: str, now: float) -> float | None:
        """The workload's mean CPU cores per pod over the samples since ``now - horizon``;
        None when it has none."""
        if workload not in self._samples:
            return None
        self._expire(workload, float(now))
        totals = self._totals.get(workload)
        if totals is None:
            return None
        return totals[0] / totals[1]

    def _expire(self, workload: str, now: float) -> None:
        samples, totals = self._samples[workload], self._totals[workload]
        oldest = now - self.horizon_seconds
        while samples and samples[0][0] < oldest:
            _, cpu, pods = samples.popleft()
            totals[0] -= cpu
            totals[1] -= pods
        if not samples:
            del self._samples[workload], self._totals[workload]
