"""The placement-policy interface, the cluster state policies see, and the policy registry.

How the simulator (:mod:`components.placement.simulator`) uses a policy, once per pending pod::

    policy.reset(seed)                                  # before a run
    feasible = state.feasible(pod)                      # NodeResourcesFit: requests fit, GPUs too
    feasible = gpu_aware_mask(pod, state, feasible)     # GPU rules, for every policy
    scores = policy.score(pod, state, feasible)         # one float per node, higher is better
    node = argmax of scores over feasible nodes         # ties broken by the run's seeded RNG
    ...
    policy.observe(feedback, state)                     # optional, at the end of every step

A policy is any object with ``name``, ``reset(seed)`` and ``score(pod, state, feasible)``;
``score`` must not change ``state`` and may return anything for infeasible nodes (ignored).
``observe`` is optional: a learning policy (the DQN) gets each step's :class:`StepFeedback`
(placements made, per-node overload, pending queue) to build its rewards.

Adding a policy is one class and one decorator::

    @register_policy("my-policy")
    class MyPolicy(BasePolicy):
        def score(self, pod, state, feasible):
            return -state.cpu_utilization

and ``make_policy("my-policy", **kwargs)`` builds it. The built-in baselines live in
:mod:`components.placement.baselines`; the DQN registers itself as ``dqn`` from
:mod:`components.placement.dqn`. Both are imported on first use of the registry.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from components.errors import MlschedError
from components.placement.kube_scores import non_zero_requests
from components.placement.profiles import WorkloadProfiles, cpu_use_guess, workload_of


@dataclass(frozen=True)
class PodSpec:
    """A pod as the scheduler sees it when it arrives: its requests (and limit), not its use.

    ``cpu_request_cores`` and ``memory_request_bytes`` are 0 for a pod without requests
    (BestEffort); ``cpu_limit_cores`` is None when the pod sets no CPU limit; ``owner`` names the
    pod's controller (its ReplicaSet), "" when it has none; ``expected_cpu_cores`` is what each
    of its workload's pods used lately (:mod:`~components.placement.profiles`), None when unknown.
    """

    pod: str
    cpu_request_cores: float
    memory_request_bytes: float
    gpus: int = 0
    cpu_limit_cores: float | None = None
    owner: str = ""
    expected_cpu_cores: float | None = None

    @property
    def cpu_use_guess(self) -> float:
        """Its CPU use before its own metrics show it (profiles' ``cpu_use_guess``)."""
        return cpu_use_guess(self.cpu_request_cores, self.expected_cpu_cores)

    @property
    def nonzero_cpu_cores(self) -> float:
        """The CPU request kube-scheduler scores with (100m when none)."""
        return float(non_zero_requests(self.cpu_request_cores, 0)[0])

    @property
    def nonzero_memory_bytes(self) -> float:
        """The memory request kube-scheduler scores with (200 MiB when none)."""
        return float(non_zero_requests(0, self.memory_request_bytes)[1])


@dataclass
class ClusterState:
    """What a policy may look at when it scores nodes: one array entry per node.

    The simulator owns and updates it in place; policies read it and never write to it (use
    :meth:`copy` to keep one). Units: CPU in cores, memory in bytes, GPUs whole.

    Attributes:
        nodes: node names, in the nodes table's order (index i of every array).
        cpu_capacity, memory_capacity, gpu_capacity: allocatable per node.
        cpu_requested, memory_requested, gpus_requested: the sums of placed pods' requests as
            written (what NodeResourcesFit and BalancedAllocation use).
        cpu_requested_nonzero, memory_requested_nonzero: the same with kube-scheduler's
            non-zero defaults (100m / 200 MiB for pods without requests; LeastAllocated,
            MostAllocated).
        pod_count: pods running per node.
        cpu_usage, memory_usage: real use per node at the last observed step (the metrics a
            load-aware scheduler reads; with an observation lag, a step some time ago), excluding
            pods placed since.
        cpu_usage_history, memory_usage_history: shape (window, nodes), oldest row first, the
            real use of the last ``window`` observed steps (fewer rows early in a run).
        cpu_usage_mean, cpu_usage_std, memory_usage_mean, memory_usage_std: per node, the mean
            and population std of that history (what Trimaran's load watcher reports).
        cpu_requested_since_observed, memory_requested_since_observed: per node, the requests
            of pods placed after the last observation (their use is not in ``cpu_usage`` yet).
        cpu_use_guess_since_observed: per node, the guessed CPU use of those pods (their
            workload's profile, else a share of the request: :attr:`PodSpec.cpu_use_guess`).
        placed_since_observed: (pod, node index) of those pods, in placement order (Trimaran
            TargetLoadPacking adds their predicted use back).
        workload_profiles: what each workload's pods used lately, from the observed use (None
            when the replay keeps no profiles); :meth:`profiled` hands a pod its own.
        forecast_cpu_p90: optional P90 CPU load per node (cores) over the coming steps, from a
            forecaster; None when no forecast is plugged in.
        step, step_seconds: the current step index and the trace's step length.
        observations: how many times the observed use or the pods placed since changed
            (:meth:`record_usage`, :meth:`set_placed_since_observed`; policies key caches on it).
    """

    nodes: tuple[str, ...]
    cpu_capacity: np.ndarray
    memory_capacity: np.ndarray
    gpu_capacity: np.ndarray
    cpu_requested: np.ndarray
    memory_requested: np.ndarray
    gpus_requested: np.ndarray
    cpu_requested_nonzero: np.ndarray
    memory_requested_nonzero: np.ndarray
    pod_count: np.ndarray
    cpu_usage: np.ndarray
    memory_usage: np.ndarray
    cpu_usage_history: np.ndarray
    memory_usage_history: np.ndarray
    cpu_usage_mean: np.ndarray
    cpu_usage_std: np.ndarray
    memory_usage_mean: np.ndarray
    memory_usage_std: np.ndarray
    cpu_requested_since_observed: np.ndarray
    memory_requested_since_observed: np.ndarray
    cpu_use_guess_since_observed: np.ndarray | None = None
    placed_since_observed: list[tuple[PodSpec, int]] = field(default_factory=list)
    workload_profiles: WorkloadProfiles | None = None
    forecast_cpu_p90: np.ndarray | None = None
    step: int = 0
    step_seconds: float = 60.0
    observations: int = 0

    @classmethod
    def empty(
        cls,
        nodes: tuple[str, ...] | list[str],
        cpu_capacity: np.ndarray,
        memory_capacity: np.ndarray,
        gpu_capacity: np.ndarray | None = None,
        step_seconds: float = 60.0,
    ) -> ClusterState:
        """A cluster with nothing placed and no usage history."""
        n = len(nodes)
        zeros = np.zeros(n, dtype=np.float64)
        gpus = np.zeros(n, np.int64) if gpu_capacity is None else np.asarray(gpu_capacity)
        return cls(
            nodes=tuple(nodes),
            cpu_capacity=np.asarray(cpu_capacity, dtype=np.float64).copy(),
            memory_capacity=np.asarray(memory_capacity, dtype=np.float64).copy(),
            gpu_capacity=gpus.astype(np.int64).copy(),
            cpu_requested=zeros.copy(),
            memory_requested=zeros.copy(),
            gpus_requested=np.zeros(n, dtype=np.int64),
            cpu_requested_nonzero=zeros.copy(),
            memory_requested_nonzero=zeros.copy(),
            pod_count=np.zeros(n, dtype=np.int64),
            cpu_usage=zeros.copy(),
            memory_usage=zeros.copy(),
            cpu_usage_history=np.zeros((0, n), dtype=np.float64),
            memory_usage_history=np.zeros((0, n), dtype=np.float64),
            cpu_usage_mean=zeros.copy(),
            cpu_usage_std=zeros.copy(),
            memory_usage_mean=zeros.copy(),
            memory_usage_std=zeros.copy(),
            cpu_requested_since_observed=zeros.copy(),
            memory_requested_since_observed=zeros.copy(),
            cpu_use_guess_since_observed=zeros.copy(),
            step_seconds=float(step_seconds),
        )

    def __post_init__(self) -> None:
        if self.cpu_use_guess_since_observed is None:
            self.cpu_use_guess_since_observed = np.zeros(len(self.nodes))

    def profiled(self, pod: PodSpec) -> PodSpec:
        """``pod`` with its workload's profile now (unchanged without profiles or owner)."""
        if self.workload_profiles is None or not pod.owner:
            return pod
        expected = self.workload_profiles.expected_cpu_cores(
            workload_of(pod.owner), self.step * self.step_seconds
        )
        return (
            pod if expected == pod.expected_cpu_cores else replace(pod, expected_cpu_cores=expected)
        )

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def cpu_utilization(self) -> np.ndarray:
        """Real CPU use / capacity at the last observed step."""
        return self.cpu_usage / self.cpu_capacity

    @property
    def memory_utilization(self) -> np.ndarray:
        return self.memory_usage / self.memory_capacity

    @property
    def gpus_free(self) -> np.ndarray:
        return self.gpu_capacity - self.gpus_requested

    def cpu_utilization_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population std of CPU utilisation over the history window, per node."""
        return self.cpu_usage_mean / self.cpu_capacity, self.cpu_usage_std / self.cpu_capacity

    def memory_utilization_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`cpu_utilization_mean_std`, for memory."""
        return (
            self.memory_usage_mean / self.memory_capacity,
            self.memory_usage_std / self.memory_capacity,
        )

    def feasible(self, pod: PodSpec) -> np.ndarray:
        """NodeResourcesFit's filter: the pod's requests (as written) fit what is left."""
        eps = 1e-9
        return (
            (self.cpu_requested + pod.cpu_request_cores <= self.cpu_capacity + eps)
            & (self.memory_requested + pod.memory_request_bytes <= self.memory_capacity + eps)
            & (self.gpus_requested + pod.gpus <= self.gpu_capacity)
        )

    def place(self, pod: PodSpec, node: int) -> None:
        """Book ``pod``'s requests on ``node`` (the simulator's move; policies never call it)."""
        cpu, memory = non_zero_requests(pod.cpu_request_cores, pod.memory_request_bytes)
        self.cpu_requested[node] += pod.cpu_request_cores
        self.memory_requested[node] += pod.memory_request_bytes
        self.gpus_requested[node] += pod.gpus
        self.cpu_requested_nonzero[node] += float(cpu)
        self.memory_requested_nonzero[node] += float(memory)
        self.pod_count[node] += 1
        self.cpu_requested_since_observed[node] += pod.cpu_request_cores
        self.memory_requested_since_observed[node] += pod.memory_request_bytes
        self.cpu_use_guess_since_observed[node] += pod.cpu_use_guess
        self.placed_since_observed.append((pod, node))

    def release(
        self,
        nodes: np.ndarray,
        cpu_request_cores: np.ndarray,
        memory_request_bytes: np.ndarray,
        gpus: np.ndarray,
    ) -> None:
        """Give back the requests of pods that ended (arrays over those pods)."""
        if len(nodes) == 0:
            return
        n = self.n_nodes
        cpu_nz, memory_nz = non_zero_requests(cpu_request_cores, memory_request_bytes)
        self.cpu_requested -= np.bincount(nodes, cpu_request_cores, n)
        self.memory_requested -= np.bincount(nodes, memory_request_bytes, n)
        self.gpus_requested -= np.bincount(nodes, gpus, n).round().astype(np.int64)
        self.cpu_requested_nonzero -= np.bincount(nodes, cpu_nz, n)
        self.memory_requested_nonzero -= np.bincount(nodes, memory_nz, n)
        self.pod_count -= np.bincount(nodes, minlength=n)
        for array in (
            self.cpu_requested,
            self.memory_requested,
            self.cpu_requested_nonzero,
            self.memory_requested_nonzero,
        ):
            np.maximum(array, 0.0, out=array)
            array[self.pod_count == 0] = 0.0

    def record_usage(
        self,
        cpu_usage: np.ndarray,
        memory_usage: np.ndarray,
        window: int,
        placed_since: list[tuple[PodSpec, int]] | None = None,
    ) -> None:
        """Observe one step's real use per node: update use, history, its mean and std.

        ``placed_since``: the running pods whose use this observation does not hold yet (placed
        after the observed step; empty when the observation is of the step just ended).
        """
        self.cpu_usage = np.asarray(cpu_usage, dtype=np.float64)
        self.memory_usage = np.asarray(memory_usage, dtype=np.float64)
        self.cpu_usage_history = np.vstack([self.cpu_usage_history, self.cpu_usage])[-window:]
        self.memory_usage_history = np.vstack([self.memory_usage_history, self.memory_usage])[
            -window:
        ]
        self.cpu_usage_mean = self.cpu_usage_history.mean(axis=0)
        self.cpu_usage_std = self.cpu_usage_history.std(axis=0)
        self.memory_usage_mean = self.memory_usage_history.mean(axis=0)
        self.memory_usage_std = self.memory_usage_history.std(axis=0)
        self.set_placed_since_observed(placed_since or [])

    def set_placed_since_observed(self, placed: list[tuple[PodSpec, int]]) -> None:
        """Replace the pods whose use is not observed yet (and their request sums); counts as an
        observation, so that caches keyed on :attr:`observations` are rebuilt."""
        cpu = np.zeros(self.n_nodes)
        memory = np.zeros(self.n_nodes)
        guess = np.zeros(self.n_nodes)
        for pod, node in placed:
            cpu[node] += pod.cpu_request_cores
            memory[node] += pod.memory_request_bytes
            guess[node] += pod.cpu_use_guess
        self.cpu_requested_since_observed = cpu
        self.memory_requested_since_observed = memory
        self.cpu_use_guess_since_observed = guess
        self.placed_since_observed = list(placed)
        self.observations += 1

    def copy(self) -> ClusterState:
        """A deep copy (the simulator keeps changing its own)."""
        values = {
            name: (value.copy() if isinstance(value, np.ndarray | list) else value)
            for name, value in self.__dict__.items()
        }
        values["workload_profiles"] = copy.deepcopy(self.workload_profiles)
        return ClusterState(**values)


@dataclass(frozen=True)
class StepFeedback:
    """What happened in one simulated step, handed to ``policy.observe`` when it has one.

    Attributes:
        step: the step index.
        placements: (pod name, node index) for every pod placed during this step.
        overloaded: per node, real CPU > 90 % or memory > 95 % of capacity during this step.
        cpu_utilization, memory_utilization: per node, real use / capacity during this step.
        throttled_pods: per node, running pods whose CPU demand the node could not serve.
        pending: pods waiting in the queue at the end of the step.
        observed_cpu_utilization, observed_memory_utilization: per node, the use / capacity a
            live cluster's metrics show after this step (the observation lag applied: what a
            policy may base its state on; the fields above are the truth, for rewards); None
            until the first step is observed.
    """

    step: int
    placements: tuple[tuple[str, int], ...]
    overloaded: np.ndarray
    cpu_utilization: np.ndarray
    memory_utilization: np.ndarray
    throttled_pods: np.ndarray
    pending: int
    observed_cpu_utilization: np.ndarray | None = None
    observed_memory_utilization: np.ndarray | None = None


@runtime_checkable
class PlacementPolicy(Protocol):
    """Scores nodes for a pod; the simulator places it on the best feasible one."""

    name: str

    def reset(self, seed: int) -> None:
        """Forget per-run state and reseed any randomness."""

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        """One float per node, higher is better; entries where ``feasible`` is False are ignored."""


class BasePolicy:
    """Convenience base: a ``name`` set by :func:`register_policy`, a seeded ``rng``."""

    name: str = "unnamed"

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        raise NotImplementedError


PolicyFactory = Callable[..., PlacementPolicy]

POLICIES: dict[str, PolicyFactory] = {}
UNAVAILABLE: dict[str, str] = {}
_BUILTIN_MODULES = ("components.placement.baselines",)
_OPTIONAL_MODULES = {"dqn": "components.placement.dqn.policy"}


def register_policy(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Class (or factory) decorator: ``make_policy(name)`` will call it; sets ``.name``."""

    def decorate(factory: PolicyFactory) -> PolicyFactory:
        if name in POLICIES and POLICIES[name] is not factory:
            raise ValueError(f"placement policy {name!r} is registered twice")
        if isinstance(factory, type):
            factory.name = name
        POLICIES[name] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for name, module in _OPTIONAL_MODULES.items():
        if name in POLICIES or name in UNAVAILABLE:
            continue
        try:
            importlib.import_module(module)
        except ImportError as error:
            UNAVAILABLE[name] = f"{module} cannot be imported: {error}"


def policy_names() -> list[str]:
    """Registered policy names (built-ins included), sorted."""
    _load_builtins()
    return sorted(POLICIES)


def make_policy(name: str, **kwargs) -> PlacementPolicy:
    """Build the registered policy ``name`` with ``kwargs``.

    Raises:
        MlschedError: for an unknown name (listing the known ones) or an unavailable one.
    """
    _load_builtins()
    if name not in POLICIES:
        if name in UNAVAILABLE:
            raise MlschedError(f"placement policy {name!r} is unavailable: {UNAVAILABLE[name]}")
        known = ", ".join(sorted(POLICIES))
        raise MlschedError(f"unknown placement policy {name!r}; known: {known}")
    policy = POLICIES[name](**kwargs)
    if not getattr(policy, "name", None) or policy.name == BasePolicy.name:
        policy.name = name
    return policy


__all__ = [
    "POLICIES",
    "BasePolicy",
    "ClusterState",
    "PlacementPolicy",
    "PodSpec",
    "StepFeedback",
    "make_policy",
    "policy_names",
    "register_policy",
]
