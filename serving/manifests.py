"""KServe InferenceService manifests for the served models, rendered from registered versions.

Each model gets its own InferenceService whose predictor is the project's image running
``mlsched serve`` for that one model, loading a *pinned* registry URI
(``models:/<name>/<version>``, resolved from the ``champion`` alias when rendering): a new
champion changes the spec, so KServe starts a new revision and ``canaryTrafficPercent`` splits
traffic between it and the last ready one. The rollout plan is one manifest per step
(10 -> 50 -> 100 percent); apply them in order, checking the canary between steps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.atomic import write_text
from components.errors import MlschedError
from components.model_contracts import ANOMALY_MODEL as ANOMALY_DETECTOR
from components.model_contracts import FORECASTER_MODEL as FORECASTER
from components.model_contracts import PLACEMENT_MODEL as PLACEMENT_POLICY
from serving.loading import CHAMPION

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
ROLLOUT_PERCENTS = (10, 50, 100)
DEFAULT_IMAGE = "ghcr.io/ml-scheduler/mlsched:latest"
DEFAULT_TRACKING_URI = "http://mlflow.kubeflow.svc.cluster.local:5000"
HTTP_PORT = 8080


@dataclass(frozen=True)
class Resources:
    """Container requests and limits (Kubernetes quantities)."""

    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    cpu_limit: str = "1"
    memory_limit: str = "2Gi"

    def to_dict(self) -> dict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


DEFAULT_RESOURCES: dict[str, Resources] = {
    FORECASTER: Resources("500m", "1Gi", "2", "2Gi"),
    ANOMALY_DETECTOR: Resources("500m", "1Gi", "1", "2Gi"),
    PLACEMENT_POLICY: Resources("1", "1Gi", "2", "3Gi"),
}


@dataclass(frozen=True)
class ServiceOptions:
    """Deployment settings shared by every rendered InferenceService."""

    namespace: str = "ml-scheduler"
    image: str = DEFAULT_IMAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    min_replicas: int = 2
    max_replicas: int = 10
    scale_metric: str = "rps"
    scale_target: int = 50
    resources: dict[str, Resources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))


def version_uri(name: str, version: str | int) -> str:
    """The pinned registry URI of one model version: ``models:/<name>/<version>``."""
    return f"models:/{name}/{version}"


def render_inference_service(
    name: str,
    model_uri: str,
    *,
    canary_traffic_percent: int | None = None,
    options: ServiceOptions | None = None,
) -> dict:
    """One InferenceService (as a dict) serving ``model_uri`` under the name ``name``.

    Args:
        name: the served model's name (also the InferenceService name).
        model_uri: what the predictor loads, best a pinned ``models:/<name>/<version>``.
        canary_traffic_percent: share of traffic for this (latest) revision, 1..100; None for
            a first rollout (all traffic).
        options: namespace, image, replicas, resources.

    Raises:
        MlschedError: a percent outside 1..100 or replicas out of order.
    """
    options = options or ServiceOptions()
    if canary_traffic_percent is not None and not 0 < canary_traffic_percent <= 100:
        raise MlschedError(f"canary traffic percent must be 1..100, got {canary_traffic_percent}")
    if not 0 < options.min_replicas <= options.max_replicas:
        raise MlschedError(
            f"replicas: need 0 < min ({options.min_replicas}) <= max ({options.max_replicas})"
        )
    resources = options.resources.get(name, Resources())
    container = {
        "name": "kserve-container",
        "image": options.image,
        "args": [
            "serve",
            "--port",
            str(HTTP_PORT),
            "--model",
            name,
            "--model-uri",
            f"{name}={model_uri}",
        ],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": options.tracking_uri}],
        "ports": [{"containerPort": HTTP_PORT, "name": "http1", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"/v2/models/{name}/ready", "port": HTTP_PORT},
            "periodSeconds": 5,
        },
        "resources": resources.to_dict(),
    }
    predictor: dict = {
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "scaleMetric": options.scale_metric,
        "scaleTarget": options.scale_target,
        "containers": [container],
    }
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = int(canary_traffic_percent)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": {"app.kubernetes.io/part-of": "ml-scheduler", "mlsched.io/model": name},
            "annotations": {"mlsched.io/model-uri": model_uri},
        },
        "spec": {"predictor": predictor},
    }


def rollout_plan(
    name: str,
    model_uri: str,
    percents: Sequence[int] = ROLLOUT_PERCENTS,
    options: ServiceOptions | None = None,
) -> list[dict]:
    """The canary rollout of ``model_uri``: one manifest per traffic step, in order.

    Raises:
        MlschedError: steps that do not rise strictly or do not end at 100.
    """
    steps = [int(p) for p in percents]
    if not steps or steps[-1] != 100 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise MlschedError(f"rollout steps must rise strictly and end at 100, got {steps}")
    return [
        render_inference_service(name, model_uri, canary_traffic_percent=p, options=options)
        for p in steps
    ]


def champion_uri(client, name: str, alias: str = CHAMPION) -> str:
    """The pinned URI of the version ``alias`` points at, from an ``MlflowClient``.

    Raises:
        MlschedError: the model or alias is not registered.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        raise MlschedError(f"registered model {name!r} alias {alias!r}: {error.message}") from None
    return version_uri(name, version.version)


def write_manifests(
    uris: dict[str, str],
    output: str | os.PathLike,
    *,
    percents: Sequence[int] = ROLLOUT_PERCENTS,
    options: ServiceOptions | None = None,
) -> list[Path]:
    """Write ``<output>/<name>/canary-<percent>.yaml`` for each ``{name: model URI}``.

    Each file is written to a temporary name first and moved into place.
    """
    import yaml

    written = []
    root = Path(output)
    for name, uri in uris.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for manifest in rollout_plan(name, uri, percents, options):
            percent = manifest["spec"]["predictor"]["canaryTrafficPercent"]
            target = folder / f"canary-{percent:03d}.yaml"
            written.append(write_text(target, yaml.safe_dump(manifest, sort_keys=False)))
    return written
