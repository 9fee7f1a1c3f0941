"""Components: local Katib-style tuning of one model, or no tuning (the defaults)."""

from kfp.dsl import Dataset, Input

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def tune_model(
    kind: str,
    node_metrics: Input[Dataset],
    tracking_uri: str,
    labels_path: str = "",
    workload_path: str = "",
    nodes_path: str = "",
    max_trials: int = 3,
    parallel: int = 1,
    extra_args: list = [],  # noqa: B006 (a KFP default, never mutated)
) -> dict:
    """Run the model's Katib Experiment's trials with Optuna; returns the best parameters."""
    from components.pipeline_steps.steps import data_flags
    from components.tune.local import tune_registered_model

    paths = {
        "node_metrics": node_metrics.path,
        "labels": labels_path,
        "workload": workload_path,
        "nodes": nodes_path,
    }
    return tune_registered_model(
        kind,
        tracking_uri=tracking_uri,
        max_trials=max_trials,
        parallel=parallel,
        trial_args=[*data_flags(kind, paths), *extra_args],
    )


def default_hyperparameters() -> dict:
    """No tuning: the entrypoints' own defaults."""
    return {}


def component(image: str = DEFAULT_IMAGE):
    return make_component(tune_model, image)


def defaults_component(image: str = DEFAULT_IMAGE):
    return make_component(default_hyperparameters, image)
