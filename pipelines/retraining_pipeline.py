"""``retraining_pipeline``: drift check -> retrain (through the same gate) or record no drift."""

from kfp import dsl

from components.pipeline_steps import drift_check
from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.stages import (
    GATE,
    SOURCE,
    TRACKING,
    TRAINING,
    collect_stage,
    define_pipeline,
    gated_training,
    parameter,
)

NAME = "ml-scheduler-retraining"


def build_retraining_pipeline(image: str = DEFAULT_IMAGE):
    """The retraining pipeline with every component in ``image``."""
    collect_task = collect_stage(image)
    drift_op = drift_check.component(image)
    no_drift_op = drift_check.no_drift_component(image)
    gate_and_train = gated_training(image)

    def retraining_pipeline(values: dict) -> None:
        data = collect_task(values)
        drift = drift_op(
            node_metrics=data.outputs["node_metrics"], config_path=values["drift_config_path"]
        ).set_display_name("drift check")
        with dsl.If(drift.outputs["Output"] == True, name="drifted"):  # noqa: E712
            gate_and_train(data.outputs["node_metrics"], values)
        with dsl.Else(name="no-drift"):
            no_drift_op(report=drift.outputs["report"]).set_display_name("record: no drift")

    drift = parameter("drift_config_path", str, "")
    parameters = (*TRACKING, *SOURCE, drift, *GATE, *TRAINING)
    return define_pipeline(
        NAME,
        "PSI/KS drift of key node features (training window vs the last day, "
        "thresholds in components/drift.yaml): retrain through the validation gate when "
        "drifted, otherwise record 'no drift'.",
        retraining_pipeline,
        parameters,
    )
