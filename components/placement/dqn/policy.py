"""The trained DQN as a placement policy (``dqn``), its files, and batched Q-values for serving.

A saved model is a folder with ``weights.pt`` (the network's torch ``state_dict``) and
``config.json`` (network sizes, feature names, training summary). :func:`load_dqn_policy` reads
such a folder, or downloads one from an MLflow artifact URI (``runs:/<id>/dqn``,
``models:/placement-dqn@champion``) first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from components.atomic import replace_path
from components.errors import MlschedError
from components.placement.dqn.inputs import (
    N_NODE_FEATURES,
    N_POD_FEATURES,
    NODE_FEATURE_NAMES,
    POD_FEATURE_NAMES,
    UsageTracker,
    node_state_from_cluster,
    policy_inputs,
)
from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
from components.placement.policy import (
    BasePolicy,
    ClusterState,
    PodSpec,
    StepFeedback,
    register_policy,
)

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
MODEL_URI_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/", "s3://", "gs://", "http", "file:")


def save_dqn_model(network: NodeScoringNetwork, directory: str | os.PathLike, **extra) -> Path:
    """Write ``weights.pt`` + ``config.json`` into ``directory`` atomically (replacing it)."""
    document = {
        "network": network.config.to_dict(),
        "node_features": list(NODE_FEATURE_NAMES),
        "pod_features": list(POD_FEATURE_NAMES),
        **extra,
    }

    def write(folder: Path) -> None:
        torch.save(network.state_dict(), folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(document, indent=1, default=float))

    return replace_path(directory, write, folder=True)


def load_dqn_network(path_or_uri: str | os.PathLike) -> tuple[NodeScoringNetwork, dict]:
    """The network and its config document from a model folder or an MLflow artifact URI.

    Raises:
        MlschedError: when the folder lacks the files, or they do not match the features.
    """
    text = str(path_or_uri)
    if text.startswith(MODEL_URI_SCHEMES):
        import mlflow

        text = mlflow.artifacts.download_artifacts(artifact_uri=text)
    folder = Path(text)
    config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise MlschedError(
            f"{folder}: not a DQN model folder (needs {CONFIG_FILE}, {WEIGHTS_FILE})"
        )
    try:
        document = json.loads(config_file.read_text())
        config = NetworkConfig(**document["network"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise MlschedError(f"{config_file}: not a DQN model config: {error}") from None
    if list(document.get("node_features", [])) != list(NODE_FEATURE_NAMES) or list(
        document.get("pod_features", [])
    ) != list(POD_FEATURE_NAMES):
        raise MlschedError(f"{config_file}: the model was trained on other features")
    network = NodeScoringNetwork(config)
    network.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    network.eval()
    return network, document


@register_policy("dqn")
class DQNPolicy(BasePolicy):
    """Places each pod on the feasible node with the highest Q-value.

    Args:
        model: a model folder or MLflow artifact URI (see :func:`load_dqn_network`).
        network: an in-memory network instead (e.g. right after training).
    """

    def __init__(
        self, model: str | os.PathLike | None = None, network: NodeScoringNetwork | None = None
    ) -> None:
        super().__init__()
        if network is None:
            if model is None:
                raise MlschedError(
                    "placement policy 'dqn' needs a trained model: pass model=<folder or URI>, "
                    "or train one (python -m components.placement.dqn.train)"
                )
            network, _ = load_dqn_network(model)
        self.network = network.eval()
        self.tracker = UsageTracker(1)

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.tracker = UsageTracker(1)

    def score(self, pod: PodSpec, state: ClusterState, feasible: np.ndarray) -> np.ndarray:
        if self.tracker.steps == 1:
            self.tracker = UsageTracker.for_step(state.step_seconds)
        nodes = node_state_from_cluster(state, self.tracker)
        return self.q_values(*policy_inputs(nodes, pod), feasible)

    def observe(self, feedback: StepFeedback, state: ClusterState) -> None:
        if self.tracker.steps == 1:
            self.tracker = UsageTracker.for_step(state.step_seconds)
        self.tracker.record_feedback(feedback)

    def q_values(
        self,
        pod_features: np.ndarray,
        node_features: np.ndarray,
        feasible: np.ndarray | None = None,
    ) -> np.ndarray:
        """Q-values per node; batched when given (batch, pod) and (batch, nodes, features).

        Args:
            pod_features: (N_POD_FEATURES,) or (batch, N_POD_FEATURES).
            node_features: (nodes, N_NODE_FEATURES) or (batch, nodes, N_NODE_FEATURES).
            feasible: optional bool mask of the nodes' shape without the feature axis;
                infeasible nodes get a very low value.

        Returns:
            (nodes,) or (batch, nodes) float32.
        """
        return q_values(self.network, pod_features, node_features, feasible)


def q_values(
    network: NodeScoringNetwork,
    pod_features: np.ndarray,
    node_features: np.ndarray,
    feasible: np.ndarray | None = None,
) -> np.ndarray:
    """Batched masked Q-values of ``network`` (see :meth:`DQNPolicy.q_values`)."""
    nodes = np.asarray(node_features, dtype=np.float32)
    pod = np.asarray(pod_features, dtype=np.float32)
    single = nodes.ndim == 2
    if single:
        nodes, pod = nodes[None], pod[None]
    if nodes.ndim != 3 or nodes.shape[2] != N_NODE_FEATURES:
        raise MlschedError(
            f"node features must have shape (nodes, {N_NODE_FEATURES}), got {nodes.shape[-2:]}"
        )
    if pod.shape != (nodes.shape[0], N_POD_FEATURES):
        raise MlschedError(f"pod features must have {N_POD_FEATURES} values per pod")
    mask = np.ones(nodes.shape[:2], dtype=bool) if feasible is None else np.asarray(feasible)
    mask = np.broadcast_to(mask.astype(bool), nodes.shape[:2]).copy()
    with torch.inference_mode():
        out = network(
            torch.from_numpy(np.ascontiguousarray(nodes)),
            torch.from_numpy(np.ascontiguousarray(pod)),
            torch.from_numpy(np.ascontiguousarray(mask)),
        ).numpy()
    return out[0] if single else out


def load_dqn_policy(path_or_uri: str | os.PathLike) -> DQNPolicy:
    """The ``dqn`` policy with the weights saved at ``path_or_uri`` (folder or MLflow URI)."""
    network, _ = load_dqn_network(path_or_uri)
    return DQNPolicy(network=network)
