"""The JSON of ``k8s.io/kube-scheduler/extender/v1``, as kube-scheduler sends and reads it.

The Go structs have no JSON tags, so their keys are the field names in PascalCase:

* request (``ExtenderArgs``): ``{"Pod": v1.Pod, "Nodes": v1.NodeList | null,
  "NodeNames": [name, ...] | null}``. With ``nodeCacheCapable: true`` kube-scheduler sends only
  ``NodeNames`` (the fast path); otherwise the full ``Nodes``
  (``{"metadata": {}, "items": [...]}``).
* filter answer (``ExtenderFilterResult``): ``{"Nodes", "NodeNames", "FailedNodes": {node:
  reason}, "FailedAndUnresolvableNodes": {node: reason}, "Error": ""}``; a cache-capable
  extender answers with ``NodeNames``, the other kind with ``Nodes``.
* prioritize answer (``HostPriorityList``): ``[{"Host": name, "Score": 0..10}]``.
* bind request (``ExtenderBindingArgs``, with ``bindVerb`` set): ``{"PodName", "PodNamespace",
  "PodUID", "Node"}``; answer (``ExtenderBindingResult``): ``{"Error": ""}`` (non-empty: failed).

The embedded ``v1.Pod`` and ``v1.Node`` are Kubernetes API objects with their usual camelCase keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

import orjson

from components.durations import parse_duration_seconds
from components.errors import MlschedError
from scheduler_client.quantity import QuantityError, cpu_cores, whole_units

MAX_EXTENDER_PRIORITY = 10
MIN_EXTENDER_PRIORITY = 0
GPU_RESOURCE = "nvidia.com/gpu"
HORIZON_ANNOTATION = "ml-scheduler.io/horizon"


class ExtenderRequestError(MlschedError):
    """A request the extender cannot use (malformed JSON, no Pod, unknown nodes...)."""


@dataclass(frozen=True)
class PodRequest:
    """What the extender needs of the pod being scheduled: identity and effective requests.

    ``cpu_cores``, ``memory_bytes`` and ``gpus`` are the pod's effective requests as
    kube-scheduler computes them (containers summed, init containers as a peak, sidecars added,
    plus the pod overhead); 0 where nothing is requested. ``owner`` groups the replicas of one
    workload (:func:`pod_owner`; empty: none known).
    """

    name: str
    namespace: str
    uid: str
    cpu_cores: float
    memory_bytes: int
    gpus: int
    horizon_seconds: float | None = None
    owner: str = ""

    @property
    def key(self) -> str:
        """The pod's uid, or ``namespace/name`` when it has none."""
        return self.uid or f"{self.namespace}/{self.name}"


class NodeAllocatable(NamedTuple):
    """A node's ``status.allocatable``: CPU cores, memory bytes, whole GPUs (a named tuple: a
    full-Nodes request builds one per candidate)."""

    name: str
    cpu_cores: float
    memory_bytes: int
    gpus: int


@dataclass(frozen=True)
class ExtenderArgs:
    """One ``ExtenderArgs`` request.

    Attributes:
        pod: the pod's requests.
        node_names: the candidate nodes, in the order sent.
        node_cache_capable: ``True`` when the request carried ``NodeNames`` (no Node objects).
        nodes: the Node objects as sent (only when ``node_cache_capable`` is ``False``).
        allocatable: their ``status.allocatable`` (only when ``node_cache_capable`` is ``False``).
    """

    pod: PodRequest
    node_names: list[str]
    node_cache_capable: bool
    nodes: list[dict] | None = None
    allocatable: list[NodeAllocatable] | None = None


@dataclass(frozen=True)
class BindingArgs:
    """One ``ExtenderBindingArgs`` request: bind the pod to ``node``."""

    name: str
    namespace: str
    uid: str
    node: str

    @property
    def key(self) -> str:
        """As :attr:`PodRequest.key`."""
        return self.uid or f"{self.namespace}/{self.name}"


# --------------------------------------------------------------------------- parsing


def _document(body: bytes | str | Mapping, what: str) -> Mapping:
    if isinstance(body, Mapping):
        return body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ExtenderRequestError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, Mapping):
        raise ExtenderRequestError(f"request body must be an {what} object")
    return document


def parse_binding_args(body: bytes | str | Mapping) -> BindingArgs:
    """Parse an ``ExtenderBindingArgs`` request body (all four fields are needed but the uid)."""
    document = _document(body, "ExtenderBindingArgs")
    values = {}
    for key in ("PodName", "PodNamespace", "PodUID", "Node"):
        value = document.get(key) or ""
        if not isinstance(value, str) or (not value and key != "PodUID"):
            raise ExtenderRequestError(f"ExtenderBindingArgs: {key} must be a non-empty string")
        values[key] = value
    return BindingArgs(values["PodName"], values["PodNamespace"], values["PodUID"], values["Node"])


def _resources(section: Any, where: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ExtenderRequestError(f"{where}: expected an object of quantities")
    return section


def _container_requests(container: Any, where: str) -> tuple[float, int, int]:
    if not isinstance(container, Mapping):
        raise ExtenderRequestError(f"{where}: expected a container object")
    resources = _resources(container.get("resources"), f"{where}.resources")
    requests = _resources(resources.get("requests"), f"{where}.resources.requests")
    limits = _resources(resources.get("limits"), f"{where}.resources.limits")

    def pick(resource: str):
        # The API server defaults a missing request to the limit; mirror that for raw objects.
        return requests.get(resource, limits.get(resource))

    cpu = pick("cpu")
    memory = pick("memory")
    gpus = pick(GPU_RESOURCE)
    values = (
        0.0 if cpu is None else cpu_cores(cpu, what=f"{where}.resources.requests.cpu"),
        0 if memory is None else whole_units(memory, what=f"{where}.resources.requests.memory"),
        0 if gpus is None else whole_units(gpus, what=f"{where}.resources.requests.{GPU_RESOURCE}"),
    )
    if min(values) < 0:
        raise ExtenderRequestError(f"{where}: resource requests must not be negative")
    return values


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _peak(a: tuple, b: tuple) -> tuple:
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


def pod_requests(spec: Mapping, where: str = "Pod.spec") -> tuple[float, int, int]:
    """A pod spec's effective (cpu cores, memory bytes, GPUs) requests, as kube-scheduler counts
    them (``k8s.io/component-helpers/resource.PodRequests``)."""
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    if not isinstance(containers, list) or not isinstance(init_containers, list):
        raise ExtenderRequestError(f"{where}: containers and initContainers must be lists")
    total: tuple = (0.0, 0, 0)
    for i, container in enumerate(containers):
        total = _add(total, _container_requests(container, f"{where}.containers[{i}]"))
    sidecars: tuple = (0.0, 0, 0)
    init_peak: tuple = (0.0, 0, 0)
    for i, container in enumerate(init_containers):
        own = _container_requests(container, f"{where}.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            total = _add(total, own)
            sidecars = _add(sidecars, own)
            running = sidecars
        else:
            running = _add(own, sidecars)
        init_peak = _peak(init_peak, running)
    total = _peak(total, init_peak)
    overhead = _resources(spec.get("overhead"), f"{where}.overhead")
    if overhead:
        total = _add(total, _container_requests({"resources": {"requests": overhead}}, where))
    return total


def pod_owner(metadata: Mapping, namespace: str) -> str:
    """What the replicas of one workload share: the uid of the pod's controller ownerReference
    (its ReplicaSet, StatefulSet, Job...), else ``namespace/pod-template-hash`` (the label a
    Deployment's pods carry), else ``namespace/generateName``; empty when none is there."""
    references = metadata.get("ownerReferences")
    for reference in references if isinstance(references, list) else ():
        if isinstance(reference, Mapping) and reference.get("controller") and reference.get("uid"):
            return str(reference["uid"])
    labels = metadata.get("labels")
    template_hash = labels.get("pod-template-hash") if isinstance(labels, Mapping) else None
    if template_hash:
        return f"{namespace}/{template_hash}"
    generate_name = metadata.get("generateName")
    return f"{namespace}/{generate_name}" if generate_name else ""


def parse_pod(pod: Any) -> PodRequest:
    """A ``v1.Pod`` object's identity, effective requests and optional horizon annotation."""
    if not isinstance(pod, Mapping):
        raise ExtenderRequestError("Pod: missing or not an object; kube-scheduler always sends one")
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec")
    if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
        raise ExtenderRequestError("Pod: needs 'metadata' and 'spec' objects")
    cpu, memory, gpus = pod_requests(spec)
    annotations = metadata.get("annotations") or {}
    horizon = None
    if isinstance(annotations, Mapping) and annotations.get(HORIZON_ANNOTATION):
        horizon = parse_duration_seconds(
            annotations[HORIZON_ANNOTATION], what=f"Pod annotation {HORIZON_ANNOTATION}"
        )
    namespace = str(metadata.get("namespace") or "default")
    return PodRequest(
        name=str(metadata.get("name") or ""),
        namespace=namespace,
        uid=str(metadata.get("uid") or ""),
        cpu_cores=float(cpu),
        memory_bytes=int(memory),
        gpus=int(gpus),
        horizon_seconds=horizon,
        owner=pod_owner(metadata, namespace),
    )


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC check is slow


def parse_node(node: Any, position: int) -> NodeAllocatable:
    """A ``v1.Node`` object's name and ``status.allocatable``."""
    if not _is_mapping(node):
        raise ExtenderRequestError(f"Nodes.items[{position}]: expected a Node object")
    metadata = node.get("metadata")
    name = metadata.get("name") if _is_mapping(metadata) else None
    if not isinstance(name, str) or not name:
        raise ExtenderRequestError(f"Nodes.items[{position}]: the node has no metadata.name")
    status = node.get("status")
    allocatable = status.get("allocatable") if _is_mapping(status) else None
    if not _is_mapping(allocatable):
        allocatable = _resources(allocatable, f"Nodes.items[{position}]")
    if "cpu" not in allocatable or "memory" not in allocatable:
        raise ExtenderRequestError(f"node {name!r}: status.allocatable lacks cpu or memory")
    gpus = allocatable.get(GPU_RESOURCE)
    try:
        return NodeAllocatable(
            name,
            cpu_cores(allocatable["cpu"], what="cpu"),
            whole_units(allocatable["memory"], what="memory"),
            0 if gpus is None else whole_units(gpus, what="GPUs"),
        )
    except QuantityError as error:  # the node named only on failure: no string per node
        raise QuantityError(f"node {name!r} allocatable {error}") from None


def parse_extender_args(body: bytes | str | Mapping) -> ExtenderArgs:
    """Parse an ``ExtenderArgs`` request body.

    Raises:
        ExtenderRequestError: malformed JSON, no ``Pod``, neither ``NodeNames`` nor ``Nodes``,
            or fields of the wrong type; the message names the field.
    """
    document = _document(body, "ExtenderArgs")
    pod = parse_pod(document.get("Pod"))
    names = document.get("NodeNames")
    if names is not None:
        if not isinstance(names, list) or not all(map(isinstance, names, repeat(str))):
            raise ExtenderRequestError("NodeNames: expected a list of node names")
        return ExtenderArgs(pod=pod, node_names=names, node_cache_capable=True)
    node_list = document.get("Nodes")
    if node_list is None:
        raise ExtenderRequestError("neither NodeNames nor Nodes is set; no candidate nodes")
    if not isinstance(node_list, Mapping):
        raise ExtenderRequestError("Nodes: expected a NodeList object with 'items'")
    items = node_list.get("items") or []
    if not isinstance(items, list):
        raise ExtenderRequestError("Nodes.items: expected a list of Node objects")
    allocatable = [parse_node(node, i) for i, node in enumerate(items)]
    return ExtenderArgs(
        pod=pod,
        node_names=[a.name for a in allocatable],
        node_cache_capable=False,
        nodes=items,
        allocatable=allocatable,
    )


# --------------------------------------------------------------------------- answers


def filter_result(
    args: ExtenderArgs,
    passed: Iterable[int],
    failed: Mapping[str, str] | None = None,
    unresolvable: Mapping[str, str] | None = None,
) -> dict:
    """An ``ExtenderFilterResult`` keeping the candidates at positions ``passed``."""
    keep = list(passed)
    if args.node_cache_capable:
        nodes, names = None, [args.node_names[i] for i in keep]
    else:
        assert args.nodes is not None
        nodes, names = {"metadata": {}, "items": [args.nodes[i] for i in keep]}, None
    return {
        "Nodes": nodes,
        "NodeNames": names,
        "FailedNodes": dict(failed or {}),
        "FailedAndUnresolvableNodes": dict(unresolvable or {}),
        "Error": "",
    }


def filter_error(message: str) -> dict:
    """An ``ExtenderFilterResult`` that reports an error (kube-scheduler skips an ignorable
    extender that answers with one)."""
    return {
        "Nodes": None,
        "NodeNames": None,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": message,
    }


def host_priority_list(names: Sequence[str], scores: Sequence[int]) -> list[dict]:
    """A ``HostPriorityList``: ``[{"Host": name, "Score": 0..10}]``."""
    return [{"Host": host, "Score": score} for host, score in zip(names, scores, strict=True)]


def parse_filter_result(document: Any) -> dict:
    """Check an ``ExtenderFilterResult`` answer (for clients); returns it."""
    if not isinstance(document, Mapping):
        raise ExtenderRequestError("filter answer: expected an ExtenderFilterResult object")
    unknown = set(document) - {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }
    if unknown:
        raise ExtenderRequestError(f"filter answer: unknown key(s) {sorted(unknown)}")
    return dict(document)


def parse_host_priority_list(document: Any) -> dict[str, int]:
    """A ``HostPriorityList`` answer as ``{host: score}``, checked for shape and range."""
    if not isinstance(document, list):
        raise ExtenderRequestError("prioritize answer: expected a list of {Host, Score}")
    scores: dict[str, int] = {}
    for i, entry in enumerate(document):
        if not isinstance(entry, Mapping) or set(entry) != {"Host", "Score"}:
            raise ExtenderRequestError(f"prioritize answer [{i}]: expected {{Host, Score}}")
        score = entry["Score"]
        if (
            not isinstance(score, int)
            or not MIN_EXTENDER_PRIORITY <= score <= MAX_EXTENDER_PRIORITY
        ):
            raise ExtenderRequestError(f"prioritize answer [{i}]: Score {score!r} not in 0..10")
        scores[str(entry["Host"])] = score
    return scores
