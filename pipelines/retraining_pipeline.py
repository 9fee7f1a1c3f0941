"""``retraining_pipeline``: drift check -> retrain (through the same gate) or record no drift."""

from kfp import dsl

from components.pipeline_steps import collect, drift_check, validate
from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.stages import build_train_and_deploy

NAME = "ml-scheduler-retraining"


def build_retraining_pipeline(image: str = DEFAULT_IMAGE):
    """The retraining pipeline with every component in ``image``."""
    collect_op = collect.component(image)
    drift_op = drift_check.component(image)
    no_drift_op = drift_check.no_drift_component(image)
    validate_op = validate.component(image)
    gate_failed_op = validate.gate_failed_component(image)
    train_and_deploy = build_train_and_deploy(image)

    @dsl.pipeline(
        name=NAME,
        description="PSI/KS drift of key node features (training window vs the last day, "
        "thresholds in components/drift.yaml): retrain through the validation gate when "
        "drifted, otherwise record 'no drift'.",
    )
    def retraining_pipeline(
        tracking_uri: str,
        node_metrics_path: str = "",
        prometheus_url: str = "",
        start: str = "",
        end: str = "",
        step_seconds: int = 30,
        labels_path: str = "",
        workload_path: str = "",
        nodes_path: str = "",
        drift_config_path: str = "",
        thresholds_path: str = "",
        reference_time: str = "",
        online_store: str = "",
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
        drift = drift_op(
            node_metrics=data.outputs["node_metrics"], config_path=drift_config_path
        ).set_display_name("drift check")
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712
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
                    register=register,
                    forecaster_args=forecaster_args,
                    anomaly_args=anomaly_args,
                    placement_args=placement_args,
                    serving_image=serving_image,
                    serving_namespace=serving_namespace,
                ).set_display_name("retrain and deploy")
            with dsl.Else(name="gate-failed"):
                gate_failed_op(validation=gate.outputs["validation"])
        with dsl.Else(name="no-drift"):
            no_drift_op(report=drift.outputs["report"]).set_display_name("record: no drift")

    return retraining_pipeline
