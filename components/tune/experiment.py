"""Katib v1beta1 Experiments: read, check against Katib's API schema and its own rules.

The same YAML is submitted to a cluster and run locally (:mod:`components.tune.local`), so the
checks here mirror what Katib's admission webhook rejects: objective type and metric names,
algorithm names, trial counts, parameter types and feasible spaces, and trial templates whose
``${trialParameters.x}`` placeholders all resolve.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config_files import read_yaml
from components.errors import MlschedError

API_VERSION = "kubeflow.org/v1beta1"
OBJECTIVE_TYPES = ("minimize", "maximize")
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
METRIC_STRATEGIES = ("min", "max", "latest")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None")
# Katib's default katib-config suggestions (hyperparameter tuning and NAS).
KATIB_ALGORITHMS = (
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
    "bayesianoptimization",
    "hyperband",
    "enas",
    "darts",
    "pbt",
)
TRIAL_KINDS = ("Job", "TFJob", "PyTorchJob", "MPIJob", "XGBoostJob", "PipelineRun", "TrainJob")
DEFAULT_PARALLEL_TRIALS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where the Katib Experiments of the model specs (`katib/*.yaml`) are resolved from."""
STDOUT_METRIC = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
_META_REFERENCE = re.compile(r"^\$\{trialSpec\.[A-Za-z.\[\]\"]+\}$")


class ExperimentError(MlschedError):
    """An Experiment YAML that Katib would reject."""


@dataclass(frozen=True)
class ParameterSpec:
    """One searched hyperparameter (values kept as Katib's strings)."""

    name: str
    parameter_type: str
    min: str | None = None
    max: str | None = None
    step: str | None = None
    values: tuple[str, ...] = ()
    distribution: str | None = None


@dataclass(frozen=True)
class Objective:
    """What a trial is judged on."""

    type: str
    metric: str
    goal: float | None
    additional_metrics: tuple[str, ...]
    strategies: Mapping[str, str]

    @property
    def minimize(self) -> bool:
        return self.type == "minimize"

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the goal (Katib then stops the Experiment)."""
        if self.goal is None:
            return False
        return value <= self.goal if self.minimize else value >= self.goal


@dataclass(frozen=True)
class Experiment:
    """A parsed, checked Katib Experiment."""

    name: str
    namespace: str | None
    objective: Objective
    algorithm: str
    algorithm_settings: Mapping[str, str]
    parameters: tuple[ParameterSpec, ...]
    trial_parameters: Mapping[str, str]
    primary_container: str
    max_trial_count: int | None
    parallel_trial_count: int
    max_failed_trial_count: int | None
    document: Mapping[str, Any]
    source: str

    def container(self) -> dict[str, Any]:
        """The primary container of the trial template's Job."""
        return _primary_container(self.document["spec"]["trialTemplate"])

    def command(self, assignments: Mapping[str, Any]) -> list[str]:
        """The trial's command and args with ``${trialParameters.x}`` filled from ``assignments``.

        Args:
            assignments: value per Experiment parameter name.
        """
        values: dict[str, str] = {}
        for trial_name, reference in self.trial_parameters.items():
            if reference not in assignments:
                raise ExperimentError(f"{self.source}: no value for parameter {reference!r}")
            values[trial_name] = str(assignments[reference])
        container = self.container()
        words = [*container.get("command", []), *container.get("args", [])]
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], str(word)) for word in words]


def default_schema_path(repo_root: Path) -> Path:
    """Where the shared Katib swagger document lives next to the repository."""
    return repo_root.parent / "shared" / "schemas" / "katib-v1beta1.swagger.json"


def load_experiment_document(path: str | os.PathLike) -> dict[str, Any]:
    """Read an Experiment YAML (one document) into a dict."""
    file = Path(path)
    document = read_yaml(file, "Experiment file", ExperimentError)
    if not isinstance(document, dict):
        raise ExperimentError(f"{file}: expected a Katib Experiment mapping")
    return document


def schema_errors(
    document: Mapping[str, Any], swagger: Mapping[str, Any], *, strict: bool = True
) -> list[str]:
    """Check ``document`` against ``v1beta1.Experiment`` of Katib's swagger document.

    Kubernetes core definitions (``v1.ObjectMeta``, ``v1.Container``, ...) are not part of the
    document and are accepted as any object. ``strict`` also rejects unknown fields in Katib's
    own objects, which the API server would silently drop (a misspelt field is lost otherwise).
    """
    import jsonschema

    definitions = copy.deepcopy(dict(swagger["definitions"]))
    referenced = set(re.findall(r'"#/definitions/([^"]+)"', json.dumps(definitions)))
    for name in referenced - set(definitions):
        definitions[name] = {}
    if strict:
        for name, definition in definitions.items():
            if name.startswith("v1beta1.") and "properties" in definition:
                definition["additionalProperties"] = False
    schema = {"$ref": "#/definitions/v1beta1.Experiment", "definitions": definitions}
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def katib_rule_errors(document: Mapping[str, Any]) -> list[str]:
    """The checks of Katib's Experiment admission webhook that the schema cannot express."""
    errors: list[str] = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion: must be {API_VERSION}, got {document.get('apiVersion')!r}")
    if document.get("kind") != "Experiment":
        errors.append(f"kind: must be Experiment, got {document.get('kind')!r}")
    name = (document.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 label of at most 40 characters")
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        return [*errors, "spec: missing"]
    errors += _objective_errors(spec.get("objective"))
    errors += _algorithm_errors(spec.get("algorithm"))
    errors += _count_errors(spec)
    parameters = spec.get("parameters") or []
    errors += _parameter_errors(parameters)
    names = {p.get("name") for p in parameters if isinstance(p, Mapping)}
    errors += _trial_template_errors(spec.get("trialTemplate"), names)
    errors += _collector_errors(spec.get("metricsCollectorSpec"))
    return errors


def _objective_errors(objective: Any) -> list[str]:
    if not isinstance(objective, Mapping):
        return ["spec.objective: missing"]
    errors = []
    if objective.get("type") not in OBJECTIVE_TYPES:
        errors.append(
            f"spec.objective.type: must be one of {', '.join(OBJECTIVE_TYPES)}, "
            f"got {objective.get('type')!r}"
        )
    metric = objective.get("objectiveMetricName")
    if not metric:
        errors.append("spec.objective.objectiveMetricName: missing")
    additional = objective.get("additionalMetricNames") or []
    if metric in additional:
        errors.append(
            "spec.objective.additionalMetricNames: must not contain the objective metric "
            f"{metric!r}"
        )
    known = {metric, *additional}
    for index, strategy in enumerate(objective.get("metricStrategies") or []):
        where = f"spec.objective.metricStrategies[{index}]"
        if strategy.get("name") not in known:
            errors.append(f"{where}.name: {strategy.get('name')!r} is not an objective metric")
        if strategy.get("value") not in METRIC_STRATEGIES:
            errors.append(f"{where}.value: must be one of {', '.join(METRIC_STRATEGIES)}")
    return errors


def _algorithm_errors(algorithm: Any) -> list[str]:
    if not isinstance(algorithm, Mapping) or not algorithm.get("algorithmName"):
        return ["spec.algorithm.algorithmName: missing"]
    name = algorithm["algorithmName"]
    if name not in KATIB_ALGORITHMS:
        return [
            f"spec.algorithm.algorithmName: {name!r} is not a Katib suggestion "
            f"({', '.join(KATIB_ALGORITHMS)})"
        ]
    settings = [s.get("name") for s in algorithm.get("algorithmSettings") or []]
    duplicated = sorted({s for s in settings if settings.count(s) > 1})
    return [f"spec.algorithm.algorithmSettings: duplicated {duplicated}"] if duplicated else []


def _count_errors(spec: Mapping[str, Any]) -> list[str]:
    errors = []
    max_trials = spec.get("maxTrialCount")
    parallel = spec.get("parallelTrialCount")
    max_failed = spec.get("maxFailedTrialCount")
    if max_trials is not None and max_trials <= 0:
        errors.append("spec.maxTrialCount: must be greater than 0")
    if parallel is not None and parallel <= 0:
        errors.append("spec.parallelTrialCount: must be greater than 0")
    if max_failed is not None and max_failed < 0:
        errors.append("spec.maxFailedTrialCount: must not be negative")
    if max_trials is not None and max_failed is not None and max_failed > max_trials:
        errors.append("spec.maxFailedTrialCount: must not be greater than spec.maxTrialCount")
    if max_trials is not None and parallel is not None and parallel > max_trials:
        errors.append("spec.parallelTrialCount: must not be greater than spec.maxTrialCount")
    return errors


def _parameter_errors(parameters: Sequence[Any]) -> list[str]:
    if not parameters:
        return ["spec.parameters: at least one parameter is required"]
    errors: list[str] = []
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        where = f"spec.parameters[{index}]"
        name = parameter.get("name")
        if not name:
            errors.append(f"{where}.name: missing")
        elif name in seen:
            errors.append(f"{where}.name: duplicated {name!r}")
        seen.add(name)
        kind = parameter.get("parameterType")
        space = parameter.get("feasibleSpace") or {}
        if kind not in PARAMETER_TYPES:
            errors.append(
                f"{where}.parameterType: must be one of {', '.join(PARAMETER_TYPES)}, got {kind!r}"
            )
            continue
        errors += [f"{where}.feasibleSpace: {e}" for e in _space_errors(kind, space)]
    return errors


def _space_errors(kind: str, space: Mapping[str, Any]) -> list[str]:
    if kind in ("categorical", "discrete"):
        errors = [
            f"{key} must be empty for {kind}" for key in ("min", "max", "step") if space.get(key)
        ]
        values = space.get("list") or []
        if not values:
            errors.append(f"list must not be empty for {kind}")
        if kind == "discrete" and any(_number(v) is None for v in values):
            errors.append("list of a discrete parameter must hold numbers")
        if len(set(map(str, values))) != len(values):
            errors.append("list holds duplicates")
        return errors
    errors = ["list must be empty for " + kind] if space.get("list") else []
    low, high = space.get("min"), space.get("max")
    if low in (None, "") or high in (None, ""):
        return [*errors, f"min and max are required for {kind}"]
    parse = _integer if kind == "int" else _number
    values = {key: parse(space.get(key)) for key in ("min", "max", "step") if space.get(key)}
    for key, value in values.items():
        if value is None:
            errors.append(f"{key} {space.get(key)!r} is not a valid {kind}")
    low_value, high_value = values.get("min"), values.get("max")
    if low_value is not None and high_value is not None and low_value > high_value:
        errors.append(f"min {low} is greater than max {high}")
    step = values.get("step")
    if step is not None and step <= 0:
        errors.append("step must be positive")
    distribution = space.get("distribution")
    if distribution and distribution not in DISTRIBUTIONS:
        errors.append(f"distribution must be one of {', '.join(DISTRIBUTIONS)}")
    if distribution in ("logUniform", "logNormal") and (values.get("min") or 0) <= 0:
        errors.append(f"{distribution} needs a positive min")
    return errors


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _primary_container(template: Mapping[str, Any]) -> dict[str, Any]:
    spec = template.get("trialSpec") or {}
    pod = (spec.get("spec") or {}).get("template") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    name = template.get("primaryContainerName")
    for container in containers:
        if container.get("name") == name:
            return container
    raise ExperimentError(f"trialTemplate: no container named {name!r} in trialSpec")


def _trial_template_errors(template: Any, parameter_names: set[str]) -> list[str]:
    if not isinstance(template, Mapping):
        return ["spec.trialTemplate: missing"]
    where = "spec.trialTemplate"
    errors = []
    if template.get("configMap") and template.get("trialSpec"):
        errors.append(f"{where}: trialSpec and configMap exclude each other")
    spec = template.get("trialSpec")
    if not isinstance(spec, Mapping):
        return [*errors, f"{where}.trialSpec: missing (this project keeps templates inline)"]
    if not spec.get("apiVersion") or not spec.get("kind"):
        errors.append(f"{where}.trialSpec: apiVersion and kind are required")
    elif spec["kind"] not in TRIAL_KINDS:
        errors.append(f"{where}.trialSpec.kind: {spec['kind']!r} is not a Katib trial kind")
    if not template.get("primaryContainerName"):
        errors.append(f"{where}.primaryContainerName: missing")
    else:
        try:
            container = _primary_container(template)
        except ExperimentError as error:
            errors.append(f"{where}.primaryContainerName: {error}")
        else:
            if not container.get("command"):
                errors.append(
                    f"{where}: the primary container needs a command (the StdOut collector "
                    "wraps it)"
                )
    trial_parameters = template.get("trialParameters") or []
    names = [p.get("name") for p in trial_parameters]
    references = [p.get("reference") for p in trial_parameters]
    for label, items in (("name", names), ("reference", references)):
        duplicated = sorted({str(i) for i in items if items.count(i) > 1})
        if duplicated:
            errors.append(f"{where}.trialParameters: duplicated {label}s {duplicated}")
    for index, reference in enumerate(references):
        if reference not in parameter_names and not _META_REFERENCE.match(str(reference)):
            errors.append(
                f"{where}.trialParameters[{index}].reference: {reference!r} is not a parameter "
                "of spec.parameters"
            )
    used = set(_PLACEHOLDER.findall(json.dumps(spec)))
    for missing in sorted(used - set(names)):
        errors.append(f"{where}.trialSpec: ${{trialParameters.{missing}}} is not declared")
    for unused in sorted(set(names) - used):
        errors.append(f"{where}.trialParameters: {unused!r} is not used in trialSpec")
    return errors


def _collector_errors(collector: Any) -> list[str]:
    if collector is None:
        return []
    kind = (collector.get("collector") or {}).get("kind", "StdOut")
    if kind not in COLLECTOR_KINDS:
        return [f"spec.metricsCollectorSpec.collector.kind: {kind!r} is not a Katib collector"]
    if kind in ("File", "TensorFlowEvent") and not (collector.get("source") or {}).get(
        "fileSystemPath"
    ):
        return [f"spec.metricsCollectorSpec.source.fileSystemPath: required for {kind}"]
    return []


def check_experiment(
    document: Mapping[str, Any], source: str, swagger: Mapping[str, Any] | None = None
) -> None:
    """Raise :class:`ExperimentError` listing every problem (schema, when given, and rules)."""
    problems = schema_errors(document, swagger) if swagger is not None else []
    problems += katib_rule_errors(document)
    if problems:
        raise ExperimentError(
            f"{source}: not a valid Katib Experiment:\n  - " + "\n  - ".join(problems)
        )


def parse_experiment(
    document: Mapping[str, Any],
    source: str = "experiment",
    swagger: Mapping[str, Any] | None = None,
) -> Experiment:
    """Check ``document`` and turn it into an :class:`Experiment`."""
    check_experiment(document, source, swagger)
    spec = document["spec"]
    objective = spec["objective"]
    default_strategy = "min" if objective["type"] == "minimize" else "max"
    strategies = {objective["objectiveMetricName"]: default_strategy}
    strategies.update({m: "latest" for m in objective.get("additionalMetricNames") or []})
    strategies.update({s["name"]: s["value"] for s in objective.get("metricStrategies") or []})
    template = spec["trialTemplate"]
    return Experiment(
        name=document["metadata"]["name"],
        namespace=document["metadata"].get("namespace"),
        objective=Objective(
            type=objective["type"],
            metric=objective["objectiveMetricName"],
            goal=None if objective.get("goal") is None else float(objective["goal"]),
            additional_metrics=tuple(objective.get("additionalMetricNames") or ()),
            strategies=strategies,
        ),
        algorithm=spec["algorithm"]["algorithmName"],
        algorithm_settings={
            s["name"]: str(s.get("value", ""))
            for s in spec["algorithm"].get("algorithmSettings") or []
        },
        parameters=tuple(
            ParameterSpec(
                name=p["name"],
                parameter_type=p["parameterType"],
                min=_text(p["feasibleSpace"].get("min")),
                max=_text(p["feasibleSpace"].get("max")),
                step=_text(p["feasibleSpace"].get("step")),
                values=tuple(str(v) for v in p["feasibleSpace"].get("list") or ()),
                distribution=p["feasibleSpace"].get("distribution"),
            )
            for p in spec["parameters"]
        ),
        trial_parameters={p["name"]: p["reference"] for p in template.get("trialParameters") or []},
        primary_container=template["primaryContainerName"],
        max_trial_count=spec.get("maxTrialCount"),
        parallel_trial_count=spec.get("parallelTrialCount") or DEFAULT_PARALLEL_TRIALS,
        max_failed_trial_count=spec.get("maxFailedTrialCount"),
        document=document,
        source=source,
    )


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def load_experiment(
    path: str | os.PathLike, swagger_path: str | os.PathLike | None = None
) -> Experiment:
    """Read, check (against the swagger document when a path is given) and parse an Experiment."""
    document = load_experiment_document(path)
    swagger = None
    if swagger_path is not None:
        try:
            swagger = json.loads(Path(swagger_path).read_text())
        except FileNotFoundError:
            raise ExperimentError(f"{swagger_path}: no such Katib swagger document") from None
    return parse_experiment(document, str(path), swagger)


def parse_stdout_metrics(text: str) -> dict[str, list[float]]:
    """Every ``name=value`` the Katib StdOut collector would pick up, in order of appearance."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for match in STDOUT_METRIC.finditer(line):
            value = _number(match.group(2))
            if value is not None:
                found.setdefault(match.group(1), []).append(value)
    return found
