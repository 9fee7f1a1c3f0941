"""``training_pipeline``: collect -> validate (gate) -> features -> (tune) -> train candidates
-> evaluate -> promote -> render manifests."""

from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.stages import (
    GATE,
    SOURCE,
    TRACKING,
    TRAINING,
    TUNING,
    collect_stage,
    define_pipeline,
    gated_training,
)

NAME = "ml-scheduler-training"


def build_training_pipeline(image: str = DEFAULT_IMAGE):
    """The training pipeline with every component in ``image``."""
    collect_task = collect_stage(image)
    gate_and_train = gated_training(image)

    def training_pipeline(values: dict) -> None:
        data = collect_task(values)
        gate_and_train(data.outputs["node_metrics"], values)

    parameters = (*TRACKING, *SOURCE, *GATE, *TUNING, *TRAINING)
    return define_pipeline(
        NAME,
        "Node metrics -> Great Expectations gate -> features and Feast -> optional "
        "Katib-style tuning -> forecaster, anomaly detector and DQN candidates -> evaluation "
        "against the baselines and the champions -> promotion in MLflow -> KServe manifests.",
        training_pipeline,
        parameters,
    )
