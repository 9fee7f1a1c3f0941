"""Submit a Katib Experiment to a cluster through the Katib SDK (``kubeflow-katib``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.errors import MlschedError


def katib_client(host: str | None = None, token: str | None = None, verify_ssl: bool = True):
    """A ``KatibClient``: from the kube-config when ``host`` is None, else for that API server."""
    from kubeflow.katib import KatibClient
    from kubernetes import client as k8s

    if host is None:
        return KatibClient()
    configuration = k8s.Configuration()
    configuration.host = host
    configuration.verify_ssl = verify_ssl
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    katib = KatibClient.__new__(KatibClient)
    katib.in_cluster = False
    katib.api_client = k8s.ApiClient(configuration)
    katib.api_instance = k8s.CustomObjectsApi(katib.api_client)
    return katib


def submit_experiment(
    katib, document: Mapping[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """Create the Experiment with ``katib`` (a ``KatibClient``); returns the created object."""
    namespace = namespace or document.get("metadata", {}).get("namespace") or "kubeflow"
    try:
        return katib.create_experiment(dict(document), namespace=namespace)
    except RuntimeError as error:
        name = document["metadata"]["name"]
        raise MlschedError(f"Katib rejected experiment {name}: {error}") from None
