"""What both pipelines share: their parameters (declared once, turned into each pipeline's
signature), the collect and validation-gate stages, and the train-and-deploy sub-pipeline."""

import inspect
from collections.abc import Callable

from kfp import dsl
from kfp.dsl import Dataset, Input

from components.model_contracts import MODEL_SPECS
from components.pipeline_steps import (
    collect,
    evaluate,
    features,
    promote,
    render_serving,
    train,
    tune,
    validate,
)
from components.pipeline_steps.factory import DEFAULT_IMAGE


def parameter(name: str, annotation, default=inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default
    )


def parameters(**defaults) -> tuple[inspect.Parameter, ...]:
    """Pipeline parameters typed by their defaults."""
    return tuple(parameter(name, type(value), value) for name, value in defaults.items())


TRACKING = (parameter("tracking_uri", str),)
SOURCE = parameters(node_metrics_path="", prometheus_url="", start="", end="", step_seconds=30)
GATE = parameters(thresholds_path="", reference_time="")
TUNING = parameters(tune_models=False, tune_trials=3)
TRAINING = parameters(
    labels_path="",
    workload_path="",
    nodes_path="",
    online_store="",
    register=True,
    require_beating_baselines=False,
    evaluation_data="",
    forecaster_args=[],
    anomaly_args=[],
    placement_args=[],
    serving_image=DEFAULT_IMAGE,
    serving_namespace="ml-scheduler",
)


def define_pipeline(
    name: str, description: str, body: Callable[[dict], None], parameters
) -> Callable:
    """The KFP pipeline ``name`` whose signature is ``parameters`` and whose ``body`` gets them
    as one dict (KFP reads the signature and calls the function with one channel each)."""
    names = [p.name for p in parameters]

    def pipeline(*values):
        return body(dict(zip(names, values, strict=True)))

    pipeline.__signature__ = inspect.Signature(parameters)
    pipeline.__name__ = body.__name__
    return dsl.pipeline(name=name, description=description)(pipeline)


def pick(values: dict, parameters) -> dict:
    """The entries of ``values`` named by ``parameters`` (those a sub-pipeline takes)."""
    return {p.name: values[p.name] for p in parameters if p.name in values}


def collect_stage(image: str = DEFAULT_IMAGE) -> Callable:
    """``add(values)`` adds the (never cached) collect task and returns it."""
    collect_op = collect.component(image)

    def add(values: dict):
        task = collect_op(**pick(values, SOURCE)).set_display_name("collect node metrics")
        return task.set_caching_options(False)

    return add


def gated_training(image: str = DEFAULT_IMAGE) -> Callable:
    """``add(node_metrics, values)``: the validation gate, train-and-deploy when it passes,
    a failed run with the gate's reasons when it does not."""
    validate_op = validate.component(image)
    gate_failed_op = validate.gate_failed_component(image)
    train_and_deploy = build_train_and_deploy(image)

    def add(node_metrics, values: dict) -> None:
        gate = validate_op(node_metrics=node_metrics, **pick(values, GATE))
        gate.set_display_name("validate (gate)")
        with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
            train_and_deploy(
                node_metrics=node_metrics, **pick(values, (*TRACKING, *TUNING, *TRAINING))
            ).set_display_name("train and deploy")
        with dsl.Else(name="gate-failed"):
            gate_failed_op(validation=gate.outputs["validation"]).set_display_name(
                "stop: gate failed"
            )

    return add


def build_train_and_deploy(image: str = DEFAULT_IMAGE):
    """The sub-pipeline after a passed gate: features -> (tune) -> train candidates ->
    evaluate -> promote -> render manifests."""
    features_op = features.component(image)
    tune_op = tune.component(image)
    defaults_op = tune.defaults_component(image)
    train_op = train.component(image)
    evaluate_op = evaluate.component(image)
    promote_op = promote.component(image)
    render_op = render_serving.component(image)

    def train_and_deploy(p: dict) -> None:
        feature_task = features_op(node_metrics=p["node_metrics"], online_store=p["online_store"])
        feature_task.set_display_name("features + Feast materialize")
        inputs = ("node_metrics", "labels_path", "workload_path", "nodes_path", "tracking_uri")
        data = {key: p[key] for key in inputs}
        with dsl.If(p["tune_models"] == True, name="tune"):  # noqa: E712 (a KFP condition)
            tuned = {
                kind: tune_op(
                    kind=kind, max_trials=p["tune_trials"], extra_args=p[f"{kind}_args"], **data
                )
                .after(feature_task)
                .set_display_name(f"tune {kind}")
                for kind in MODEL_SPECS
            }
        with dsl.Else(name="no-tuning"):
            defaults = defaults_op().after(feature_task).set_display_name("default parameters")
        params = {k: dsl.OneOf(task.output, defaults.output) for k, task in tuned.items()}
        candidates = {
            kind: train_op(
                kind=kind,
                feature_table=feature_task.outputs["feature_table"],
                hyperparameters=params[kind],
                register=p["register"],
                extra_args=p[f"{kind}_args"],
                **data,
            ).set_display_name(f"train {MODEL_SPECS[kind].registered_name}")
            for kind in MODEL_SPECS
        }
        evaluation = evaluate_op(
            tracking_uri=p["tracking_uri"],
            require_beating_baselines=p["require_beating_baselines"],
            evaluation_data=p["evaluation_data"],
            **{kind: task.outputs["candidate"] for kind, task in candidates.items()},
        ).set_display_name("evaluate candidates")
        registry = promote_op(
            tracking_uri=p["tracking_uri"], decisions=evaluation.outputs["decisions"]
        ).set_display_name("promote")
        render_op(
            tracking_uri=p["tracking_uri"],
            registry=registry.outputs["Output"],
            serving_image=p["serving_image"],
            namespace=p["serving_namespace"],
        ).set_display_name("render serving manifests")

    parameters = (parameter("node_metrics", Input[Dataset]), *TRACKING, *TUNING, *TRAINING)
    return define_pipeline(
        "train-and-deploy",
        "Features and Feast, optional tuning, the three candidates, their evaluation against the "
        "baselines and the champion, promotion, and the serving manifests.",
        train_and_deploy,
        parameters,
    )
