"""``training_pipeline``: collect -> validate (gate) -> features -> (tune) -> train -> serve."""

from kfp import dsl

from components.pipeline_steps import collect, validate
from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.stages import build_train_and_deploy

NAME = "ml-scheduler-training"


def build_training_pipeline(image: str = DEFAULT_IMAGE):
    """The training pipeline with every component in ``image``."""
    collect_op = collect.component(image)
    validate_op = validate.component(image)
    gate_failed_op = validate.gate_failed_component(image)
    train_and_deploy = build_train_and_deploy(image)

    @dsl.pipeline(
        name=NAME,
        description="Node metrics -> Great Expectations gate -> features and Feast -> optional "
        "Katib-style tuning -> forecaster, anomaly detector and DQN -> evaluation against the "
        "baselines -> MLflow registration and promotion -> KServe manifests.",
    )
    def training_pipeline(
        tracking_uri: str,
        node_metrics_path: str = "",
        prometheus_url: str = "",
        start: str = "",
        end: str = "",
        step_seconds: int = 30,
        labels_path: str = "",
        workload_path: str = "",
        nodes_path: str = "",
        thresholds_path: str = "",
        reference_time: str = "",
        online_store: str = "",
        tune_models: bool = False,
        tune_trials: int = 3,
        register: bool = True,
        forecaster_args: list = [],  # noqa: B006 (KFP defaults)
        anomaly_args: list = [],  # noqa: B006
        placement_args: list = [],  # noqa: B006
        serving_image: str = DEFAULT_IMAGE,
        serving_namespace: str = "ml-scheduler",
    ):
        data = collect_op(
            node_metrics_path=node_metrics_path,
            prometheus_url=prometheus_url,
            start=start,
            end=end,
            step_seconds=step_seconds,
        ).set_display_name("collect node metrics")
        data.set_caching_options(False)
        gate = validate_op(
            node_metrics=data.outputs["node_metrics"],
            thresholds_path=thresholds_path,
            reference_time=reference_time,
        ).set_display_name("validate (gate)")
        with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
            train_and_deploy(
                node_metrics=data.outputs["node_metrics"],
                tracking_uri=tracking_uri,
                labels_path=labels_path,
                workload_path=workload_path,
                nodes_path=nodes_path,
                online_store=online_store,
                tune_models=tune_models,
                tune_trials=tune_trials,
                register=register,
                forecaster_args=forecaster_args,
                anomaly_args=anomaly_args,
                placement_args=placement_args,
                serving_image=serving_image,
                serving_namespace=serving_namespace,
            ).set_display_name("train and deploy")
        with dsl.Else(name="gate-failed"):
            gate_failed_op(validation=gate.outputs["validation"]).set_display_name(
                "stop: gate failed"
            )

    return training_pipeline
