"""Component: train one model's candidate through its entrypoint (``--register`` adds a model
version, never the ``champion`` alias); the result file is the candidate artifact."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def train_candidate(
    kind: str,
    node_metrics: Input[Dataset],
    feature_table: Input[Dataset],
    hyperparameters: dict,
    tracking_uri: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
    labels_path: str = "",
    workload_path: str = "",
    nodes_path: str = "",
    register: bool = True,
    extra_args: list = [],  # noqa: B006 (a KFP default, never mutated)
):
    """``python -m <the model's entrypoint>`` with the data flags its kind takes; its figures
    go to the Metrics artifact."""
    import math
    from pathlib import Path

    from components.pipeline_steps.factory import FEATURE_FILE
    from components.pipeline_steps.steps import train_step

    paths = {
        "node_metrics": node_metrics.path,
        "features": str(Path(feature_table.path) / FEATURE_FILE),
        "labels": labels_path,
        "workload": workload_path,
        "nodes": nodes_path,
    }
    result = train_step(
        kind, paths, hyperparameters, tracking_uri, register, candidate.path, extra_args
    )
    for name, value in result["metrics"].items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            metrics.log_metric(name, value)
    keys = ("model_name", "run_id", "model_uri", "registered_version")
    candidate.metadata.update({k: result[k] for k in keys if result[k] is not None})


def component(image: str = DEFAULT_IMAGE):
    return make_component(train_candidate, image)
