"""Component: the node feature table, applied to Feast and materialised."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def build_node_features(
    node_metrics: Input[Dataset],
    feature_table: Output[Dataset],
    feast_repo: Output[Artifact],
    metrics: Output[Metrics],
    online_store: str = "",
    materialize: bool = True,
):
    """Feature table (``node_features.parquet`` inside the Dataset folder) and the Feast repo."""
    from pathlib import Path

    from components.pipeline_steps.factory import FEATURE_FILE
    from components.pipeline_steps.steps import features_step

    Path(feature_table.path).mkdir(parents=True, exist_ok=True)
    summary = features_step(
        node_metrics.path,
        Path(feature_table.path) / FEATURE_FILE,
        feast_repo.path if materialize else None,
        online_store=online_store,
    )
    for name, value in summary.items():
        if isinstance(value, (int, float)):
            metrics.log_metric(name, value)
    feature_table.metadata.update(summary)
    if not materialize:
        Path(feast_repo.path).mkdir(parents=True, exist_ok=True)


def component(image: str = DEFAULT_IMAGE):
    return make_component(build_node_features, image)
