"""Component: train a candidate node load forecaster."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def train_forecaster(
    node_metrics: Input[Dataset],
    feature_table: Input[Dataset],
    hyperparameters: dict,
    tracking_uri: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
    register: bool = True,
    extra_args: list = [],  # noqa: B006 (a KFP default, never mutated)
):
    """``python -m components.forecast.train`` on the features artifact: the candidate and its
    result file."""
    from pathlib import Path

    from components.pipeline_steps.factory import FEATURE_FILE
    from components.pipeline_steps.training import run_training

    features = str(Path(feature_table.path) / FEATURE_FILE)
    paths = {"node_metrics": node_metrics.path, "features": features}
    run_training(
        "forecaster", paths, hyperparameters, tracking_uri, register, extra_args, candidate, metrics
    )


def component(image: str = DEFAULT_IMAGE):
    return make_component(train_forecaster, image)
