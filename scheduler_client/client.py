"""A thin client of the extender, for notebooks and other schedulers.

    from scheduler_client.client import ExtenderClient, make_pod

    client = ExtenderClient("http://127.0.0.1:8888")
    client.best_node(make_pod("web-1", cpu="500m", memory="1Gi"), ["node-000", "node-001"])

It speaks the same JSON as kube-scheduler: node names go as ``NodeNames`` (the extender's node
inventory supplies their allocatable), Node objects as ``Nodes``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from components.errors import MlschedError
from scheduler_client.api import HORIZON_ANNOTATION, parse_filter_result, parse_host_priority_list


def make_pod(
    name: str,
    *,
    cpu: str | None = None,
    memory: str | None = None,
    gpus: int = 0,
    namespace: str = "default",
    uid: str | None = None,
    horizon: str | None = None,
) -> dict:
    """A minimal ``v1.Pod`` with one container and the given requests (``"500m"``, ``"1Gi"``)."""
    requests_: dict[str, Any] = {}
    if cpu is not None:
        requests_["cpu"] = cpu
    if memory is not None:
        requests_["memory"] = memory
    if gpus:
        requests_["nvidia.com/gpu"] = str(gpus)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
    }
    if horizon is not None:
        metadata["annotations"] = {HORIZON_ANNOTATION: horizon}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "main", "resources": {"requests": requests_}}]},
    }


def extender_args(pod: Mapping, nodes: Sequence[str] | Sequence[Mapping]) -> dict:
    """The ``ExtenderArgs`` body for a pod and node names (cache-capable) or Node objects."""
    if nodes and not isinstance(nodes[0], str):
        return {"Pod": pod, "Nodes": {"metadata": {}, "items": list(nodes)}, "NodeNames": None}
    return {"Pod": pod, "Nodes": None, "NodeNames": list(nodes)}


class ExtenderClient:
    """Calls ``<url><url_prefix>/filter`` and ``/prioritize``.

    Args:
        url: ``http(s)://host:port`` of the extender.
        token: bearer token, when the extender requires one.
        verify: TLS verification (True, False, or a CA bundle path).
        timeout_seconds: per call.
    """

    def __init__(
        self,
        url: str,
        *,
        url_prefix: str = "/scheduler",
        token: str | None = None,
        verify: bool | str = True,
        timeout_seconds: float = 5.0,
        session: requests.Session | None = None,
    ):
        prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
        self.base = url.rstrip("/") + prefix
        self.timeout_seconds = timeout_seconds
        self.verify = verify  # per call: a session-level value loses to REQUESTS_CA_BUNDLE
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _post(self, verb: str, body: dict) -> Any:
        try:
            response = self.session.post(
                f"{self.base}/{verb}", json=body, timeout=self.timeout_seconds, verify=self.verify
            )
        except requests.RequestException as error:
            raise MlschedError(f"extender {self.base}/{verb}: {error}") from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code != 200:
            detail = document.get("Error") if isinstance(document, dict) else response.text[:200]
            raise MlschedError(f"extender {verb}: HTTP {response.status_code}: {detail}")
        return document

    def filter(self, pod: Mapping, nodes: Sequence[str] | Sequence[Mapping]) -> dict:
        """The ``ExtenderFilterResult`` for the pod over the nodes."""
        result = parse_filter_result(self._post("filter", extender_args(pod, nodes)))
        if result.get("Error"):
            raise MlschedError(f"extender filter: {result['Error']}")
        return result

    def prioritize(self, pod: Mapping, nodes: Sequence[str] | Sequence[Mapping]) -> dict[str, int]:
        """``{node: score 0..10}`` for the pod over the nodes."""
        return parse_host_priority_list(self._post("prioritize", extender_args(pod, nodes)))

    def best_node(self, pod: Mapping, nodes: Sequence[str] | Sequence[Mapping]) -> str:
        """Filter, then prioritize the nodes that pass; the highest score wins (first on ties).

        Raises:
            MlschedError: when no node passes or the extender refuses the request.
        """
        result = self.filter(pod, nodes)
        if result.get("NodeNames") is not None:
            passed: list = result["NodeNames"]
        else:
            passed = (result.get("Nodes") or {}).get("items") or []
        if not passed:
            failed = result.get("FailedNodes") or {}
            raise MlschedError(f"no node passes the extender's filter ({len(failed)} failed)")
        scores = self.prioritize(pod, passed)
        names = [n if isinstance(n, str) else n["metadata"]["name"] for n in passed]
        return max(names, key=lambda name: scores.get(name, -1))
