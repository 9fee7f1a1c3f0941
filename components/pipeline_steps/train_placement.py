"""Component: train the DQN placement policy in the simulator: a candidate."""

from kfp.dsl import Metrics, Model, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def train_placement_policy(
    workload_path: str,
    nodes_path: str,
    hyperparameters: dict,
    tracking_uri: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
    register: bool = True,
    extra_args: list = [],  # noqa: B006 (a KFP default, never mutated)
):
    """``python -m components.placement.dqn.train``: the candidate and its result file."""
    from components.pipeline_steps.training import run_training

    paths = {"workload": workload_path, "nodes": nodes_path}
    run_training(
        "placement", paths, hyperparameters, tracking_uri, register, extra_args, candidate, metrics
    )


def component(image: str = DEFAULT_IMAGE):
    return make_component(train_placement_policy, image)
