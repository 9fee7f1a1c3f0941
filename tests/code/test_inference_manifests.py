"""InferenceService manifests against KServe's CRD schema (``../shared/schemas``), plus a check
for fields the API server would silently prune (keys the structural schema does not declare)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.errors import MlschedError
from serving.cli import add_manifests_parser
from serving.manifests import (
    ROLLOUT_PERCENTS,
    ServiceOptions,
    render_inference_service,
    rollout_plan,
    version_uri,
)
from serving.predictors import ANOMALY_DETECTOR, FORECASTER, PLACEMENT_POLICY

REPO = Path(__file__).resolve().parents[2]
CRD = REPO.parent / "shared" / "schemas" / "kserve-inferenceservices.crd.yaml"
MODELS = (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_POLICY)


@functools.cache
def isvc_schema() -> dict:
    if not CRD.is_file():
        pytest.skip(f"KServe CRD schema not found at {CRD} (the shared schemas folder is absent)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(CRD.read_text(), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


def undeclared_keys(instance, schema: dict, path: str = "") -> list[str]:
    """Keys of ``instance`` that the structural schema does not declare (pruned on apply)."""
    found = []
    if isinstance(instance, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        for key, value in instance.items():
            if key in schema["properties"]:
                found += undeclared_keys(value, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                found.append(f"{path}.{key}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            found += undeclared_keys(item, schema["items"], f"{path}[{index}]")
    return found


def check(manifest: dict) -> None:
    schema = isvc_schema()
    jsonschema.Draft4Validator(schema).validate(manifest)
    assert undeclared_keys(manifest, schema) == []


@pytest.mark.parametrize("name", MODELS)
def test_rollout_manifests_validate_and_step_the_canary(name):
    uri = version_uri(name, 7)
    plan = rollout_plan(name, uri)
    assert [m["spec"]["predictor"]["canaryTrafficPercent"] for m in plan] == [10, 50, 100]
    for manifest in plan:
        check(manifest)
        predictor = manifest["spec"]["predictor"]
        assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
        (container,) = predictor["containers"]
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        assert f"{name}={uri}" in container["args"]
        assert manifest["metadata"]["name"] == name
        assert manifest["metadata"]["annotations"]["mlsched.io/model-uri"] == uri
    assert plan[0]["spec"] == {
        "predictor": {**plan[1]["spec"]["predictor"], "canaryTrafficPercent": 10}
    }


def test_a_broken_manifest_fails_the_checks():
    manifest = render_inference_service(FORECASTER, version_uri(FORECASTER, 1))
    wrong_type = yaml.safe_load(yaml.safe_dump(manifest))
    wrong_type["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(jsonschema.ValidationError, match="'two' is not of type 'integer'"):
        check(wrong_type)
    bad_quantity = yaml.safe_load(yaml.safe_dump(manifest))
    bad_quantity["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = "lots"
    with pytest.raises(jsonschema.ValidationError):
        check(bad_quantity)
    typo = yaml.safe_load(yaml.safe_dump(manifest))
    typo["spec"]["predictor"]["minReplica"] = 2
    assert undeclared_keys(typo, isvc_schema()) == [".spec.predictor.minReplica"]


def test_options_and_bad_rollouts():
    options = ServiceOptions(namespace="prod", image="registry.local/mlsched:1.2", min_replicas=3)
    manifest = render_inference_service(
        PLACEMENT_POLICY, "models:/placement-dqn/2", canary_traffic_percent=25, options=options
    )
    check(manifest)
    assert manifest["metadata"]["namespace"] == "prod"
    assert manifest["spec"]["predictor"]["containers"][0]["image"] == "registry.local/mlsched:1.2"
    assert (
        "canaryTrafficPercent" not in render_inference_service(FORECASTER, "x")["spec"]["predictor"]
    )
    with pytest.raises(MlschedError, match="1..100"):
        render_inference_service(FORECASTER, "x", canary_traffic_percent=0)
    with pytest.raises(MlschedError, match="end at 100"):
        rollout_plan(FORECASTER, "x", (10, 50))
    with pytest.raises(MlschedError, match="rise strictly"):
        rollout_plan(FORECASTER, "x", (50, 10, 100))
    with pytest.raises(MlschedError, match="replicas"):
        render_inference_service(FORECASTER, "x", options=ServiceOptions(min_replicas=11))


def test_cli_writes_one_file_per_model_and_step(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_manifests_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["serving", "manifests", "--output", str(tmp_path)]
        + [a for name in MODELS for a in ("--model-uri", f"{name}=models:/{name}/3")]
    )
    assert args.handler(args) == 0
    written = sorted(tmp_path.rglob("*.yaml"))
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"{name}/canary-{p:03d}.yaml" for name in sorted(MODELS) for p in ROLLOUT_PERCENTS
    ]
    for path in written:
        manifest = yaml.safe_load(path.read_text())
        check(manifest)
        assert manifest["metadata"]["annotations"]["mlsched.io/model-uri"].endswith("/3")
    assert capsys.readouterr().out.count(".yaml") == 9
