"""A heuristic placement policy as a registered model, and how it scores the served node state.

The placement model's versions are either a trained DQN (``dqn/``: ``config.json`` +
``weights.pt``) or a heuristic champion chosen by the gate (:mod:`components.placement.selection`):
a folder holding ``policy.json``, ``{"policy": NAME, "params": {...}, "reason": ...}``, where
``NAME`` is a registered heuristic (``make_policy(NAME, **params)`` builds it). Either way the
``champion`` alias can point at it, and the extender and the KServe predictor serve it.

Served, a heuristic sees what the DQN sees: the :class:`~components.placement.dqn.inputs.
NodeState` record built from the node features and the forecaster's P90
(:func:`cluster_state_from_node_state` turns it into the simulator's :class:`ClusterState`), and
its own scoring function, the one the simulator evaluated, gives the node scores. The record
carries less than the simulator's state, so the mapping fills the gaps as follows: the P90 CPU
forecast is the record's P90 (the forecaster's where there is one); CPU mean and std are the
recent window's, memory's mean is the use now with no spread; non-zero requests are the
requests; the pods placed since the last observation are one pod per node holding the pending
requests (what TargetLoadPacking adds back).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.atomic import replace_path
from components.errors import MlschedError
from components.model_contracts import PLACEMENT_HEURISTICS
from components.placement.dqn.inputs import NodeState
from components.placement.policy import ClusterState, PlacementPolicy, PodSpec, make_policy

POLICY_SPEC_FILE = "policy.json"
POLICY_SPEC_ARTIFACT = "policy"
"""The artifact folder of a registered heuristic (beside the DQN's ``dqn``)."""
POLICY_TAG = "placement_policy"
"""Model-version tag naming the heuristic a version serves (absent on DQN versions)."""


@dataclass(frozen=True)
class PolicySpec:
    """A registered heuristic: its registry ``policy`` name, its ``params`` and why it was
    chosen."""

    policy: str
    params: dict = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.policy not in PLACEMENT_HEURISTICS:
            raise MlschedError(
                f"policy {self.policy!r} is not a servable heuristic "
                f"({', '.join(PLACEMENT_HEURISTICS)}); a DQN is registered as its weights"
            )
        self.build()  # unknown parameters fail here, not when serving

    def build(self) -> PlacementPolicy:
        """The policy, from the registry."""
        try:
            return make_policy(self.policy, **self.params)
        except TypeError as error:
            raise MlschedError(
                f"policy {self.policy}: bad parameters {self.params}: {error}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "params": dict(self.params), "reason": self.reason}


def save_policy_spec(spec: PolicySpec, folder: str | os.PathLike) -> Path:
    """Write ``folder/policy.json`` (the folder replaced atomically); returns the folder."""

    def write(tmp: Path) -> None:
        (tmp / POLICY_SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=1))

    return replace_path(Path(folder), write, folder=True)


def find_policy_spec(root: str | os.PathLike) -> Path | None:
    """``root/policy.json`` or the first one below ``root`` (a downloaded artifact folder);
    None when there is none (a DQN model)."""
    root = Path(root)
    if (root / POLICY_SPEC_FILE).is_file():
        return root / POLICY_SPEC_FILE
    return next(iter(sorted(root.rglob(POLICY_SPEC_FILE))), None) if root.is_dir() else None


def read_policy_spec(path: str | os.PathLike) -> PolicySpec:
    """A spec from ``policy.json`` (or the folder holding one).

    Raises:
        MlschedError: no such file, not JSON, or not a servable heuristic.
    """
    path = Path(path)
    found = find_policy_spec(path) if path.is_dir() else path
    if found is None or not found.is_file():
        raise MlschedError(f"{path}: no {POLICY_SPEC_FILE} (not a registered heuristic)")
    try:
        document = json.loads(found.read_text())
        if not isinstance(document, Mapping) or not isinstance(document.get("params", {}), Mapping):
            raise ValueError("expected an object with 'policy' and 'params'")
        return PolicySpec(
            str(document["policy"]), dict(document.get("params", {})), document.get("reason", "")
        )
    except (OSError, ValueError, KeyError) as error:
        raise MlschedError(f"{found}: not a placement policy spec: {error}") from None


def cluster_state_from_node_state(nodes: NodeState) -> ClusterState:
    """The simulator's state as far as the served record tells it (gaps filled as the module
    docstring says); one observation, so a policy's per-observation caches hold."""
    cpu_cap, memory_cap = nodes["cpu_capacity_cores"], nodes["memory_capacity_bytes"]
    state = ClusterState.empty(
        [str(i) for i in range(len(nodes.values))],
        cpu_cap,
        memory_cap,
        np.rint(nodes["gpu_capacity"]).astype(np.int64),
    )
    state.cpu_requested = nodes["cpu_requested_cores"].copy()
    state.memory_requested = nodes["memory_requested_bytes"].copy()
    state.gpus_requested = np.rint(nodes["gpus_requested"]).astype(np.int64)
    state.cpu_requested_nonzero = state.cpu_requested.copy()
    state.memory_requested_nonzero = state.memory_requested.copy()
    state.pod_count = np.rint(nodes["pod_count"]).astype(np.int64)
    cpu_p90 = nodes["cpu_util_p90"] * cpu_cap
    memory_p90 = nodes["memory_util_p90"] * memory_cap
    state.record_usage(cpu_p90, memory_p90, window=1)  # the window P90 = the record's P90
    state.cpu_usage = nodes["cpu_util_now"] * cpu_cap
    state.memory_usage = nodes["memory_util_now"] * memory_cap
    state.cpu_usage_mean = nodes["cpu_util_mean"] * cpu_cap
    state.cpu_usage_std = nodes["cpu_util_std"] * cpu_cap
    state.memory_usage_mean = state.memory_usage.copy()
    state.memory_usage_std = np.zeros(len(nodes.values))
    state.forecast_cpu_p90 = cpu_p90
    state.cpu_requested_since_observed = nodes["cpu_pending_cores"].copy()
    state.memory_requested_since_observed = nodes["memory_pending_bytes"].copy()
    state.cpu_use_guess_since_observed = nodes["cpu_pending_use_cores"].copy()
    state.placed_since_observed = [
        (PodSpec(f"pending-{i}", float(cpu), float(memory)), int(i))
        for i, (cpu, memory) in enumerate(
            zip(
                state.cpu_requested_since_observed,
                state.memory_requested_since_observed,
                strict=True,
            )
        )
        if cpu > 0 or memory > 0
    ]
    return state


def score_node_state(policy: PlacementPolicy, nodes: NodeState, pod: PodSpec) -> np.ndarray:
    """The policy's score of every node of the record for ``pod`` (float64, higher is better);
    every node is a candidate (the caller passes the candidates' rows)."""
    state = cluster_state_from_node_state(nodes)
    policy.reset(0)
    scores = policy.score(pod, state, np.ones(state.n_nodes, dtype=bool))
    return np.asarray(scores, dtype=np.float64).reshape(-1)


def load_placement_model(path_or_uri: str | os.PathLike):
    """A registered placement model, whichever kind: a :class:`PolicySpec` for a heuristic,
    else the DQN's ``(network, config document)``
    (:func:`~components.placement.dqn.policy.load_dqn_network`, which needs torch).

    Args:
        path_or_uri: a model folder, or an MLflow URI (``models:/placement-dqn@champion``; the
            tracking URI from the environment, as the DQN loader uses it).

    Raises:
        MlschedError: nothing loadable there.
    """
    folder = Path(str(path_or_uri).removeprefix("file://"))
    if not folder.exists():
        if ":/" not in str(path_or_uri):  # not a URI (models:/, runs:/, s3://, ...)
            raise MlschedError(f"{folder}: no such placement model folder")
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(path_or_uri)))
        except (MlflowException, OSError) as error:
            raise MlschedError(
                f"{path_or_uri}: cannot download the placement model: {error}"
            ) from None
    spec = find_policy_spec(folder)
    if spec is not None:
        return read_policy_spec(spec)
    from components.placement.dqn.policy import load_dqn_network

    return load_dqn_network(folder)
