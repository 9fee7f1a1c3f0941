"""The extender's Kubernetes API calls, through the official ``kubernetes`` client: the binding
of the bind verb and the pod watch that feeds the ledger of pods in flight."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from components.errors import MlschedError
from scheduler_client.api import parse_pod
from scheduler_client.ledger import InflightLedger

log = logging.getLogger("scheduler_client.kube")

Binder = Callable[[str, str, str, str], None]
"""``(namespace, name, uid, node)``: bind the pod to the node, or raise ``MlschedError``."""


def core_api(kubeconfig: str | None = None) -> Any:
    """A ``CoreV1Api`` configured from ``kubeconfig``, else from the pod's service account."""
    from kubernetes import client, config

    try:
        if kubeconfig:
            return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        config.load_incluster_config()
    except (config.ConfigException, OSError) as error:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config"
        raise MlschedError(f"Kubernetes API ({where}): {error}") from None
    return client.CoreV1Api()


def pod_binder(api: Any, timeout_seconds: float = 5.0) -> Binder:
    """Binds as kube-scheduler's DefaultBinder does: a ``Binding`` posted to the pod's
    ``binding`` subresource, the pod's uid as a precondition."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    def bind(namespace: str, name: str, uid: str, node: str) -> None:
        body = client.V1Binding(
            api_version="v1",
            kind="Binding",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, uid=uid or None),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        try:
            # the answer is a Status, which the client cannot read as the V1Binding it expects
            api.create_namespaced_pod_binding(
                name, namespace, body, _preload_content=False, _request_timeout=timeout_seconds
            )
        except client.ApiException as error:
            raise MlschedError(
                f"binding {namespace}/{name} to {node}: HTTP {error.status} {error.reason}"
            ) from None
        except HTTPError as error:
            raise MlschedError(f"binding {namespace}/{name} to {node}: {error}") from None

    return bind


def _scheduled_at(pod: Mapping) -> float | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("lastTransitionTime"):
            stamp = str(condition["lastTransitionTime"]).replace("Z", "+00:00")
            return datetime.fromisoformat(stamp).timestamp()
    return None


def apply_pod_event(ledger: InflightLedger, kind: str, pod: Mapping) -> None:
    """One watch event (``ADDED``, ``MODIFIED``, ``DELETED``) on the ledger: a pod bound to a
    node is expected there from its scheduling time; a deleted or finished pod is forgotten."""
    request = parse_pod(pod)
    phase = (pod.get("status") or {}).get("phase")
    if kind == "DELETED" or phase in ("Succeeded", "Failed"):
        ledger.forget(request.key)
        return
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ledger.record(request, node, "watch", placed_at=_scheduled_at(pod))


class PodWatch:
    """A thread that watches the bound pods of every namespace into the ledger (listing again
    after an error or a closed stream, ``retry_seconds`` apart)."""

    def __init__(self, api: Any, ledger: InflightLedger, *, retry_seconds: float = 5.0):
        self.api, self.ledger, self.retry_seconds = api, ledger, retry_seconds
        self.events = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            self._watch = watch.Watch(return_type="object")  # plain dicts: no V1Pod models
            try:
                for event in self._watch.stream(
                    self.api.list_pod_for_all_namespaces,
                    field_selector="spec.nodeName!=",
                    timeout_seconds=300,
                ):
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        apply_pod_event(self.ledger, event["type"], event["raw_object"])
                        self.events += 1
                    if self._stop.is_set():
                        break
            except Exception as error:  # the API is down or refused: list again later
                log.warning("pod watch failed", extra={"fields": {"error": f"{error}"[:300]}})
            self._stop.wait(self.retry_seconds)

    def start(self) -> PodWatch:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
